#!/bin/bash -e
# pi-gen, on the build machine: put the checkout and the first-boot settings file
# into the image root. 01-run-chroot.sh then applies the Ansible role in the chroot.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${VIDEOSTATION_SRC:-$(cd "${here}/../../.." && pwd)}

install -d -m 0755 "${ROOTFS_DIR}/usr/src/videostation"
tar -C "${src}" \
	--exclude=./.git --exclude=./.venv --exclude=./var --exclude=./build --exclude=./dist \
	--exclude='__pycache__' --exclude='*.egg-info' --exclude=./tests/.artifacts \
	--exclude=./node_modules --exclude=./.pytest_cache --exclude=./.mypy_cache --exclude=./.ruff_cache \
	-cf - . | tar -C "${ROOTFS_DIR}/usr/src/videostation" -xf -

install -d -m 0755 "${ROOTFS_DIR}/boot/firmware"
install -m 0644 "${src}/image/videostation.txt" "${ROOTFS_DIR}/boot/firmware/videostation.txt"
