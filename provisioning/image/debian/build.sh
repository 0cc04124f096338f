#!/bin/bash
# Build the pollbox appliance image from Debian's packages with mmdebstrap.
#
#   build.sh ARCH OUT-DIR
#
# Writes OUT-DIR/pollbox-ARCH.img and OUT-DIR/pollbox-ARCH.manifest. The image is rebuilt only when
# the recipe (this folder) or pollbox's sources change: their hash is kept in OUT-DIR/pollbox-ARCH.key.
# Downloaded Debian packages and Python wheels are kept in OUT-DIR/cache. The image is written under
# a temporary name and renamed at the end, so a failed build never leaves one under the final name.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
SUITE=bookworm
MIRROR="${POLLBOX_MIRROR:-http://deb.debian.org/debian}"
PYTHON_VERSION=3.11  # bookworm's python3
PYTHON="${PYTHON:-python3}"
SOURCES=(setup.cfg pyproject.toml README.md device web_ui protocol provisioning receiver)
ESP_MB=160
DATA_MB=256
STEPS=7
STEP=0
STEP_NAME=""

ARCH="${1:-}"
OUT="${2:-}"

die() {
	echo "image: $*" >&2
	exit 2
}

step() {
	STEP=$((STEP + 1))
	STEP_NAME="$1"
	printf '[%d/%d] %s (%ds)\n' "$STEP" "$STEPS" "$STEP_NAME" "$SECONDS"
}

on_error() {
	if [ -f "$WORK/build.log" ]; then
		echo "image: the last lines of the build log:" >&2
		tail -n 25 "$WORK/build.log" >&2
	fi
	echo "image: step ${STEP}/${STEPS} failed: ${STEP_NAME}; nothing was written under the final name" >&2
	rm -rf "$WORK"
}

# Run one build step with its output in the build log (shown when the step fails).
quietly() {
	"$@" >>"$WORK/build.log" 2>&1
}

need() {
	local tool="$1" package="$2"
	command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 \
		|| MISSING="$MISSING $package"
}

check_host() {
	[ "$(id -u)" -eq 0 ] || die "building an image needs root (mmdebstrap, chroot): run it with sudo"
	MISSING=""
	need mmdebstrap mmdebstrap
	need mke2fs e2fsprogs
	need mkfs.vfat dosfstools
	need mcopy mtools
	need sfdisk fdisk
	need "$PYTHON" python3
	need git git
	[ -z "$MISSING" ] || die "missing Debian packages:$MISSING — install them with: apt-get install$MISSING"
	local free_mb
	free_mb=$(df -Pm "$OUT" | awk 'NR == 2 { print $4 }')
	[ "$free_mb" -ge 4096 ] || die "only ${free_mb} MB free in $OUT; a build needs 4 GB"
}

recipe_key() {
	{
		echo "$ARCH $SUITE $MIRROR"
		(cd "$HERE" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
		git -C "$REPO" ls-tree HEAD -- "${SOURCES[@]}"
	} | sha256sum | cut -d' ' -f1
}

packages() {
	grep -hv '^\s*#' "$HERE/packages-common.txt" "$HERE/packages-$ARCH.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//'
}

pip_platform() {
	case "$ARCH" in
		amd64) echo manylinux2014_x86_64 ;;
		arm64) echo manylinux2014_aarch64 ;;
	esac
}

