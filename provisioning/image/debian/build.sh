#!/bin/bash
# Build the pollbox appliance image from Debian's packages with mmdebstrap.
#
#   build.sh ARCH OUT-DIR
#   build.sh --key ARCH      print the image's key and build nothing (no root needed)
#   build.sh --cache-name ARCH  print the name its entries in the build cache carry (SUITE-ARCH: the
#                            Debian system base-NAME-KEY, wheels-NAME, debs-NAME, images image-NAME-KEY)
#   build.sh --base-key ARCH    print the key of the Debian system it builds on (the KEY of base-NAME-KEY)
#
# Writes OUT-DIR/pollbox-ARCH.img and OUT-DIR/pollbox-ARCH.manifest. The image is keyed by what goes
# into it: the recipe (this folder), the image settings below and the committed content of pollbox's
# packaged sources (SOURCES: a commit that touches only tests, docs or benchmarks keeps the key); the
# key is kept in OUT-DIR/pollbox-ARCH.key and the image is rebuilt only when it changes.
#
# The build cache is per user, shared by every clone: downloaded Debian packages and Python wheels,
# the Debian system itself (keyed by the package lists and customize.sh alone, so a change to pollbox
# only reinstalls pollbox), and the last finished images by key (image-ARCH-KEY/), so that a fresh
# clone on a machine that has built the same image before copies it instead of building. A build
# holds a lock per output folder and one per cache and architecture, so two builds of one image, from
# one clone or two, never work at once: the second waits, then copies the first one's image. Images
# are written under a temporary name and renamed at the end, in the cache and in OUT-DIR, so a failed
# build never leaves one under the final name.
#
# The image's trust anchor and settings come from the environment (all part of the cache key):
#   POLLBOX_ELECTION_ID, POLLBOX_CEC_PUBLIC_KEY  the election and the CEC public key (base64) a station
#       package on the first-boot stick must match; without them every stick is refused (no_anchor)
#   POLLBOX_ALLOW_SIMULATION=1  also accept a simulated (demonstration) station: test images only
#   POLLBOX_SCREEN_HOST  where the first-boot screen listens (default 127.0.0.1, the kiosk's address)
#   POLLBOX_IMAGE_CACHE  the build cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/pollbox/image)
#   POLLBOX_BINFMT_DIR  where binfmt_misc is mounted (default /proc/sys/fs/binfmt_misc; arm64 on another host)
#   POLLBOX_SUITE  the Debian release the system is built from: trixie (Debian 13, the default; on arm64
#       with trixie-backports' kernel, the one that drives the Raspberry Pi 5) or bookworm (Debian 12, in
#       Debian's long-term support since June 2026: Pi 4 and amd64 only)
#   POLLBOX_MIRROR, POLLBOX_SECURITY_MIRROR  Debian's archive and its security archive (default
#       deb.debian.org's; a local mirror or snapshot.debian.org to rebuild a past image)
# shellcheck disable=SC2317 # main exits at its end (see main), and shellcheck then takes every function for unreachable
set -Eeuo pipefail  # -E: the ERR trap (on_error) also fires inside functions, main included

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
SUITE="${POLLBOX_SUITE:-trixie}"
MIRROR="${POLLBOX_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${POLLBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
COMPONENTS=main  # the archive's components the system is built from (the Pi adds non-free-firmware)
PYTHON_VERSION=3.11  # the suite's python3 (suite_settings)
GLIBC_MINOR=36  # the suite's glibc is 2.GLIBC_MINOR: the newest manylinux wheels its system can load
# Package names of the lists (packages-*.txt, written with bookworm's names) that are other names in
# trixie: its libraries renamed by Debian's 64-bit time_t transition (t64), and the TSS2 marshalling
# library, named by its new version; the ESYS library also brings tpm2-tss 4's policy library, which
# tpm2-pytss links when it is built against trixie's libtss2-dev. Every other name is the same in both.
declare -A TRIXIE_NAMES=(
	[libzbar0]=libzbar0t64
	[libtss2-esys-3.0.2-0]="libtss2-esys-3.0.2-0t64 libtss2-policy0t64"
	[libtss2-fapi1]=libtss2-fapi1t64
	[libtss2-mu0]=libtss2-mu-4.0.1-0t64
	[libtss2-rc0]=libtss2-rc0t64
	[libtss2-tctildr0]=libtss2-tctildr0t64
)
PYTHON="${PYTHON:-python3}"
SOURCES=(setup.cfg pyproject.toml device web_ui protocol provisioning receiver)
# the wheel's long description (setup.cfg: README.md) is a fixed text, so that an edit of the project's
# README is not another image
WHEEL_README="pollbox: the polling-station appliance, as installed in the pollbox image."
CACHED_IMAGES=2  # finished images kept in the cache per architecture (e.g. make image's and the tests')
ESP_MB=160
DATA_MB=256  # the data partition as shipped: the first boot grows it to the end of the disk (pollbox-data-grow)
STEPS=9
STEP=0
STEP_NAME=""

ARCH="${1:-}"
OUT="${2:-}"
ELECTION_ID="${POLLBOX_ELECTION_ID:-}"
CEC_PUBLIC_KEY="${POLLBOX_CEC_PUBLIC_KEY:-}"
ALLOW_SIMULATION="${POLLBOX_ALLOW_SIMULATION:-0}"
SCREEN_HOST="${POLLBOX_SCREEN_HOST:-127.0.0.1}"

die() {
	echo "image: $*" >&2
	exit 2
}

