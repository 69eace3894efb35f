#!/bin/bash
# Build the Video Station image: Raspberry Pi OS Lite (Bookworm, arm64) with the
# appliance applied by the Ansible role in pi-gen's chroot.
#
#   image/build.sh [--docker]      (needs root, or Docker with --docker)
#
# PI_GEN_DIR     where pi-gen is (cloned if missing; default image/.pi-gen)
# PI_GEN_REF     pi-gen branch or tag (default arm64 -- pi-gen's 64-bit branch)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PI_GEN_DIR=${PI_GEN_DIR:-${here}/.pi-gen}
PI_GEN_REF=${PI_GEN_REF:-arm64}

if [ ! -d "${PI_GEN_DIR}/.git" ]; then
	git clone --depth 1 --branch "${PI_GEN_REF}" https://github.com/RPi-Distro/pi-gen.git "${PI_GEN_DIR}"
fi

stage_dir="${here}/stage-videostation"
{
	printf 'VIDEOSTATION_STAGE_DIR=%q\n' "${stage_dir}"
	cat "${here}/config"
	if [ -f "${here}/config.local" ]; then
		cat "${here}/config.local"
	fi
} >"${PI_GEN_DIR}/config"

# Raspberry Pi OS Lite is only the base here: do not export it as an image.
touch "${PI_GEN_DIR}/stage2/SKIP_IMAGES"

cd "${PI_GEN_DIR}"
if [ "${1:-}" = "--docker" ]; then
	# The Docker build sees only pi-gen's directory: copy our stage and checkout in.
	rm -rf stage-videostation
	cp -a "${stage_dir}" stage-videostation
	tar -C "${here}/.." --exclude=./.git --exclude=./.venv --exclude=./image/.pi-gen -cf stage-videostation/videostation-src.tar .
	sed -i "s#^VIDEOSTATION_STAGE_DIR=.*#VIDEOSTATION_STAGE_DIR=stage-videostation#" config
	exec ./build-docker.sh
fi
exec ./build.sh
