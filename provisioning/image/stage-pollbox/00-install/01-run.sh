#!/bin/bash -e
# Install pollbox's files into the image root: systemd units, first-boot
# scripts, the station config, the read-only root fstab, the watchdog settings
# and the boot-time pin states. Runs on the build host with ROOTFS_DIR set;
# it only copies files and makes symlinks, so the recipe checks run it too.

: "${ROOTFS_DIR:?ROOTFS_DIR must name the image root}"
FILES="$(dirname "$0")/files"
BOOT="${ROOTFS_DIR}/boot/firmware"

install -d -m 755 "${ROOTFS_DIR}/etc/systemd/system" "${ROOTFS_DIR}/etc/systemd/system.conf.d" \
	"${ROOTFS_DIR}/etc/systemd/journald.conf.d" "${ROOTFS_DIR}/usr/local/sbin" "${ROOTFS_DIR}/etc/pollbox" \
	"${ROOTFS_DIR}/var/lib/pollbox" "${BOOT}"

for unit in pollbox.service pollbox-kiosk.service pollbox-firstboot.service pollbox-data-setup.service \
	var-lib-pollbox.mount; do
	install -m 644 "${FILES}/etc/systemd/system/${unit}" "${ROOTFS_DIR}/etc/systemd/system/${unit}"
done
install -m 644 "${FILES}/etc/systemd/system.conf.d/pollbox-watchdog.conf" "${ROOTFS_DIR}/etc/systemd/system.conf.d/"
install -m 644 "${FILES}/etc/systemd/journald.conf.d/pollbox-volatile.conf" "${ROOTFS_DIR}/etc/systemd/journald.conf.d/"
install -m 755 "${FILES}/usr/local/sbin/pollbox-firstboot" "${ROOTFS_DIR}/usr/local/sbin/pollbox-firstboot"
install -m 755 "${FILES}/usr/local/sbin/pollbox-data-setup" "${ROOTFS_DIR}/usr/local/sbin/pollbox-data-setup"
install -m 644 "${FILES}/etc/pollbox/station.toml" "${ROOTFS_DIR}/etc/pollbox/station.toml"
install -m 644 "${FILES}/etc/fstab" "${ROOTFS_DIR}/etc/fstab"

# Boot-time pin states and the hardware watchdog, appended once to config.txt.
touch "${BOOT}/config.txt"
if ! grep -q "^# pollbox begin" "${BOOT}/config.txt"; then
	cat "${FILES}/boot/config-pollbox.txt" >> "${BOOT}/config.txt"
fi

# Read-only root on the kernel command line; no first-boot root resize (the
# rest of the card becomes the data partition instead).
if [ -f "${BOOT}/cmdline.txt" ]; then
	sed -i -e 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' -e 's| rw | ro |' "${BOOT}/cmdline.txt"
	grep -q ' ro ' "${BOOT}/cmdline.txt" || sed -i 's|$| ro|' "${BOOT}/cmdline.txt"
fi

# Enable the units the way 'systemctl enable' would.
wants() {
	install -d -m 755 "${ROOTFS_DIR}/etc/systemd/system/$1"
	ln -sfn "../$2" "${ROOTFS_DIR}/etc/systemd/system/$1/$2"
}
wants multi-user.target.wants pollbox.service
wants multi-user.target.wants pollbox-firstboot.service
wants graphical.target.wants pollbox-kiosk.service
wants local-fs.target.wants var-lib-pollbox.mount
wants local-fs-pre.target.wants pollbox-data-setup.service
ln -sfn /lib/systemd/system/graphical.target "${ROOTFS_DIR}/etc/systemd/system/default.target"
# The login prompt on tty1 would fight the kiosk for the screen.
ln -sfn /dev/null "${ROOTFS_DIR}/etc/systemd/system/getty@tty1.service"
