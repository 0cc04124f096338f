"""Run every benchmark module and write ``bench/results.json``.

Each ``bench/bench_<area>.py`` exposes ``run(quick: bool) -> list[dict]``; every
entry is ``{"name", "value", "unit", "baseline", "ratio"}`` where the baseline
is measured in the same run. An entry may add ``"detail"``: a flat object of
other measured values (numbers or strings, e.g. ``{"receiver_cores": 1.02}``)
that belong to the figure but not to its name; ``name`` never carries a
measured value, so the same figure keeps the same name from run to run.
``python -m bench.run [--quick] [--only AREA ...]``.
A module that fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("name", "value", "unit", "baseline", "ratio")
OPTIONAL = ("detail",)


def modules(only: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if not only or n.removeprefix("bench_") in only]


def check(entry: dict[str, object], module: str) -> dict[str, object]:
    missing = [k for k in KEYS if k not in entry]
    if missing:
        raise ValueError(f"{module}: result {entry.get('name')!r} lacks {missing}")
    unknown = sorted(k for k in entry if k not in KEYS and k not in OPTIONAL)
    if unknown:
        raise ValueError(f"{module}: result {entry['name']!r} has unknown fields {unknown} (allowed besides "
                         f"{', '.join(KEYS)}: {', '.join(OPTIONAL)})")
    checked = {k: entry[k] for k in KEYS}
    if "detail" in entry:
        detail = entry["detail"]
        if not isinstance(detail, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float, str)) and not isinstance(v, bool)
                for k, v in detail.items()):
            raise ValueError(f"{module}: result {entry['name']!r}: detail must be an object of names to numbers "
                             f"or strings, not {detail!r}")
        checked["detail"] = dict(detail)
    return checked


def shown(entry: dict[str, object]) -> str:
    """One result as ``run`` prints it: the figure, then its detail if any."""
    line = (f"   {entry['name']:<58} {entry['value']:>12.4g} {entry['unit']:<10} "
            f"baseline {entry['baseline']:>10.4g}  ratio {entry['ratio']:.3g}")
    detail = entry.get("detail")
    if isinstance(detail, dict) and detail:
        line += "  (" + ", ".join(f"{k} {v}" for k, v in detail.items()) + ")"
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    p.add_argument("--only", nargs="*", default=[], help="areas to run, e.g. core receiver")
    p.add_argument("--output", type=Path, default=HERE / "results.json")
    args = p.parse_args(argv)
    results: list[dict[str, object]] = []
    failed = []
    for name in modules(args.only):
        print(f"== {name}", flush=True)
        try:
            entries = importlib.import_module(f"bench.{name}").run(quick=args.quick)
            for e in entries:
                results.append(check(e, name))
                print(shown(results[-1]), flush=True)
        except Exception:
            failed.append(name)
            traceback.print_exc()
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {len(results)} results to {args.output}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
