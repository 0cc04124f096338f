#!/bin/bash
# Install the appliance into a copy of the cached Debian system (made by customize.sh): the files of
# rootfs/ (fstab, units, scripts), the units enabled, and pollbox.
#
#   install-pollbox.sh ROOT WHEELHOUSE PACKAGE-LIST IMAGE-SETTINGS
#
# WHEELHOUSE holds the pollbox wheel and its dependencies' wheels for the image's architecture; they
# go into the virtualenv /opt/pollbox. IMAGE-SETTINGS (the trust anchor, device.firstboot) becomes
# /etc/pollbox/image.toml. PACKAGE-LIST.debian and PACKAGE-LIST.python receive every installed Debian
# and Python package with its version, for the manifest.
set -euo pipefail
ROOT="$1" WHEELS="$2" LIST="$3" SETTINGS="$4"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

in_root() { chroot "$ROOT" "$@"; }

cp -r --no-preserve=ownership "$HERE/rootfs/." "$ROOT/"
find "$HERE/rootfs" -type f -printf '%P\n' | while read -r f; do
	chown root:root "$ROOT/$f"
	if [ -x "$HERE/rootfs/$f" ]; then chmod 0755 "$ROOT/$f"; else chmod 0644 "$ROOT/$f"; fi
done
in_root systemctl enable pollbox.service pollbox-station-import.service pollbox-data-grow.service \
	pollbox-kiosk.service pollbox-touch.service systemd-networkd.service

rm -rf "$ROOT/tmp/wheels"
cp -r "$WHEELS" "$ROOT/tmp/wheels"
# The virtualenv also sees Debian's Python packages (of which the image holds python3-evdev only): the
# same switch as venv --system-site-packages. Its own packages come first on the path.
sed -i 's/^include-system-site-packages = false$/include-system-site-packages = true/' "$ROOT/opt/pollbox/pyvenv.cfg"
grep -qx 'include-system-site-packages = true' "$ROOT/opt/pollbox/pyvenv.cfg"
# pollbox, the GPIO library of the Pi 5 and the scanners' and decoders' libraries (hardware.txt, written
# by build.sh's build_wheels)
in_root /opt/pollbox/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels pollbox rpi-lgpio \
	-r /tmp/wheels/hardware.txt
rm -rf "$ROOT/tmp/wheels"
in_root /opt/pollbox/bin/pollbox --help >/dev/null
# every hardware library loads, the native ones included (pyzbar.pyzbar loads Debian's libzbar0)
in_root /opt/pollbox/bin/python -c 'import evdev, serial, cv2, numpy, PIL, zxingcpp, pyzbar.pyzbar'
# and the TPM library (build.sh: on arm64 built by tpm-wheel.sh) through the appliance's TPM backend,
# against the image's own libtss2 libraries: an image whose unit could not drive its TPM is not built
in_root /opt/pollbox/bin/python -c 'import tpm2_pytss, device.hardware.tpm'
install -D -m 0644 -o root -g root "$SETTINGS" "$ROOT/etc/pollbox/image.toml"
# shellcheck disable=SC2016 # dpkg-query's own format fields
in_root dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort > "$LIST.debian"
in_root /opt/pollbox/bin/pip list --format freeze 2>/dev/null | sort > "$LIST.python"