# What follows from the suite (POLLBOX_SUITE): its Python and glibc, and the name of its entries in the
# build cache (CACHED, SUITE-ARCH: two suites never share, evict or wait for each other's Debian system,
# downloaded packages, wheels or images).
suite_settings() {
	CACHED="$SUITE-$ARCH"
	case "$SUITE" in
		bookworm) PYTHON_VERSION=3.11 GLIBC_MINOR=36 LGPIO_FROM_SOURCE=0 ;;
		# lgpio publishes binary wheels up to CPython 3.12: for trixie's 3.13 it is built from its source
		# trixie-backports' arm64 kernel Image is about 52 MB and its initramfs 38 MB (bookworm's 33 and 30),
		# which left 3.5 MB of a 96 MiB Pi boot partition: 128 MiB each (trixie's Pi image has the room)
		trixie)
			PYTHON_VERSION=3.13 GLIBC_MINOR=41 LGPIO_FROM_SOURCE=1
			[ "$ARCH" != arm64 ] || PI_BOOT_MB=128
			;;
		*) die "unknown Debian suite '$SUITE' (POLLBOX_SUITE): bookworm or trixie" ;;
	esac
}

step() {
	STEP=$((STEP + 1))
	STEP_NAME="$1"
	printf '[%d/%d] %s (%ds)\n' "$STEP" "$STEPS" "$STEP_NAME" "$SECONDS"
}

on_error() {
	# the failing command may be inside `quietly`, whose output goes to the build log: speak on fd 8, the
	# build's own standard error (opened in main)
	trap - ERR
	if [ -f "$WORK/build.log" ]; then
		echo "image: the last lines of the build log:" >&8
		# pip's notes on each local index folder it skips say nothing about the failure
		{ grep -v "^WARNING: Location" "$WORK/build.log" || true; } | tail -n 40 >&8
	fi
	echo "image: step ${STEP}/${STEPS} failed: ${STEP_NAME}; nothing was written under the final name" >&8
	rm -rf "$WORK" "$CACHE/.image-$CACHED."*
}

# Run one build step with its output in the build log (shown when the step fails).
quietly() {
	"$@" >>"$WORK/build.log" 2>&1
}

# Run mmdebstrap (or a script that runs it) with standard input, output and error only: inside it apt
# hands dpkg's package list to dash through a free descriptor, and dash reads a single digit only, so a
# descriptor this script holds (its locks, its log) may push that to one dash cannot read (">&11":
# trixie's bootstrap failed so). Closed in a subshell: the locks stay held by this shell.
bare() {
	(
		for fd in "/proc/$BASHPID/fd"/*; do
			fd=${fd##*/}
			if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
		done
		exec "$@"
	)
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
	[ "$ARCH" != arm64 ] || need dtc device-tree-compiler
	[ -z "$MISSING" ] || die "missing Debian packages:$MISSING — install them with: apt-get install$MISSING"
	[ "$ARCH" != arm64 ] || check_foreign_arm64
}

# Room to build (a copy of the image from the cache needs only the image's own size, which its copy checks)
check_space() {
	local free_mb
	free_mb=$(df -Pm "$OUT" | awk 'NR == 2 { print $4 }')
	[ "$free_mb" -ge 4096 ] || die "only ${free_mb} MB free in $OUT; a build needs 4 GB"
	free_mb=$(df -Pm "$CACHE" | awk 'NR == 2 { print $4 }')
	[ "$free_mb" -ge 4096 ] || die "only ${free_mb} MB free in the build cache $CACHE; a build needs 4 GB"
}

# Building arm64 on another machine runs the new system's programs through qemu-user: binfmt_misc must
# be mounted and hand aarch64 programs to a static qemu-aarch64 opened at registration (flag F), so
# that it also works inside the chroot.
check_foreign_arm64() {
	case "$(uname -m)" in aarch64 | arm64) return 0 ;; esac
	local binfmt="${POLLBOX_BINFMT_DIR:-/proc/sys/fs/binfmt_misc}"
	local entry="$binfmt/qemu-aarch64"
	[ -e "$binfmt/status" ] \
		|| die "building arm64 on $(uname -m) needs binfmt_misc mounted: mount -t binfmt_misc binfmt_misc $binfmt"
	grep -qsx enabled "$entry" \
		|| die "building arm64 on $(uname -m) needs qemu-aarch64 registered with binfmt_misc: apt-get install qemu-user-static"
	grep -q '^flags:.*F' "$entry" \
		|| die "qemu-aarch64 is registered without the F flag, so it cannot run in a chroot: apt-get install qemu-user-static (not qemu-user-binfmt)"
}

# The archives the system is built from, as apt sources lines: the suite, its stable updates and Debian's
# security archive, so the image carries every security fix published for its packages (Chromium, the
# kernel, OpenSSL...) up to the day its base system was built; the manifest names each package's version.
# The Pi on trixie also has trixie's backports, for its kernel only (backports_kernel).
sources_lines() {
	printf '%s\n' "deb $MIRROR $SUITE $COMPONENTS" "deb $MIRROR $SUITE-updates $COMPONENTS" \
		"deb $SECURITY_MIRROR $SUITE-security $COMPONENTS"
	if backports_kernel; then echo "deb $MIRROR $SUITE-backports $COMPONENTS"; fi
}

# The Raspberry Pi's image on trixie takes its kernel from trixie-backports: the Pi 5's USB ports, 40-pin
# header and Ethernet sit behind the RP1 chip, whose drivers (rp1_pci, pinctrl-rp1, clk-rp1) and device
# trees come with that kernel only. Everything else stays trixie's (kernel_preferences).
backports_kernel() {
	[ "$ARCH" = arm64 ] && [ "$SUITE" = trixie ]
}

# apt's preferences for backports_kernel: the kernel's packages from backports, whose packages apt
# otherwise never picks (priority 100), and linux-base, which that kernel needs in its backports version
# (>= 4.17; trixie has 4.12); kept in the system, so that it says where its kernel came from.
kernel_preferences() {
	printf '%s\n' "# pollbox: the Raspberry Pi 5 needs trixie-backports' kernel (RP1); the rest is trixie's" \
		"Package: linux-image-arm64 linux-image-*-arm64 linux-base" "Pin: release n=$SUITE-backports" \
		"Pin-Priority: 500"
}

