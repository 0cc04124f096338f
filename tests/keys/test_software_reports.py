"""Which software runs: the version and code hash signed into the zero, close and readiness reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core import events as ev
from device.software import code_hash, running_software
from device.store.journal import Journal
from device.upstream.outbox import Outbox
from protocol.envelope import parse_line
from protocol.schema import body_problem

SOFTWARE = {"software_version": "0.1.0", "software_hash": "ab" * 32}
OPENED = {"identified": 0, "ballots": 0, "journal_seq": 2, "journal_hash": "cd" * 32}


def test_the_reports_may_carry_the_software_both_fields_or_neither() -> None:
    assert body_problem("polls_opened", OPENED) is None
    assert body_problem("polls_opened", {**OPENED, **SOFTWARE}) is None
    assert body_problem("annotation", {"topic": "readiness", "text": "ok", "journal_seq": 2,
                                       "journal_hash": "cd" * 32, **SOFTWARE}) is None
    assert "together or neither" in str(body_problem("polls_opened", {**OPENED, "software_version": "0.1.0"}))
    assert "software_hash must be 64 lowercase hex" in str(
        body_problem("polls_opened", {**OPENED, **SOFTWARE, "software_hash": "x"}))
    assert "software_version must be string of 1 to 64" in str(
        body_problem("polls_opened", {**OPENED, **SOFTWARE, "software_version": ""}))
    turnout = {"identified": 1, "ballots": 1, "registered": 9, "journal_seq": 3, "journal_hash": "cd" * 32}
    assert "unknown field(s) software_hash, software_version" in str(body_problem("turnout_snapshot",
                                                                                   {**turnout, **SOFTWARE}))


def test_the_code_hash_changes_with_any_installed_file() -> None:
    assert running_software()["hash"] == code_hash()
    assert code_hash(("device",)) != code_hash(("device", "web_ui"))


@pytest.mark.parametrize("software", [None, {"version": "9.9.9", "hash": "ef" * 32}])
def test_the_outbox_signs_the_software_into_the_reports_only(tmp_path: Path, software: dict[str, str] | None) -> None:
    journal = Journal(tmp_path / "journal.db", "KG-0001")
    outbox = Outbox(journal.path, key=Ed25519PrivateKey.generate(), station_id="KG-0001", software=software)
    outbox.attach(journal)
    journal.append([ev.Annotation("readiness", "readiness READY"), ev.Annotation("enrollment", "enrolled")],
                   1_800_000_000.0)
    lines = [parse_line(line) for line in outbox_lines(tmp_path / "journal.db")]
    by_topic = {r.body["topic"]: r.body for r in lines}
    for topic, says in (("readiness", software is not None), ("enrollment", False)):
        body = by_topic[topic]
        assert ("software_hash" in body) is says
        if says and software is not None:
            assert (body["software_version"], body["software_hash"]) == (software["version"], software["hash"])
        assert body_problem("annotation", body) is None
    journal.close()


def outbox_lines(path: Path) -> list[str]:
    import sqlite3
    with sqlite3.connect(path) as conn:
        return [str(row[0]) for row in conn.execute("SELECT line FROM outbox ORDER BY seq")]
