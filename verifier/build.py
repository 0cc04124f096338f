"""Build the observers' verifier page: one self-contained HTML file, plus its service worker and manifest.

    python -m verifier.build [--out DIR] [--registry registry.json --cec-key B64 --receiver-key B64
                              --receiver-url URL --election-name NAME --election-date YYYY-MM-DD
                              --election-timezone Asia/Bishkek]

Inlines ``src/`` (style, texts, checks, page logic), the zxing-wasm reader (its script as is, its
WebAssembly gzip-compressed and base64-encoded, unpacked in the browser with ``DecompressionStream``) and a
trust snapshot (CEC key, CEC-signed device registry, receiver key, election day) when one is given; the
receiver puts its own snapshot in the page it serves at ``/verify/`` (``receiver/verifier_page.py``).
Writes ``verify.html``, ``verify-sw.js``, ``verify.webmanifest`` and ``verify-icon.svg`` into ``--out``
(default ``receiver/static/``, which the receiver serves and its wheel carries).

The decoder comes from the npm registry as ``package-lock.json`` pins it: ``npm ci --prefer-offline``
installs it into ``verifier/node_modules`` (taken from npm's cache after the first install, so later builds
work offline); the build refuses a WebAssembly file whose SHA-256 is not the one its package declares.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from protocol.errors import UserError

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
MODULES = HERE / "node_modules"
ZXING = MODULES / "zxing-wasm"
DEFAULT_OUT = HERE.parent / "receiver" / "static"
BUDGET = 1_000_000
OUTPUTS = ("verify.html", "verify-sw.js", "verify.webmanifest", "verify-icon.svg")


class BuildError(UserError):
    """The page cannot be built; the message says what is missing."""


def _locked_version() -> str:
    lock = json.loads((HERE / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/zxing-wasm"]["version"])


def _installed() -> bool:
    installed = ZXING / "package.json"
    return installed.is_file() and json.loads(installed.read_text(encoding="utf-8"))["version"] == _locked_version()


def install() -> None:
    """``npm ci`` when ``node_modules`` does not hold the locked decoder (npm's cache first, then the registry).

    Builds running at the same time (parallel tests) take turns: ``npm ci`` empties ``node_modules`` first."""
    if _installed():
        return
    with (HERE / "package-lock.json").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            _npm_ci()


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is not installed (Debian packages nodejs and npm): it fetches the QR decoder")
    done = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"],
                          cwd=HERE, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"npm ci failed in {HERE}:\n{done.stdout}{done.stderr}")


def _decoder() -> tuple[str, bytes]:
    script = (ZXING / "dist" / "iife" / "reader" / "index.js").read_text(encoding="utf-8")
    wasm = (ZXING / "dist" / "reader" / "zxing_reader.wasm").read_bytes()
    declared = re.search(r"ZXING_WASM_SHA256=`([0-9a-f]{64})`", script)
    if declared is None or hashlib.sha256(wasm).hexdigest() != declared.group(1):
        raise BuildError("the zxing-wasm WebAssembly file does not match the SHA-256 its script declares")
    return script, wasm


def _inline_script(text: str) -> str:
    if "</script" in text.lower():
        raise BuildError("an inlined script contains '</script'")
    return text


def trust_snapshot(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.registry:
        return None
    election = None
    if args.election_date:
        from receiver.verifier_page import election_window
        election = election_window(args.election_name or "", args.election_date, args.election_timezone)
    return {"cec_key": args.cec_key, "receiver_key": args.receiver_key,
            "registry": Path(args.registry).read_text(encoding="utf-8"), "election": election,
            "receiver_url": args.receiver_url, "source": "built"}


def render(trust: dict[str, Any] | None, version: str) -> dict[str, bytes]:
    """The four output files, by name."""
    script, wasm = _decoder()
    icon = (SRC / "icon.svg").read_bytes()
    app = "\n".join((SRC / name).read_text(encoding="utf-8") for name in ("i18n.js", "core.js", "app.js"))
    values = {
        "VERSION": version, "ICON_B64": base64.b64encode(icon).decode("ascii"),
        "CSS": (SRC / "style.css").read_text(encoding="utf-8"),
        "TRUST": json.dumps(trust, ensure_ascii=False).replace("</", "<\\/"),
        "WASM_GZ_B64": base64.b64encode(gzip.compress(wasm, 9, mtime=0)).decode("ascii"),
        "ZXING_JS": _inline_script(script), "APP_JS": _inline_script(app),
    }
    html = re.sub(r"\{\{([A-Z0-9_]+)\}\}", lambda m: values[m.group(1)], (SRC / "page.html").read_text("utf-8"))
    sw = (SRC / "sw.js").read_text(encoding="utf-8").replace("{{VERSION}}", version)
    return {"verify.html": html.encode("utf-8"), "verify-sw.js": sw.encode("utf-8"),
            "verify.webmanifest": (SRC / "manifest.webmanifest").read_bytes(), "verify-icon.svg": icon}


def build(out: Path, trust: dict[str, Any] | None = None) -> dict[str, int]:
    """Install the decoder if needed, write the files into ``out``; returns each file's size in bytes."""
    install()
    files = render(trust, hashlib.sha256(b"".join((SRC / n).read_bytes() for n in sorted(
        p.name for p in SRC.iterdir()))).hexdigest()[:12] + "-" + _locked_version())
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = out / f"{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out / name)
    return {name: len(data) for name, data in files.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m verifier.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the files (default receiver/static)")
    p.add_argument("--registry", help="a CEC-signed device registry to embed (with --cec-key)")
    p.add_argument("--cec-key", help="the CEC public key, base64 of 32 bytes")
    p.add_argument("--receiver-key", help="the receiver public key, base64 of 32 bytes (checks tree heads)")
    p.add_argument("--receiver-url", help="the receiver's address, for a page opened from a file")
    p.add_argument("--election-name")
    p.add_argument("--election-date", help="the polling day, YYYY-MM-DD")
    p.add_argument("--election-timezone", default="Asia/Bishkek")
    args = p.parse_args(argv)
    if args.registry and not args.cec_key:
        p.error("--registry needs --cec-key")
    try:
        sizes = build(args.out, trust_snapshot(args))
    except (BuildError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    page = sizes["verify.html"]
    print(f"{args.out / 'verify.html'}: {page} bytes ({page / BUDGET:.0%} of the {BUDGET:,}-byte budget)")
    return 0 if page <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
