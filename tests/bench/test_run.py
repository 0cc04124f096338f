"""The results schema of ``bench/run.py``: the five fields every figure has, and an optional flat ``detail``."""

from __future__ import annotations

import pytest

from bench.plot import series
from bench.run import check, shown

FIGURE = {"name": "receiver CPU per record over HTTP, SQLite, batches of 3 (vs one raw verify)", "value": 410.0,
          "unit": "us/record", "baseline": 60.0, "ratio": 0.146}


def test_a_figure_keeps_its_five_fields() -> None:
    assert check(dict(FIGURE), "bench_x") == FIGURE


def test_detail_carries_measured_values_beside_a_name_that_stays_the_same() -> None:
    entry = {**FIGURE, "detail": {"receiver_cores": 0.96, "client_cores": 0.15, "note": "loaded"}}
    assert check(entry, "bench_x") == entry
    assert shown(entry).endswith("(receiver_cores 0.96, client_cores 0.15, note loaded)")
    assert "detail" not in check(dict(FIGURE), "bench_x")


@pytest.mark.parametrize("detail", [[1, 2], {"cores": [1]}, {"cores": {"a": 1}}, {"ok": True}, {1: 2.0}, "1.5"])
def test_a_detail_that_is_not_a_flat_object_of_numbers_or_strings_is_refused(detail: object) -> None:
    with pytest.raises(ValueError, match="bench_x: result .* detail must be an object"):
        check({**FIGURE, "detail": detail}, "bench_x")


def test_an_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown fields \['cores'\]"):
        check({**FIGURE, "cores": 1.2}, "bench_x")


def test_a_missing_field_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"lacks \['ratio'\]"):
        check({k: v for k, v in FIGURE.items() if k != "ratio"}, "bench_x")


def test_the_plot_reads_figures_with_detail() -> None:
    results = [{"name": f"voter list import peak RSS, {n} rows (baseline: csv pass)", "value": mb, "unit": "MB",
                "baseline": 30.0, "ratio": mb / 30.0, "detail": {"seconds": s}}
               for n, mb, s in ((10_000, 31.0, 0.2), (100_000, 33.0, 1.7))]
    assert series(results)["memory"] == {"voter list import peak RSS, N rows (baseline: csv pass)":
                                         [(10_000, 31.0), (100_000, 33.0)]}
