#!/bin/bash
# RAUC for an image whose kernel reports dm-verity's status in the form of Linux 6.19 and later (the
# Raspberry Pi's Debian 13 image, on trixie-backports' kernel): Debian's own rauc source package of the
# version the image would install, with rauc-dm-status.patch added to its patch series, built into a
# rauc .deb of the version VERSION+pollbox1 (the arch-independent rauc-service is Debian's, unchanged).
#
#   rauc-deb.sh ARCH DEST DEBS-DIR SUITE VERSION SOURCES-LINE...
#
# The build runs in a throwaway Debian system of the image's suite and architecture (a plain chroot on
# the build machine's architecture, else one whose programs run through qemu-user, as tpm-wheel.sh's),
# which takes the source with apt-get source from the SOURCES-LINEs' deb-src archives, so the source is
# checked against the archive's signed index as the image's binary packages are. The package's own
# tests are not run (the nocheck profile: they need a TPM simulator, casync and a network); the image's
# update tests exercise the result.
#
# Puts rauc_VERSION+pollbox1_ARCH.deb into DEST (build.sh keeps it in its cache, so this runs once per
# source version and patch). DEBS-DIR is the Debian packages' download cache of that architecture.
set -euo pipefail
ARCH="$1" DEST="$2" DEBS="$3" SUITE="$4" VERSION="$5"
shift 5
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCAL_VERSION="$VERSION+pollbox1"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pollbox-rauc-deb.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEBS" "$WORK/in" "$WORK/out"
cp "$HERE/rauc-dm-status.patch" "$WORK/in/pollbox-dm-status.patch"
# the image's archives, for the build's packages and, as deb-src, for rauc's source
sources=()
for line in "$@"; do
	sources+=("$line" "deb-src ${line#deb }")
done
# The changelog entry that names the change and the local version; dated as the entry it follows, so
# that two builds of one source make the same package.
cat > "$WORK/in/build" <<-BUILD
	set -e
	cd /tmp/build
	apt-get source --only-source --download-only "rauc=$VERSION"
	dpkg-source -x rauc_*.dsc src
	cd src
	cp /tmp/in/pollbox-dm-status.patch debian/patches/
	echo pollbox-dm-status.patch >> debian/patches/series
	apt-get build-dep --yes --build-profiles=nocheck ./
	date=\$(dpkg-parsechangelog -S Date)
	{
		printf '%s\n\n' "rauc ($LOCAL_VERSION) $SUITE; urgency=medium"
		printf '%s\n\n' "  * dm-verity: accept the status line of Linux 6.19 and later (pollbox-dm-status.patch)."
		printf '%s\n\n' " -- pollbox image build <image@pollbox.invalid>  \$date"
		cat debian/changelog
	} > changelog.new
	mv changelog.new debian/changelog
	dpkg-source --before-build .
	grep -q dmstatus_is src/dm.c
	DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" dpkg-buildpackage --build=any --build-profiles=nocheck -uc -us >/dev/null
	cp "../rauc_${LOCAL_VERSION}_$ARCH.deb" /tmp/out/
	dpkg-deb -x "/tmp/out/rauc_${LOCAL_VERSION}_$ARCH.deb" /tmp/check
	/tmp/check/usr/bin/rauc --version
BUILD
# shellcheck disable=SC2016 # $1 is mmdebstrap's: the new system's root, expanded by its hooks
mmdebstrap --quiet --mode=root --variant=apt --arch="$ARCH" \
	--include=build-essential,dpkg-dev \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
	--customize-hook='mkdir -p "$1"/tmp/in "$1"/tmp/out "$1"/tmp/build' \
	--customize-hook="sync-in $WORK/in /tmp/in" \
	--customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh /tmp/in/build' \
	--customize-hook="sync-out /var/cache/apt/archives $DEBS" \
	--customize-hook="sync-out /tmp/out $WORK/out" \
	"$SUITE" "$WORK/root" "${sources[@]}" >/dev/null
mkdir -p "$DEST"
cp "$WORK/out/rauc_${LOCAL_VERSION}_$ARCH.deb" "$DEST"/
