#!/bin/bash
# Compile pollbox's own device-tree overlays for the Raspberry Pi into the .dtbo files the Pi's firmware
# loads for config.txt's `dtoverlay=<name>` lines, or by its display detection (from overlays/<name>.dtbo on
# the boot partition). Run by the image build (build.sh), which copies OUT-DIR/*.dtbo into the boot
# partition's overlays/ folder.
#
#   dtoverlays.sh SUITE OUT-DIR
#
# An overlay is written against the device tree of the kernel the image ships, and that tree differs
# between Debian's suites (bookworm's 6.1 kernel and the trixie image's backports kernel), so the sources
# are kept per suite: writes OUT-DIR/<name>.dtbo for every pi/overlays/SUITE/<name>.dts, with Debian's dtc
# (package device-tree-compiler), `-@` so that the overlay carries its labels. Each file is written under
# a temporary name and renamed when dtc succeeded, so a source that does not compile leaves no .dtbo behind
# (and an older .dtbo of that name is removed). Exit status 2 with a message naming the file (or what to
# install) on any failure.
set -Eeuo pipefail

here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
HERE="$(cd "$here" && pwd)"
SUITE="${1:-}"
OUT="${2:-}"

die() {
	echo "dtoverlays: $*" >&2
	exit 2
}

if [ "$#" -ne 2 ] || [ -z "$SUITE" ] || [ -z "$OUT" ]; then
	die "usage: dtoverlays.sh SUITE OUT-DIR"
fi
SOURCES="$HERE/overlays/$SUITE"
[ -d "$SOURCES" ] || die "no overlays for the Debian suite '$SUITE' (no folder $SOURCES)"
command -v dtc >/dev/null 2>&1 ||
	die "dtc (the device-tree compiler) is not installed: install Debian's device-tree-compiler (apt-get install device-tree-compiler)"
mkdir -p "$OUT" || die "cannot create the output folder $OUT"

shopt -s nullglob
sources=("$SOURCES"/*.dts)
[ "${#sources[@]}" -gt 0 ] || die "no overlay sources (*.dts) in $SOURCES"

for src in "${sources[@]}"; do
	name="${src##*/}"
	name="${name%.dts}"
	dtbo="$OUT/$name.dtbo"
	tmp="$OUT/.$name.dtbo.tmp"
	rm -f "$dtbo" "$tmp"
	if ! messages="$(dtc -@ -I dts -O dtb -o "$tmp" "$src" 2>&1)"; then
		rm -f "$tmp"
		die "the overlay $src does not compile:
$messages"
	fi
	# dtc's warnings (a node or property it finds unusual) do not stop the build, but are shown
	[ -z "$messages" ] || printf 'dtoverlays: warnings for %s:\n%s\n' "$src" "$messages" >&2
	mv -f "$tmp" "$dtbo"
done
