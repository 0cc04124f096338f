"""The chair's screen's own font: DejaVu Sans, cut down to what the screen writes.

The station is offline and its screen must look the same on every unit, so
the font ships with the app (``web_ui/static/fonts/``) instead of being
looked up on the system. ``python -m tools.fontbuild`` (``make fonts``)
builds the two WOFF2 files, regular and bold, from Debian's
``fonts-dejavu-core`` with fontTools: every character of the ranges below
plus every character the templates, scripts and translations use, so a new
translation cannot bring a letter the font lacks (a test checks this against
the committed files). The DejaVu licence goes beside them.

Only ``make fonts`` imports fontTools; the running app just serves the files.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable
from pathlib import Path

SOURCE_DIR = Path("/usr/share/fonts/truetype/dejavu")
LICENSE_SOURCE = Path("/usr/share/doc/fonts-dejavu-core/copyright")
WEB_UI = Path(__file__).resolve().parent.parent / "web_ui"
TARGET_DIR = WEB_UI / "static" / "fonts"
FACES = {"DejaVuSans.ttf": "pollbox-sans.woff2", "DejaVuSans-Bold.ttf": "pollbox-sans-bold.woff2"}

RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x00FF),  # Latin-1: « » ° · × and the accented letters of names
    (0x0400, 0x04FF),  # Cyrillic, with the Kyrgyz letters Ң ң Ө ө Ү ү
    (0x2010, 0x2027),  # dashes, quotation marks, bullet, ellipsis
    (0x2030, 0x203A),  # per mille, primes, single angle quotes
    (0x20AC, 0x20AC),  # euro sign
    (0x2116, 0x2116),  # numero sign, used in Russian and Kyrgyz forms
    (0x2190, 0x2193),  # arrows
    (0x2212, 0x2212),  # minus sign
)

SOURCES = ("templates/*.html", "static/*.js", "static/*.css", "translations/*/LC_MESSAGES/messages.po", "*.py")


def used_text(root: Path = WEB_UI) -> str:
    """Every character the screen's templates, scripts, styles, translations and Python strings contain."""
    return "".join(path.read_text(encoding="utf-8") for pattern in SOURCES for path in sorted(root.glob(pattern)))


def wanted(extra: Iterable[str] = ()) -> set[int]:
    """The code points the font must cover: ``RANGES`` plus the printable characters of ``extra``."""
    points = {cp for low, high in RANGES for cp in range(low, high + 1)}
    points.update(ord(ch) for text in extra for ch in text if ch.isprintable() and not ch.isspace())
    return points


def build(source_dir: Path = SOURCE_DIR, target_dir: Path = TARGET_DIR) -> list[Path]:
    """Write the subset fonts and the licence; returns the font files written."""
    from fontTools import subset

    points = wanted([used_text()])
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source_name, target_name in FACES.items():
        source = source_dir / source_name
        if not source.exists():
            raise SystemExit(f"{source} is missing: install Debian's fonts-dejavu-core")
        options = subset.Options()
        options.flavor = "woff2"
        options.layout_features = ["kern", "liga", "locl", "mark", "mkmk"]
        options.name_IDs = ["*"]
        options.notdef_outline = True
        target = target_dir / target_name
        with subset.load_font(str(source), options) as font:
            subsetter = subset.Subsetter(options)
            subsetter.populate(unicodes=sorted(points))
            subsetter.subset(font)
            subset.save_font(font, str(target), options)
        written.append(target)
    shutil.copyfile(LICENSE_SOURCE, target_dir / "LICENSE-DejaVu.txt")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fontbuild", description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=SOURCE_DIR, help="where DejaVuSans*.ttf are")
    args = parser.parse_args(argv)
    for path in build(args.source_dir):
        print(f"wrote {path.relative_to(WEB_UI.parent)} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
