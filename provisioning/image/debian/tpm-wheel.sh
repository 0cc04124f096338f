#!/bin/bash
# tpm2-pytss for an image whose architecture is not the build machine's (the Raspberry Pi's arm64 image
# built on an amd64 machine), or whose Debian suite's Python is not the build machine's (a trixie image,
# Python 3.13, built on bookworm, Python 3.11). tpm2-pytss publishes no binary wheel, and Debian bookworm's
# python3-tpm2-pytss (1.2) does not load next to the cryptography the appliance needs (42 or later), so
# the wheel is compiled from its source, as on the build machine's own architecture, but inside a
# throwaway Debian system of the image's suite and architecture, a plain chroot on the build machine's
# architecture, else one whose programs run through qemu-user (binfmt_misc): its gcc, Python and
# libtss2-dev are the same Debian packages as the image's.
# Python packages are downloaded on the build machine (its pip, as for every other wheel), so the
# throwaway system builds offline.
#
#   tpm-wheel.sh ARCH WHEEL-DIR DEBS-DIR SUITE MIRROR [PYTHON-VERSION GLIBC-MINOR]
#
# PYTHON-VERSION is the suite's Python (3.11, bookworm's, by default) and GLIBC-MINOR its glibc's minor
# version (36): the build's own Python packages are downloaded as wheels for them.
#
# With WITH_LGPIO=1 in the environment it also builds lgpio (the GPIO library under rpi-lgpio) from its
# source, statically linked with its own C library, for a Python it publishes no wheel for (3.13).
#
# Puts tpm2_pytss-*.whl (and lgpio-*.whl) into WHEEL-DIR (build.sh keeps it in its wheel cache, so this runs once per
# cache). DEBS-DIR is the Debian packages' download cache of that architecture, shared with the image.
set -euo pipefail
ARCH="$1" DEST="$2" DEBS="$3" SUITE="$4" MIRROR="$5" PYTHON_VERSION="${6:-3.11}" GLIBC_MINOR="${7:-36}"
PYTHON="${PYTHON:-python3}"
REQUIREMENT="tpm2-pytss>=3.0"
# what tpm2-pytss's build needs (its pyproject.toml and setup.cfg), installed from wheels of ARCH
BUILD_NEEDS=(setuptools "setuptools_scm[toml]>=3.4.3" wheel pycparser pkgconfig "cffi>=1.0.0" "cryptography>=47" packaging)
case "$ARCH" in
	arm64) machine=aarch64 ;;
	amd64) machine=x86_64 ;;
	*) echo "tpm-wheel.sh: no wheel platform known for $ARCH" >&2; exit 2 ;;
esac
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pollbox-tpm-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEBS" "$WORK/src" "$WORK/out"
SOURCES=("$REQUIREMENT") INCLUDE=gcc,libc6-dev,pkg-config,python3-dev,python3-venv,libtss2-dev LGPIO=:
if [ "${WITH_LGPIO:-0}" = 1 ]; then
	# lgpio's source holds its SWIG interface, not the generated wrapper: swig makes it in the chroot
	SOURCES+=("lgpio>=0.2") INCLUDE+=,swig
	# (PYPI=1: lgpio's setup.py then links its own C library into the module)
	LGPIO="PYPI=1 /tmp/build/bin/pip wheel --quiet --no-index --no-deps --no-build-isolation --wheel-dir /tmp/out /tmp/src/lgpio-*.tar.gz
		/tmp/build/bin/pip install --quiet --no-index --no-deps /tmp/out/lgpio-*.whl
		cd / && /tmp/build/bin/python -c 'import lgpio'"
fi
"$PYTHON" -m pip download --quiet --no-deps --no-binary tpm2-pytss,lgpio --dest "$WORK/src" "${SOURCES[@]}"
platforms=(--platform "manylinux2014_$machine")
for glibc in $(seq 17 "$GLIBC_MINOR"); do platforms+=(--platform "manylinux_2_${glibc}_$machine"); done
"$PYTHON" -m pip download --quiet --only-binary=:all: "${platforms[@]}" --python-version "$PYTHON_VERSION" --implementation cp \
	--dest "$WORK/src" "${BUILD_NEEDS[@]}"
printf '%s\n' "${BUILD_NEEDS[@]}" > "$WORK/src/build-needs.txt"
# shellcheck disable=SC2016 # $1 is mmdebstrap's: the new system's root, expanded by its hooks
mmdebstrap --quiet --mode=root --variant=apt --arch="$ARCH" --components=main \
	--include="$INCLUDE" \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives $DEBS" \
	--customize-hook='mkdir -p "$1"/tmp/src' \
	--customize-hook="sync-in $WORK/src /tmp/src" \
	--customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -ec "
		python3 -m venv /tmp/build
		/tmp/build/bin/pip install --quiet --no-index --find-links /tmp/src -r /tmp/src/build-needs.txt
		/tmp/build/bin/pip wheel --quiet --no-index --no-deps --no-build-isolation --wheel-dir /tmp/out /tmp/src/tpm2_pytss-*.tar.gz
		/tmp/build/bin/pip install --quiet --no-index --no-deps /tmp/out/tpm2_pytss-*.whl
		cd / && /tmp/build/bin/python -c \"from tpm2_pytss import ESAPI\"
		'"$LGPIO"'"' \
	--customize-hook="sync-out /tmp/out $WORK/out" \
	"$SUITE" "$WORK/root" "$MIRROR" >/dev/null
cp "$WORK"/out/*.whl "$DEST"/