build_wheels() {
	local wheels="$WORK/wheels" cache="$OUT/cache/wheels-$ARCH"
	mkdir -p "$wheels" "$cache"
	mkdir -p "$WORK/src"
	# pollbox as committed (the manifest names the commit), not whatever the working tree holds now
	git -C "$REPO" archive --format=tar HEAD -- "${SOURCES[@]}" | tar -x -C "$WORK/src"
	"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$WORK/src"
	"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: --platform "$(pip_platform)" \
		--python-version "$PYTHON_VERSION" --implementation cp "$wheels"/pollbox-*.whl
	# rpi-lgpio: the RPi.GPIO module over the kernel's GPIO character device (every Pi, the Pi 5 included);
	# lgpio publishes its binary wheels for glibc 2.34 and later only.
	"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: --platform "$(pip_platform)" \
		--platform "manylinux_2_34_$(pip_platform | sed 's/^manylinux2014_//')" \
		--python-version "$PYTHON_VERSION" --implementation cp "rpi-lgpio>=0.6" "lgpio>=0.2"
	cp "$cache"/*.whl "$wheels"/
}

bootstrap() {
	local debs="$OUT/cache/debs-$ARCH"
	mkdir -p "$debs"
	mmdebstrap --quiet --mode=root --variant=apt --arch="$ARCH" --components=main \
		--include="$(packages)" \
		--skip=essential/unlink \
		--setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives/" \
		--setup-hook="sync-in $debs /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives $debs" \
		--customize-hook="$HERE/customize.sh \"\$1\" $WORK/wheels $WORK/packages" \
		"$SUITE" "$WORK/root" "$MIRROR" >/dev/null
}

esp() {
	local root="$WORK/root" img="$WORK/esp.img" kernel initrd
	kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
	initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
	[ -n "$kernel" ] || die "the image has no kernel in /boot"
	[ -n "$initrd" ] || die "the image has no initramfs in /boot"
	mkfs.vfat -C -n POLLBOXESP "$img" $((ESP_MB * 1024)) >/dev/null
	mmd -i "$img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
	mcopy -i "$img" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
	mcopy -i "$img" "$kernel" ::/vmlinuz
	mcopy -i "$img" "$initrd" ::/initrd.img
	printf 'default pollbox.conf\ntimeout 0\neditor no\n' > "$WORK/loader.conf"
	printf 'title pollbox\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' \
		"root=LABEL=POLLBOXROOT ro rootfstype=ext4 console=tty1 console=ttyS0,115200 systemd.show_status=1 systemd.status_unit_format=name" \
		> "$WORK/pollbox.conf"
	mcopy -i "$img" "$WORK/loader.conf" ::/loader/loader.conf
	mcopy -i "$img" "$WORK/pollbox.conf" ::/loader/entries/pollbox.conf
}

filesystems() {
	local used_mb
	used_mb=$(du -sxm "$WORK/root" | cut -f1)
	ROOT_MB=$((used_mb + used_mb / 4 + 64))
	mke2fs -q -t ext4 -L POLLBOXROOT -d "$WORK/root" "$WORK/root.img" "${ROOT_MB}M"
	mke2fs -q -t ext4 -L POLLBOXDATA "$WORK/data.img" "${DATA_MB}M"
}

disk() {
	local img="$WORK/pollbox.img" total=$((1 + ESP_MB + ROOT_MB + DATA_MB + 1))
	truncate -s "${total}M" "$img"
	sfdisk --quiet "$img" <<-TABLE
		label: gpt
		start=1MiB, size=${ESP_MB}MiB, type=uefi, name=esp
		size=${ROOT_MB}MiB, type=linux, name=root
		size=${DATA_MB}MiB, type=linux, name=data
	TABLE
	dd if="$WORK/esp.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$WORK/root.img" of="$img" bs=1M seek=$((1 + ESP_MB)) conv=notrunc,sparse status=none
	dd if="$WORK/data.img" of="$img" bs=1M seek=$((1 + ESP_MB + ROOT_MB)) conv=notrunc,sparse status=none
}

manifest() {
	local sum
	sum=$(sha256sum "$WORK/pollbox.img" | cut -d' ' -f1)
	{
		echo "# pollbox-$ARCH image, Debian $SUITE from $MIRROR, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "# recipe key $KEY, pollbox from commit $(git -C "$REPO" rev-parse HEAD)"
		echo "sha256 $sum pollbox-$ARCH.img"
		echo "size $(stat -c %s "$WORK/pollbox.img")"
		echo "## debian packages (name, version, architecture)"
		cat "$WORK/packages.debian"
		echo "## python packages in /opt/pollbox"
		cat "$WORK/packages.python"
	} > "$WORK/pollbox.manifest"
}

[ -n "$ARCH" ] || die "usage: build.sh ARCH OUT-DIR (ARCH: amd64 or arm64)"
[ -n "$OUT" ] || die "usage: build.sh ARCH OUT-DIR (ARCH: amd64 or arm64)"
case "$ARCH" in
	amd64) ;;
	arm64) die "arm64 (Raspberry Pi) is not built yet: its boot partition (raspi-firmware, config.txt) is still to be written" ;;
	*) die "unknown architecture '$ARCH': amd64 or arm64" ;;
esac
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
check_host
KEY="$(recipe_key)"
FINAL="$OUT/pollbox-$ARCH.img"
if [ -f "$FINAL" ] && [ -f "$OUT/pollbox-$ARCH.manifest" ] && [ "$(cat "$OUT/pollbox-$ARCH.key" 2>/dev/null)" = "$KEY" ]; then
	echo "image: $FINAL is up to date (recipe key ${KEY:0:12})"
	exit 0
fi
WORK="$(mktemp -d "$OUT/.work-$ARCH.XXXXXX")"
trap on_error ERR
step "Python wheels for $ARCH"; quietly build_wheels
step "Debian $SUITE system with mmdebstrap"; quietly bootstrap
step "EFI system partition"; quietly esp
step "root and data file systems"; quietly filesystems
step "disk image"; quietly disk
step "manifest"; quietly manifest
step "install under the final name"
rm -f "$OUT/pollbox-$ARCH.key"
mv "$WORK/pollbox.img" "$FINAL"
mv "$WORK/pollbox.manifest" "$OUT/pollbox-$ARCH.manifest"
echo "$KEY" > "$OUT/pollbox-$ARCH.key"
trap - ERR
rm -rf "$WORK"
echo "image: $FINAL ($(du -h --apparent-size "$FINAL" | cut -f1), built in ${SECONDS}s)"