# The Debian system without the appliance: rebuilt when what goes into it changes (the package lists,
# customize.sh, the initramfs settings, the bootstrap step itself, the archives), and at the first build
# of each ISO week (PACKAGES_WEEK), so that a cached system never holds packages more than a week older
# than the security archive's.
base_key() {
	{
		echo "$ARCH $SUITE $PACKAGES_WEEK"
		sources_lines
		if backports_kernel; then kernel_preferences; fi
		(cd "$HERE" && sha256sum packages-common.txt "packages-$ARCH.txt" customize.sh \
			rootfs/etc/initramfs-tools/conf.d/pollbox.conf)
		if backports_kernel; then (cd "$HERE" && sha256sum rauc-deb.sh rauc-dm-status.patch); fi
		declare -f bootstrap patched_rauc
		packages  # the names as the suite has them
	} | sha256sum | cut -d' ' -f1
}

# The whole image: the base system, the whole recipe, the image settings and pollbox's committed sources.
recipe_key() {
	{
		echo "$BASE_KEY"
		(cd "$HERE" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
		image_settings
		# the CEC's update keyring baked into /etc/rauc: another keyring is another image
		if [ -n "${POLLBOX_UPDATE_KEYRING:-}" ]; then sha256sum < "$POLLBOX_UPDATE_KEYRING"; fi
		# the committed content of the packaged sources: git's tree and blob ids of SOURCES at COMMIT (the
		# same ids for the same content, whichever commit), and the wheel's fixed description
		git -C "$REPO" ls-tree "$COMMIT" -- "${SOURCES[@]}"
		echo "$WHEEL_README"
	} | sha256sum | cut -d' ' -f1
}

# The finished image of this key from the cache, if a build made it before: copied into the work
# folder (the cache's copy is never handed out, so nothing done to OUT-DIR's image reaches it).
from_cache() {
	local cached="$CACHE/image-$CACHED-$KEY"
	[ -f "$cached/pollbox.img" ] && [ -f "$cached/pollbox.manifest" ] || return 1
	cp --sparse=always --reflink=auto "$cached/pollbox.img" "$WORK/pollbox.img"
	cp "$cached/pollbox.manifest" "$WORK/pollbox.manifest"
	touch "$cached"  # recently used: kept when older images are dropped
}

# The finished image into the cache under its key: copied into a temporary folder and renamed, so the
# cache never holds half an image under a key; only the CACHED_IMAGES most recently used are kept.
to_cache() {
	local cached="$CACHE/image-$CACHED-$KEY" tmp
	tmp="$(mktemp -d "$CACHE/.image-$CACHED.XXXXXX")"
	cp --sparse=always --reflink=auto "$WORK/pollbox.img" "$tmp/pollbox.img"
	cp "$WORK/pollbox.manifest" "$tmp/pollbox.manifest"
	rm -rf "$cached"
	mv -T "$tmp" "$cached"
	# shellcheck disable=SC2012 # the cache's own folder names: no odd characters
	ls -1td "$CACHE/image-$CACHED-"* | tail -n +$((CACHED_IMAGES + 1)) | xargs -r rm -rf
}

# /etc/pollbox/image.toml: what device.firstboot checks the station stick against.
image_settings() {
	echo "# pollbox image settings, written when the image was built (read by device.firstboot)"
	echo "election_id = \"$ELECTION_ID\""
	echo "cec_public_key = \"$CEC_PUBLIC_KEY\""
	if [ "$ALLOW_SIMULATION" = 1 ]; then echo "allow_simulation = true"; else echo "allow_simulation = false"; fi
	echo
	echo "[screen]"
	echo "host = \"$SCREEN_HOST\""
	echo "port = 8080"
}

# The system's packages, comma-separated for mmdebstrap: the lists' names, in trixie by trixie's names
# (TRIXIE_NAMES, the one place where the suites' names differ).
packages() {
	local name names=()
	# shellcheck disable=SC2013 # words, not lines: a list's line may hold more than one name
	for name in $(grep -hv '^\s*#' "$HERE/packages-common.txt" "$HERE/packages-$ARCH.txt"); do
		if [ "$SUITE" = trixie ]; then name="${TRIXIE_NAMES[$name]:-$name}"; fi
		# shellcheck disable=SC2206 # one name, or the names it becomes, split at their spaces
		names+=($name)
	done
	(IFS=,; echo "${names[*]}")
}

pip_platform() {
	case "$ARCH" in
		amd64) echo manylinux2014_x86_64 ;;
		arm64) echo manylinux2014_aarch64 ;;
	esac
}

