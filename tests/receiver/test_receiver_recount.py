"""``pollbox-receiver recount``: the overview's counts recomputed from the station rows, drift reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from rx_kit import BATCH, Setup

from protocol.batch import encode_batch
from receiver.cli import main as cli_main
from receiver.storage import open_storage


def test_recount_corrects_drifted_counts_and_then_finds_them_exact(
        client: FlaskClient, setup: Setup, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for station in ("KG-0001", "KG-0002"):
        reply = client.post("/api/v1/records", data=encode_batch(setup.units[station].records(3)),
                            headers={"Content-Type": BATCH})
        assert reply.status_code == 200
    storage = open_storage(db_url)
    exact = storage.tallies()
    assert exact == storage.counted_tallies() and exact["reported"] == 2
    storage._q("UPDATE station_counts SET reported = 0, stations = 1 WHERE id = 1")
    storage.close()

    assert cli_main(["recount", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert f"reported: 0 -> {exact['reported']}" in out and f"stations: 1 -> {exact['stations']}" in out
    assert "2 count(s) corrected" in out
    assert cli_main(["recount", "--db", db_url]) == 0
    assert "the counts were exact" in capsys.readouterr().out
    storage = open_storage(db_url)
    assert storage.tallies() == exact
    storage.close()


def test_recount_refuses_a_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["recount", "--db", str(tmp_path / "none.db")]) == 2
    assert "no receiver database at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
