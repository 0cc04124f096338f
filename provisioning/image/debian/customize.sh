#!/bin/bash
# mmdebstrap customize hook: turn the bootstrapped Debian tree into the pollbox appliance.
#
#   customize.sh ROOT WHEELHOUSE PACKAGE-LIST
#
# ROOT is the new system's tree; WHEELHOUSE holds the pollbox wheel and its dependencies' wheels for
# the image's architecture; PACKAGE-LIST receives every installed Debian package with its version.
set -euo pipefail
ROOT="$1" WHEELS="$2" LIST="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

in_root() { chroot "$ROOT" "$@"; }

install_files() {
	cp -r --no-preserve=ownership "$HERE/rootfs/." "$ROOT/"
	find "$HERE/rootfs" -type f -printf '%P\n' | while read -r f; do
		chown root:root "$ROOT/$f"
		if [ -x "$HERE/rootfs/$f" ]; then chmod 0755 "$ROOT/$f"; else chmod 0644 "$ROOT/$f"; fi
	done
}

install_pollbox() {
	rm -rf "$ROOT/tmp/wheels"
	cp -r "$WHEELS" "$ROOT/tmp/wheels"
	in_root python3 -m venv /opt/pollbox
	in_root /opt/pollbox/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels pollbox rpi-lgpio
	rm -rf "$ROOT/tmp/wheels"
	in_root /opt/pollbox/bin/pollbox --help >/dev/null
}

add_users() {
	# dialout: the serial scanner and the smart box's UART; input: the keyboard-mode scanner (evdev)
	in_root useradd --system --user-group --groups dialout,input --home-dir /var/lib/pollbox --no-create-home \
		--shell /usr/sbin/nologin pollbox
	mkdir -p "$ROOT/var/lib/pollbox" "$ROOT/boot/efi"
}

enable_units() {
	in_root systemctl enable pollbox.service pollbox-station-import.service systemd-networkd.service
	in_root systemctl set-default multi-user.target
	# No login anywhere: no getty on the screen or the serial line.
	in_root systemctl mask getty@tty1.service serial-getty@ttyS0.service console-getty.service \
		systemd-random-seed.service
}

settle_system() {
	echo pollbox > "$ROOT/etc/hostname"
	: > "$ROOT/etc/machine-id"
	rm -f "$ROOT/var/lib/dbus/machine-id"
	in_root passwd --lock root >/dev/null
	in_root update-initramfs -u -k all >/dev/null
}

write_package_list() {
	# shellcheck disable=SC2016 # dpkg-query's own format fields
	in_root dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > "$LIST.debian"
	in_root /opt/pollbox/bin/pip list --format freeze 2>/dev/null | sort > "$LIST.python"
}

install_files
add_users
install_pollbox
enable_units
settle_system
write_package_list
