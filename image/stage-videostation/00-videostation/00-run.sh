#!/bin/bash -e
# pi-gen, on the build machine: put the checkout and the first-boot settings file
# into the image root. 01-run-chroot.sh then applies the Ansible role in the chroot.
# The checkout is this stage's ../.. (image/build.sh), or, for a Docker build, the
# tarball image/build.sh --docker put next to the stage.
: "${ROOTFS_DIR:?pi-gen sets ROOTFS_DIR}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest="${ROOTFS_DIR}/usr/src/videostation"

rm -rf "${dest}"
install -d -m 0755 "${dest}"
if [ -f "${here}/../videostation-src.tar" ]; then
	tar -C "${dest}" -xf "${here}/../videostation-src.tar"
else
	src=${VIDEOSTATION_SRC:-$(cd "${here}/../../.." && pwd)}
	tar -C "${src}" \
		--exclude=./.git --exclude=./.venv --exclude=./var --exclude=./build --exclude=./dist \
		--exclude=./image/.pi-gen --exclude='__pycache__' --exclude='*.egg-info' \
		--exclude=./tests/.artifacts --exclude=./node_modules --exclude=./.pytest_cache \
		--exclude=./.mypy_cache --exclude=./.ruff_cache \
		-cf - . | tar -C "${dest}" -xf -
fi

install -d -m 0755 "${ROOTFS_DIR}/boot/firmware"
install -m 0644 "${dest}/image/videostation.txt" "${ROOTFS_DIR}/boot/firmware/videostation.txt"
