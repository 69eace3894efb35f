#!/bin/bash -e
# pi-gen, inside the image root (on_chroot): apply the same Ansible role as the fleet.
# VIDEOSTATION_IMAGE_VARS: an extra vars file (inside the root) for this build.
extra=()
if [ -n "${VIDEOSTATION_IMAGE_VARS:-}" ]; then
	extra=(-e "@${VIDEOSTATION_IMAGE_VARS}")
fi
/usr/src/videostation/image/apply-role -e @/usr/src/videostation/image/image-vars.yml "${extra[@]}"
# The venv holds the installed project; the image does not need the source.
rm -rf /usr/src/videostation