build_wheels() {
	# the wheel cache is the suite's own (CACHED): a wheel for one suite's Python never serves another's
	local wheels="$WORK/wheels" cache="$CACHE/wheels-$CACHED"
	mkdir -p "$wheels" "$cache"
	mkdir -p "$WORK/src"
	# pollbox as committed (the manifest names the commit), not whatever the working tree holds now
	git -C "$REPO" archive --format=tar "$COMMIT" -- "${SOURCES[@]}" | tar -x -C "$WORK/src"
	echo "$WHEEL_README" > "$WORK/src/README.md"
	"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$WORK/src"
	# pip download copies the local pollbox wheel into the cache too, and would keep an older copy of the
	# same version there: the cache holds dependencies only, pollbox is always the wheel just built
	rm -f "$cache"/pollbox-*.whl
	# manylinux_2_28 too (bookworm has glibc 2.36, trixie 2.41): some dependencies publish aarch64 wheels for it only
	"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: --platform "$(pip_platform)" \
		--platform "manylinux_2_28_$(pip_platform | sed 's/^manylinux2014_//')" \
		--python-version "$PYTHON_VERSION" --implementation cp "$wheels"/pollbox-*.whl
	# rpi-lgpio: the RPi.GPIO module over the kernel's GPIO character device (every Pi, the Pi 5 included);
	# lgpio publishes its binary wheels for glibc 2.34 and later only, and for CPython up to 3.12: for a
	# later Python (LGPIO_FROM_SOURCE) it is built from its source with tpm2-pytss, below.
	if [ "$LGPIO_FROM_SOURCE" = 1 ]; then
		"$PYTHON" -m pip download --quiet --dest "$cache" --no-deps --only-binary=:all: "rpi-lgpio>=0.6"
	else
		"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: --platform "$(pip_platform)" \
			--platform "manylinux_2_34_$(pip_platform | sed 's/^manylinux2014_//')" \
			--python-version "$PYTHON_VERSION" --implementation cp "rpi-lgpio>=0.6" "lgpio>=0.2"
	fi
	# the scan decoders and the scanners' and the smart box's sources (setup.cfg's scan extra but evdev,
	# which publishes no binary wheel: the image takes Debian's python3-evdev, see docs/image.md). Their
	# wheels are manylinux_2_17 to _2_28; Debian bookworm's glibc is 2.36, so every tag up to it is accepted.
	local hardware=("zxing-cpp>=2.2" "pyzbar>=0.1.9" "numpy>=1.26" "pillow>=10" "opencv-python-headless>=4.8"
		"pyserial>=3.5") machine glibc platforms=()
	machine=$(pip_platform | sed 's/^manylinux2014_//')
	platforms=(--platform "$(pip_platform)")
	for glibc in $(seq 17 "$GLIBC_MINOR"); do platforms+=(--platform "manylinux_2_${glibc}_$machine"); done
	"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: "${platforms[@]}" \
		--python-version "$PYTHON_VERSION" --implementation cp "${hardware[@]}"
	# tpm2-pytss, the TPM-held record key ([key] store = "tpm"): it publishes no binary wheel, and Debian's
	# python3-tpm2-pytss 1.2 does not load with cryptography >= 42. Built from its source against the
	# suite's libtss2-dev (the image's own libtss2 libraries): on the build host when it is of the image's
	# architecture and its Python is the suite's (bookworm's 3.11 on a bookworm host), else in a throwaway
	# Debian system of the suite and architecture (tpm-wheel.sh: a chroot, under qemu-user for the Pi's
	# arm64 on an amd64 host). Kept in the suite's wheel cache: built once per cache.
	local tpm=("tpm2-pytss>=3.0") host_python
	host_python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	if ! ls "$cache"/tpm2_pytss-*.whl >/dev/null 2>&1 \
		|| { [ "$LGPIO_FROM_SOURCE" = 1 ] && ! ls "$cache"/lgpio-*.whl >/dev/null 2>&1; }; then
		if [ "$ARCH" = "$(dpkg --print-architecture)" ] && [ "$host_python" = "$PYTHON_VERSION" ] \
			&& [ "$LGPIO_FROM_SOURCE" = 0 ]; then
			"$PYTHON" -m pip wheel --quiet --no-deps --no-binary tpm2-pytss --wheel-dir "$cache" "${tpm[@]}"
		else  # bare: its mmdebstrap, as bootstrap's
			PYTHON="$PYTHON" TMPDIR="$WORK" WITH_LGPIO="$LGPIO_FROM_SOURCE" bare "$HERE/tpm-wheel.sh" "$ARCH" "$cache" "$CACHE/debs-$CACHED" "$SUITE" \
				"deb $MIRROR $SUITE main" "$PYTHON_VERSION" "$GLIBC_MINOR"
		fi
	fi
	"$PYTHON" -m pip download --quiet --dest "$cache" --only-binary=:all: "${platforms[@]}" \
		--platform "linux_$machine" --python-version "$PYTHON_VERSION" --implementation cp "$cache"/tpm2_pytss-*.whl
	rm -f "$cache"/pollbox-*.whl
	cp -n "$cache"/*.whl "$wheels"/
	printf '%s\n' "${hardware[@]}" "${tpm[@]}" > "$wheels/hardware.txt"
}

# The Debian system with the appliance's files and units, kept in the cache under its key (the
# packages' download cache is kept too). Made in the work folder and renamed into the cache, so an
# interrupted build never leaves half a base system to be reused.
bootstrap() {
	local debs="$CACHE/debs-$CACHED" base="$CACHE/base-$CACHED-$BASE_KEY" hooks=()
	if [ -d "$base" ]; then
		echo "reusing the Debian system $base"
		return 0
	fi
	mkdir -p "$debs"
	local sources
	mapfile -t sources < <(sources_lines)
	if backports_kernel; then
		kernel_preferences > "$WORK/kernel.pref"
		hooks+=(--setup-hook="mkdir -p \"\$1\"/etc/apt/preferences.d"
			--setup-hook="copy-in $WORK/kernel.pref /etc/apt/preferences.d/")
	fi
	bare mmdebstrap --quiet --mode=root --variant=apt --arch="$ARCH" \
		--include="$(packages)" \
		--skip=essential/unlink \
		--setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives/" \
		--setup-hook="sync-in $debs /var/cache/apt/archives/" \
		"${hooks[@]}" \
		--essential-hook="mkdir -p \"\$1\"/etc/initramfs-tools/conf.d" \
		--essential-hook="copy-in $HERE/rootfs/etc/initramfs-tools/conf.d/pollbox.conf /etc/initramfs-tools/conf.d/" \
		--customize-hook="sync-out /var/cache/apt/archives $debs" \
		--customize-hook="$HERE/customize.sh \"\$1\"" \
		"$SUITE" "$WORK/base" "${sources[@]}" >/dev/null
	if backports_kernel; then patched_rauc "$WORK/base"; fi
	find "$CACHE" -maxdepth 1 -name "base-$CACHED-*" ! -name "base-$CACHED-$BASE_KEY" -exec rm -rf {} +
	# another build may have put the same system there meanwhile: then that one is kept
	mv -T "$WORK/base" "$base" 2>/dev/null || rm -rf "$WORK/base"
}

# RAUC with rauc-dm-status.patch in place of the suite's, in the Debian system ROOT: for backports_kernel's
# kernel (7.3 on the Pi), whose dm-verity status the suite's RAUC (trixie's 1.13) refuses, so that no
# update bundle would mount (docs/updates.md). Built by rauc-deb.sh from Debian's source of the version
# ROOT has, once per version and patch (kept in the cache as rauc-NAME-PATCH/), and installed with dpkg
# over that version; the manifest lists it as VERSION+pollbox1.
# shellcheck disable=SC2016 # dpkg-query's own format fields
patched_rauc() {
	local root="$1" version patch built
	version=$(chroot "$root" dpkg-query -W -f '${Version}' rauc)
	patch=$(cat "$HERE/rauc-deb.sh" "$HERE/rauc-dm-status.patch" | sha256sum | cut -c1-16)
	built="$CACHE/rauc-$CACHED-$patch/rauc_${version}+pollbox1_$ARCH.deb"
	if [ ! -f "$built" ]; then
		local sources
		mapfile -t sources < <(sources_lines)
		TMPDIR="$WORK" bare "$HERE/rauc-deb.sh" "$ARCH" "$WORK/rauc" "$CACHE/debs-$CACHED" "$SUITE" "$version" "${sources[@]}"
		find "$CACHE" -maxdepth 1 -name "rauc-$CACHED-*" ! -name "rauc-$CACHED-$patch" -exec rm -rf {} +
		mkdir -p "$CACHE/rauc-$CACHED-$patch"
		mv "$WORK/rauc/${built##*/}" "$built.tmp"
		mv "$built.tmp" "$built"
	fi
	cp "$built" "$root/tmp/"
	chroot "$root" dpkg -i "/tmp/${built##*/}"
	rm "$root/tmp/${built##*/}"
	[ "$(chroot "$root" dpkg-query -W -f '${Version}' rauc)" = "$version+pollbox1" ] \
		|| die "RAUC $version+pollbox1 was not installed in the system"
}

