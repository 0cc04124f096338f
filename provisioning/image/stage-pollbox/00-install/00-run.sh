#!/bin/bash -e
# Hand the pollbox wheel (built by build.sh) to the chroot step.
: "${ROOTFS_DIR:?ROOTFS_DIR must name the image root}"
install -d -m 755 "${ROOTFS_DIR}/tmp/pollbox-wheels"
install -m 644 "$(dirname "$0")"/files/wheels/pollbox-*.whl "${ROOTFS_DIR}/tmp/pollbox-wheels/"
