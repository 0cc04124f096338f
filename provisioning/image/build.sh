#!/bin/bash
# Build the pollbox Raspberry Pi OS image with pi-gen, or only assemble the recipe.
#
#   build.sh assemble --out DIR --election-id ID --cec-public-key KEY [--wheel FILE]
#   build.sh image    --out DIR --election-id ID --cec-public-key KEY [--pi-gen DIR]
#
# KEY is the CEC package key (base64 of 32 raw bytes, or a file holding it).
# 'assemble' writes the pi-gen config and the stage-pollbox tree into DIR with
# the election's trust anchor filled in; it runs anywhere and is what the
# recipe checks inspect. 'image' also builds the pollbox wheel and runs pi-gen;
# it needs an arm64 (aarch64) Linux host with root rights and network access.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
PI_GEN_URL="${PI_GEN_URL:-https://github.com/RPi-Distro/pi-gen.git}"
PI_GEN_REF="${PI_GEN_REF:-arm64}"
STAGE=stage-pollbox

die() {
	echo "build.sh: $*" >&2
	exit 2
}

usage() {
	sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 2
}

read_key() {
	local value="$1"
	if [ -f "$value" ]; then
		value="$(tr -d '[:space:]' < "$value")"
	fi
	if ! [[ "$value" =~ ^[A-Za-z0-9+/]{43}=$ ]]; then
		die "the CEC public key must be base64 of 32 bytes (44 characters ending in '='), got '${value}'"
	fi
	printf '%s' "$value"
}

assemble() {
	local out="$1" election="$2" key="$3" wheel="$4"
	[[ "$election" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "the election id may hold only letters, digits, '.', '_' and '-'"
	mkdir -p "$out"
	rm -rf "${out:?}/${STAGE}"
	cp -a "${HERE}/${STAGE}" "${out}/${STAGE}"
	sed -e "s|@ELECTION_ID@|${election}|g" -e "s|@STAGE_DIR@|${STAGE}|g" "${HERE}/config.template" > "${out}/config"
	sed -i -e "s|@ELECTION_ID@|${election}|g" -e "s|@CEC_PUBLIC_KEY@|${key}|g" \
		"${out}/${STAGE}/00-install/files/etc/pollbox/station.toml"
	mkdir -p "${out}/${STAGE}/00-install/files/wheels"
	if [ -n "$wheel" ]; then
		cp "$wheel" "${out}/${STAGE}/00-install/files/wheels/"
	fi
	echo "assembled the pi-gen recipe in ${out}"
}

build_wheel() {
	local dir="$1"
	python3 -m pip wheel --no-deps --wheel-dir "$dir" "$REPO" >&2
	find "$dir" -name 'pollbox-*.whl' | head -n 1
}

image() {
	local out="$1" election="$2" key="$3" pigen="$4"
	local arch
	arch="$(uname -m)"
	if [ "$arch" != "aarch64" ] && [ "$arch" != "arm64" ]; then
		echo "build.sh: 'make image' builds on an arm64 host (a Raspberry Pi 4/5 or an arm64 server);" >&2
		echo "build.sh: this host is ${arch}. 'build.sh assemble' still prepares the recipe here." >&2
		exit 3
	fi
	[ "$(id -u)" -eq 0 ] || die "pi-gen needs root rights to build an image; run with sudo"
	local wheels="${out}/wheels"
	mkdir -p "$wheels"
	assemble "$out" "$election" "$key" "$(build_wheel "$wheels")"
	if [ -z "$pigen" ]; then
		pigen="${out}/pi-gen"
		[ -d "$pigen" ] || git clone --depth 1 --branch "$PI_GEN_REF" "$PI_GEN_URL" "$pigen"
	fi
	rm -rf "${pigen:?}/${STAGE}"
	cp -a "${out}/${STAGE}" "${pigen}/${STAGE}"
	(cd "$pigen" && ./build.sh -c "${out}/config")
	echo "image written to ${pigen}/deploy"
}

main() {
	[ $# -ge 1 ] || usage
	local command="$1"
	shift
	local out="" election="" key="" wheel="" pigen=""
	while [ $# -gt 0 ]; do
		case "$1" in
			--out) out="$2"; shift 2 ;;
			--election-id) election="$2"; shift 2 ;;
			--cec-public-key) key="$(read_key "$2")"; shift 2 ;;
			--wheel) wheel="$2"; shift 2 ;;
			--pi-gen) pigen="$2"; shift 2 ;;
			-h|--help) usage ;;
			*) die "unknown option '$1' (see build.sh --help)" ;;
		esac
	done
	[ -n "$out" ] || die "--out DIR is required"
	[ -n "$election" ] || die "--election-id is required"
	[ -n "$key" ] || die "--cec-public-key is required"
	out="$(mkdir -p "$out" && cd "$out" && pwd)"
	case "$command" in
		assemble) assemble "$out" "$election" "$key" "$wheel" ;;
		image) image "$out" "$election" "$key" "$pigen" ;;
		*) usage ;;
	esac
}

main "$@"
