#!/bin/sh
# Installs the MicroPython WebAssembly interpreter used by tests/box/test_micropython.py.
# Idempotent. Target: $POLLBOX_MPY_DIR, default build/mpy under the repository root.
set -eu
VERSION=1.27.0
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${POLLBOX_MPY_DIR:-"$ROOT/build/mpy"}
PKG="$TARGET/node_modules/@micropython/micropython-webassembly-pyscript"
if [ -f "$PKG/package.json" ] && grep -q "\"version\": \"$VERSION\"" "$PKG/package.json"; then
    exit 0
fi
mkdir -p "$TARGET"
npm install --prefix "$TARGET" --no-audit --no-fund "@micropython/micropython-webassembly-pyscript@$VERSION"
