#!/bin/bash
# mmdebstrap customize hook: turn the bootstrapped Debian tree into the pollbox appliance's system.
#
#   customize.sh ROOT
#
# ROOT is the new system's tree. The Debian system the appliance needs: its users, the virtualenv's
# Python, no login anywhere. The appliance's own files and units (rootfs/) and pollbox go in
# afterwards (install-pollbox.sh), so that this system, kept in the build cache, is reused when only
# they change.
set -euo pipefail
ROOT="$1"

in_root() { chroot "$ROOT" "$@"; }

make_venv() {
	in_root python3 -m venv /opt/pollbox
}

add_users() {
	# dialout: the serial scanner and the smart box's UART; input: the keyboard-mode scanner (evdev);
	# video: the camera (/dev/video*, V4L2); tss: the TPM's resource manager (/dev/tpmrm0, tpm-udev's rule)
	in_root useradd --system --user-group --groups dialout,input,video,tss --home-dir /var/lib/pollbox --no-create-home \
		--shell /usr/sbin/nologin pollbox
	# the kiosk's browser: no home on disk (its profile is in RAM), the screen and touch devices only
	in_root useradd --system --user-group --groups video,render,input --home-dir /run/pollbox-kiosk --no-create-home \
		--shell /usr/sbin/nologin pollbox-kiosk
	mkdir -p "$ROOT/var/lib/pollbox" "$ROOT/boot/efi"
}

no_login() {
	in_root systemctl set-default multi-user.target
	# No login anywhere: no getty on the screen or the serial line. No random seed written back either:
	# the root is read-only, and the EFI partition is mounted read-only and holds no systemd-boot (trixie's
	# systemd-boot-random-seed would fail at every boot and leave the system "degraded").
	in_root systemctl mask getty@tty1.service serial-getty@ttyS0.service console-getty.service \
		systemd-random-seed.service systemd-boot-random-seed.service
}

settle_system() {
	echo pollbox > "$ROOT/etc/hostname"
	: > "$ROOT/etc/machine-id"
	rm -f "$ROOT/var/lib/dbus/machine-id"
	in_root passwd --lock root >/dev/null
	# the initramfs was made once, when the kernel was installed, with the image's settings
	# (initramfs-tools/conf.d/pollbox.conf is put in before the kernel by build.sh)
	[ -n "$(find "$ROOT/boot" -maxdepth 1 -name 'initrd.img-*')" ]
}

add_users
make_venv
no_login
settle_system