# The appliance into a copy of the base system: rootfs/, the units, pollbox's virtualenv from the
# wheels, the image settings, the package lists.
add_pollbox() {
	cp -a "$CACHE/base-$CACHED-$BASE_KEY" "$WORK/root"
	"$HERE/install-pollbox.sh" "$WORK/root" "$WORK/wheels" "$WORK/packages" "$WORK/image.toml"
}

esp() {
	local root="$WORK/root" img="$WORK/esp.img" kernel initrd
	kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
	initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
	[ -n "$kernel" ] || die "the image has no kernel in /boot"
	[ -n "$initrd" ] || die "the image has no initramfs in /boot"
	mkfs.vfat -C -n POLLBOXESP "$img" $((ESP_MB * 1024)) >/dev/null
	mmd -i "$img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/a
	mcopy -i "$img" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
	# root slot A's kernel; slot B's is copied next to it when an update makes B the one to boot
	# (rauc/usr/lib/pollbox/rauc-bootloader, docs/updates.md). The first entry with tries left boots.
	mcopy -i "$img" "$kernel" ::/a/vmlinuz
	mcopy -i "$img" "$initrd" ::/a/initrd.img
	printf 'default pollbox-*\ntimeout 0\neditor no\n' > "$WORK/loader.conf"
	printf 'title pollbox (slot A)\nsort-key pollbox-1\nlinux /a/vmlinuz\ninitrd /a/initrd.img\noptions %s\n' \
		"root=PARTLABEL=root ro rootfstype=ext4 rauc.slot=A console=tty1 console=ttyS0,115200 systemd.show_status=1 systemd.status_unit_format=name" \
		> "$WORK/pollbox-a.conf"
	mcopy -i "$img" "$WORK/loader.conf" ::/loader/loader.conf
	mcopy -i "$img" "$WORK/pollbox-a.conf" ::/loader/entries/pollbox-a.conf
}

# The Raspberry Pi's boot partitions (FAT, read by the Pi's own firmware; docs/updates.md, "Boot selection
# on the Raspberry Pi"): a small boot control partition holding autoboot.txt only, which names the
# partition the firmware boots normally and the one it boots once after `reboot "0 tryboot"`; and one
# boot partition per root slot, boot-a with Debian's raspi-firmware files for the Pi 4 (start4.elf,
# fixup4.dat; start.elf and fixup.dat too, as the firmware counts a partition bootable only when it holds
# start.elf), the kernel and initramfs, the device trees of the Pi 4 and 5, config.txt, pollbox's own
# device-tree overlays (overlays/, from pi/overlays/) and cmdline.txt
# (slot A's root by partition UUID, read-only), and boot-b formatted empty: an update writes it whole with
# its root slot (RAUC's boot slots). raspi-firmware's kernel hook filled the system's /boot/firmware when
# the kernel was installed: that copy moves here, the folder stays empty.
pi_boot() {
	local root="$WORK/root" img="$WORK/boot-a.img" kernel initrd dtbs firmware f
	firmware="$root/usr/lib/raspi-firmware"
	kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
	initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
	[ -n "$kernel" ] || die "the image has no kernel in /boot"
	[ -n "$initrd" ] || die "the image has no initramfs in /boot"
	dtbs="$root/usr/lib/linux-image-${kernel##*/vmlinuz-}/broadcom"
	[ -d "$dtbs" ] || die "the kernel has no Broadcom device trees in ${dtbs#"$root"}"
	for f in start.elf fixup.dat start4.elf fixup4.dat; do
		[ -f "$firmware/$f" ] || die "raspi-firmware installed no $f"
	done
	mkfs.vfat -C -F 32 -n BOOT-A "$img" $((PI_BOOT_MB * 1024)) >/dev/null
	for f in start.elf fixup.dat start4.elf fixup4.dat; do mcopy -i "$img" "$firmware/$f" ::/; done
	mcopy -i "$img" "$dtbs"/bcm271[12]-*.dtb ::/
	mcopy -i "$img" "$kernel" ::/vmlinuz
	mcopy -i "$img" "$initrd" ::/initrd.img
	mcopy -i "$img" "$HERE/pi/config.txt" ::/config.txt
	# pollbox's own device-tree overlays (pi/overlays/*.dts), in the folder where the firmware looks for them
	"$HERE/pi/dtoverlays.sh" "$SUITE" "$WORK/overlays"
	mmd -i "$img" ::/overlays
	mcopy -i "$img" "$WORK/overlays"/*.dtbo ::/overlays/
	if backports_kernel; then pi5_boot "$img" "$dtbs" "${kernel##*/vmlinuz-}"; fi
	sed "s/@DISKID@/$PI_DISK_ID/g" "$HERE/pi/cmdline.txt" > "$WORK/cmdline.txt"
	mcopy -i "$img" "$WORK/cmdline.txt" ::/cmdline.txt
	mdir -i "$img" -/ -b ::/ | sed 's|^::/||' > "$WORK/boot-files"
	mkfs.vfat -C -F 32 -n BOOT-B "$WORK/boot-b.img" $((PI_BOOT_MB * 1024)) >/dev/null
	mkfs.vfat -C -F 16 -s 1 -n POLLBOXESP "$WORK/bootctl.img" $((PI_CONTROL_MB * 1024)) >/dev/null
	mcopy -i "$WORK/bootctl.img" "$HERE/pi/autoboot.txt" ::/autoboot.txt
	rm -rf "${root:?}/boot/firmware"
	mkdir -p "$root/boot/firmware"
}

# The Pi 5's part of boot-a, with trixie-backports' kernel (backports_kernel; bookworm's kernel has no
# Pi 5 device tree, so a bookworm image has none of this). pi_boot copied Debian's Pi 5 trees with the
# Pi 4's: bcm2712-rpi-5-b.dtb, the name the firmware loads on a Pi 5, and bcm2712-d-rpi-5-b.dtb, the
# board's D0 revision, which the firmware asks for as bcm2712d0-rpi-5-b.dtb, so it is copied under that
# name too. Both describe the RP1 chip whole (its PCIe node with clocks, GPIO, Ethernet, camera), which
# the kernel's rp1_pci driver brings up: no overlay is needed, and Debian ships none for RP1. A kernel
# without the tree or the driver is not built into an image that claims the Pi 5.
pi5_boot() {
	local img="$1" dtbs="$2" release="$3"
	[ -f "$dtbs/bcm2712-rpi-5-b.dtb" ] || die "the kernel has no ${dtbs#"$WORK/root"}/bcm2712-rpi-5-b.dtb: a Pi 5 could not boot"
	find "$WORK/root/usr/lib/modules/$release" -name 'rp1_pci.ko*' | grep -q . \
		|| die "the kernel $release has no RP1 driver (rp1_pci): a Pi 5 would have no USB, Ethernet or GPIO"
	if [ -f "$dtbs/bcm2712-d-rpi-5-b.dtb" ]; then
		mcopy -i "$img" "$dtbs/bcm2712-d-rpi-5-b.dtb" ::/bcm2712d0-rpi-5-b.dtb
	fi
}

# The Pi's disk: an MBR (DOS) partition table, as the Pi's firmware reads it (its boot partitions must be
# primary partitions 1 to 4), with a fixed disk identifier, so that the partitions' UUIDs (ID-NN) are
# known to cmdline.txt and RAUC's system.conf. p1 the boot control partition (the first FAT partition:
# where the firmware reads autoboot.txt; labelled as the amd64 ESP, so the shared fstab mounts it
# read-only at /boot/efi), p2 boot-a, p3 boot-b, p4 an extended partition with the logical p5 root-a and
# p6 data. Root slot B (p7) is not in the image, which holds the 2 GB budget: the first boot makes it at
# the end of the card, before the data partition grows up to it (pollbox-root-b).
pi_disk() {
	local img="$WORK/pollbox.img" total
	total=$((1 + PI_CONTROL_MB + 2 * PI_BOOT_MB + 1 + ROOT_MB + 1 + DATA_MB + 1))
	truncate -s "${total}M" "$img"
	sfdisk --quiet "$img" <<-TABLE
		label: dos
		label-id: 0x$PI_DISK_ID
		start=1MiB, size=${PI_CONTROL_MB}MiB, type=e
		size=${PI_BOOT_MB}MiB, type=c, bootable
		size=${PI_BOOT_MB}MiB, type=c
		type=5
		size=${ROOT_MB}MiB, type=83
		size=${DATA_MB}MiB, type=83
	TABLE
	local part start
	for part in 1:bootctl 2:boot-a 3:boot-b 5:root 6:data; do
		start=$(sfdisk --json "$img" | "$PYTHON" -c 'import json, sys
n = int(sys.argv[1])
print(next(p["start"] for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p["node"].endswith(str(n))))' \
			"${part%%:*}")
		dd if="$WORK/${part#*:}.img" of="$img" bs=512 seek="$start" conv=notrunc,sparse status=none
	done
}

# What the unit never reads goes: documentation (the packages' copyright files stay), manual pages,
# message catalogues but the unit's languages (ky, ru, en), pip and setuptools (the read-only unit
# installs nothing: updates are whole root images, docs/updates.md). On the Pi the kernel and
# initramfs are read from the boot partition only, so the root's copies go too; amd64 keeps them, as
# an update's new slot brings its kernel to the EFI partition from its own /boot (rauc-bootloader).
slim() {
	local root="$WORK/root" venv
	find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -type d ! -name 'ky' ! -name 'ky_*' ! -name 'ru' \
		! -name 'ru_*' ! -name 'en' ! -name 'en_*' ! -name 'en@*' -exec rm -rf {} +
	venv=$(echo "$root"/opt/pollbox/lib/python3*/site-packages)
	rm -rf "$venv"/pip "$venv"/pip-*.dist-info "$venv"/setuptools "$venv"/setuptools-*.dist-info \
		"$venv"/_distutils_hack "$venv"/distutils-precedence.pth "$root"/opt/pollbox/bin/pip*
	if [ "$ARCH" = arm64 ]; then
		rm -f "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* "$root"/boot/System.map-*
	fi
}

# The root file system: on amd64 with room to spare, as slot B (the same size) must take a later,
# larger root; the Pi has one root slot, never written, so it is made to fit: no journal (it is
# mounted read-only), no reserved blocks, inodes for what it holds and a tenth more.
root_filesystem() {
	local used_mb inodes
	used_mb=$(du -sxm "$WORK/root" | cut -f1)
	if [ "$ARCH" = arm64 ]; then
		inodes=$(find "$WORK/root" -xdev | wc -l)
		inodes=$((inodes + inodes / 10 + 1024))
		ROOT_MB=$((used_mb + used_mb / 50 + inodes * 256 / 1048576 + 32))
		mke2fs -q -t ext4 -L POLLBOXROOT -m 0 -O ^has_journal -N "$inodes" -d "$WORK/root" "$WORK/root.img" \
			"${ROOT_MB}M"
	else
		ROOT_MB=$((used_mb + used_mb / 4 + 64))
		mke2fs -q -t ext4 -L POLLBOXROOT -d "$WORK/root" "$WORK/root.img" "${ROOT_MB}M"
	fi
	echo "root file system: ${used_mb} MiB used, ${ROOT_MB} MiB in all"
}

filesystems() {
	local compatible=pollbox-amd64
	[ "$ARCH" = amd64 ] || compatible=pollbox-rpi
	# RAUC's config, boot backend and units (rauc/, docs/updates.md); the CEC's update CA as its keyring:
	# an image built without POLLBOX_UPDATE_KEYRING takes no update
	cp -a "$HERE/rauc/." "$WORK/root/"
	if [ "$ARCH" = arm64 ]; then
		# the Pi's own: its system.conf (slots by partition UUID, each root with its boot partition), the tryboot
		# backend and its units, and the first boot's root slot B (pi/rootfs/)
		cp -a "$HERE/pi/rauc/." "$HERE/pi/rootfs/." "$WORK/root/"
		sed -i "s/@DISKID@/$PI_DISK_ID/g" "$WORK/root/etc/rauc/system.conf" \
			"$WORK/root/usr/lib/pollbox/rauc-bootloader-tryboot" "$WORK/root/usr/local/sbin/pollbox-root-b"
	fi
	sed -i "s/@COMPATIBLE@/$compatible/" "$WORK/root/etc/rauc/system.conf"
	if [ -n "${POLLBOX_UPDATE_KEYRING:-}" ]; then
		install -m 0644 "$POLLBOX_UPDATE_KEYRING" "$WORK/root/etc/rauc/keyring.pem"
	fi
	# the version this root says it is: RAUC's status records the slot as flashed under it at the first
	# boot, with the slot's own SHA-256 (rauc/usr/lib/pollbox/rauc-slot-status)
	system_version > "$WORK/root/usr/lib/pollbox/system-version"
	slim
	root_filesystem
	mke2fs -q -t ext4 -L POLLBOXDATA "$WORK/data.img" "${DATA_MB}M"
}

# The root's version: pollbox's (its wheel's) and the commit the image packages.
system_version() {
	local wheel
	wheel=$(basename "$(echo "$WORK"/wheels/pollbox-*.whl)")
	wheel=${wheel#pollbox-}
	echo "${wheel%%-*}+image.${COMMIT:0:12}"
}

disk() {
	# root slot B starts empty (no boot entry: RAUC calls it bad) and is written by the first update;
	# the data partition stays last, so that it can grow to the end of the disk at first boot
	local img="$WORK/pollbox.img" total=$((1 + ESP_MB + 2 * ROOT_MB + DATA_MB + 1))
	truncate -s "${total}M" "$img"
	sfdisk --quiet "$img" <<-TABLE
		label: gpt
		start=1MiB, size=${ESP_MB}MiB, type=uefi, name=esp
		size=${ROOT_MB}MiB, type=linux, name=root
		size=${ROOT_MB}MiB, type=linux, name=root-b
		size=${DATA_MB}MiB, type=linux, name=data
	TABLE
	dd if="$WORK/esp.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$WORK/root.img" of="$img" bs=1M seek=$((1 + ESP_MB)) conv=notrunc,sparse status=none
	dd if="$WORK/data.img" of="$img" bs=1M seek=$((1 + ESP_MB + 2 * ROOT_MB)) conv=notrunc,sparse status=none
}

manifest() {
	local sum
	sum=$(sha256sum "$WORK/pollbox.img" | cut -d' ' -f1)
	{
		echo "# pollbox-$ARCH image, Debian $SUITE, built $(date -u +%Y-%m-%dT%H:%M:%SZ), from:"
		sources_lines | sed 's/^/#   /'
		echo "# recipe key $KEY, pollbox from commit $COMMIT, Debian packages of week $PACKAGES_WEEK"
		echo "# trust anchor: election '${ELECTION_ID:-none}', CEC key '${CEC_PUBLIC_KEY:-none}', simulation accepted: $ALLOW_SIMULATION"
		echo "sha256 $sum pollbox-$ARCH.img"
		echo "size $(stat -c %s "$WORK/pollbox.img")"
		# the root slot as flashed, as a unit reports it (its version and SHA-256): the pair the CEC lists
		echo "system $(system_version) sha256 $(sha256sum "$WORK/root.img" | cut -d' ' -f1)"
		echo "## debian packages (name, version, architecture)"
		cat "$WORK/packages.debian"
		echo "## python packages in /opt/pollbox"
		cat "$WORK/packages.python"
		if [ -f "$WORK/boot-files" ]; then
			echo "## files on the boot partition"
			cat "$WORK/boot-files"
		fi
	} > "$WORK/pollbox.manifest"
}

# The build itself: a function called on the script's last line, so bash has read the whole file before
# any of it runs (an edit of the recipe during a long build cannot change the running build); and main
# never returns, it exits: bash reads a script as it goes, so after main returned it would read on from
# where its line ended in the file as it is now, which an edit meanwhile has shifted.
main() {
	local only_key=0 only_cache_name=0 only_base_key=0
	case "$ARCH" in
		--key) only_key=1 ARCH="$OUT" OUT="" ;;
		--cache-name) only_key=1 only_cache_name=1 ARCH="$OUT" OUT="" ;;
		--base-key) only_key=1 only_base_key=1 ARCH="$OUT" OUT="" ;;
	esac
	[ -n "$ARCH" ] || die "usage: build.sh ARCH OUT-DIR | build.sh --key|--cache-name|--base-key ARCH (ARCH: amd64 or arm64)"
	[ -n "$OUT" ] || [ "$only_key" = 1 ] || die "usage: build.sh ARCH OUT-DIR (ARCH: amd64 or arm64)"
	case "$ARCH" in
		amd64) BOOT_STEP=esp DISK_STEP=disk ;;
		arm64)
			# the Pi's image is downloaded and flashed by technicians: within its 2 GB budget, the data partition
			# ships smaller (an SD card is never smaller than 8 GB, into which it grows on the first boot), the
			# boot partitions hold the Pi 4's firmware files only, and root slot B is made at the first boot
			DATA_MB=64
			PI_CONTROL_MB=4  # the boot control partition: autoboot.txt only (FAT16)
			PI_BOOT_MB=96  # each slot's boot partition: about 69 MB of firmware, kernel and initramfs
			PI_DISK_ID=9011b0c5  # the MBR's disk identifier: the partitions' UUIDs are 9011b0c5-NN
			# the Pi's boot firmware (raspi-firmware) is in Debian's non-free-firmware component
			COMPONENTS="main non-free-firmware"
			BOOT_STEP=pi_boot DISK_STEP=pi_disk
			;;
		*) die "unknown architecture '$ARCH': amd64 or arm64" ;;
	esac
	suite_settings
	if [ "$only_cache_name" = 1 ]; then
		echo "$CACHED"
		exit 0
	fi
	# the commit this build packages, fixed once: a commit made while it runs changes neither its key,
	# its wheel nor its manifest
	COMMIT="$(git -C "$REPO" rev-parse --verify "HEAD^{commit}")"
	PACKAGES_WEEK="$(date -u +%G-W%V)"
	BASE_KEY="$(base_key)"
	if [ "$only_base_key" = 1 ]; then
		echo "$BASE_KEY"
		exit 0
	fi
	KEY="$(recipe_key)"
	if [ "$only_key" = 1 ]; then
		echo "$KEY"
		exit 0
	fi
	mkdir -p "$OUT"
	OUT="$(cd "$OUT" && pwd)"
	CACHE="${POLLBOX_IMAGE_CACHE:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/pollbox/image}"
	mkdir -p "$CACHE" || die "cannot create the build cache $CACHE (set POLLBOX_IMAGE_CACHE to a writable folder)"
	CACHE="$(cd "$CACHE" && pwd)"
	# one build at a time per output folder (two test runs may ask at once) and per cache and architecture
	# (two clones): the second waits, then finds the image up to date or in the cache, or builds its own
	# recipe. Always in this order, so two builds never wait for each other's second lock.
	exec 9>"$OUT/.build-$ARCH.lock"
	flock 9
	exec 7>"$CACHE/.build-$CACHED.lock"
	flock 7
	check_host
	# what an interrupted build of this architecture left in the cache (none runs now: the lock is ours)
	rm -rf "$CACHE/.image-$CACHED."*
	FINAL="$OUT/pollbox-$ARCH.img"
	if [ -f "$FINAL" ] && [ -f "$OUT/pollbox-$ARCH.manifest" ] && [ "$(cat "$OUT/pollbox-$ARCH.key" 2>/dev/null)" = "$KEY" ]; then
		echo "image: $FINAL is up to date (recipe key ${KEY:0:12})"
		exit 0
	fi
	if [ -f "$CACHE/image-$CACHED-$KEY/pollbox.manifest" ]; then
		STEPS=1
	else
		check_space
	fi
	WORK="$(mktemp -d "$OUT/.work-$ARCH.XXXXXX")"
	exec 8>&2
	trap on_error ERR
	if [ "$STEPS" = 1 ] && from_cache; then
		echo "image: the image of key ${KEY:0:12} was built before: copied from the cache $CACHE"
	else
		STEPS=9
		image_settings > "$WORK/image.toml"
		step "Python wheels for $ARCH"; quietly build_wheels
		step "Debian $SUITE system with mmdebstrap (cached)"; quietly bootstrap
		step "the appliance and pollbox into the system"; quietly add_pollbox
		step "boot partition"; quietly "$BOOT_STEP"
		step "root and data file systems"; quietly filesystems
		step "disk image"; quietly "$DISK_STEP"
		step "manifest"; quietly manifest
		step "the image into the build cache"; quietly to_cache
	fi
	step "install under the final name"
	rm -f "$OUT/pollbox-$ARCH.key"
	mv "$WORK/pollbox.img" "$FINAL"
	mv "$WORK/pollbox.manifest" "$OUT/pollbox-$ARCH.manifest"
	echo "$KEY" > "$OUT/pollbox-$ARCH.key"
	trap - ERR
	rm -rf "$WORK"
	echo "image: $FINAL ($(du -h --apparent-size "$FINAL" | cut -f1), built in ${SECONDS}s)"
	exit 0
}

main "$@"
