"""Auditing the public log from outside (issue 11, item 11): every entry by index, the empty head, and an offline
check that reports only what the receiver signed.

Every test runs on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, post

from protocol import merkle
from protocol.keys import public_b64
from protocol.treehead import LogError, verify_tree_head
from receiver.cli import main as cli_main
from receiver.views_api import MAX_ENTRIES


def test_an_auditor_lists_every_entry_by_index_and_recomputes_the_signed_root(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(5) + setup.units["KG-0002"].records(4)
    post(client, records[:5])
    post(client, records[5:])
    head = verify_tree_head(client.get("/api/v1/tree/head").get_json()["tree_head"], setup.receiver_key.public_key())
    first = client.get("/api/v1/tree/entries?start=0&end=4").get_json()
    rest = client.get("/api/v1/tree/entries?start=4").get_json()
    assert (first["start"], first["end"], first["tree_size"], rest["end"]) == (0, 4, 9, 9)
    entries = first["entries"] + rest["entries"]
    assert [e["leaf_index"] for e in entries] == list(range(9))
    assert [e["line"] for e in entries] == [r.line() for r in records]
    leaves = [merkle.leaf_hash(e["line"].partition(" ")[2].encode()) for e in entries]
    _, frontier = merkle.append(0, [], leaves)
    assert merkle.root_from_frontier(frontier) == head.root and head.size == 9


def test_entries_are_refused_outside_the_log_and_capped_per_request(
        app: Flask, client: FlaskClient, setup: Setup) -> None:
    post(client, setup.units["KG-0001"].records(3))
    for query in ("", "start=-1", "start=x", "start=2&end=1", "start=0&end=4", "start=4", "start=99999999999999999999"):
        reply = client.get(f"/api/v1/tree/entries?{query}")
        assert (reply.status_code, reply.get_json()["error"]) == (400, "malformed"), query
    assert client.get("/api/v1/tree/entries?start=3").get_json()["entries"] == []
    for path in (f"/api/v1/records/KG-0001/{10**30}", f"/api/v1/tree/head/{10**30}",
                 f"/api/v1/tree/proof?hash={'0' * 64}&size={10**30}", f"/api/v1/tree/consistency?first={10**30}"):
        reply = client.get(path)
        assert 400 <= reply.status_code < 500 and reply.get_json()["error"], path
    assert MAX_ENTRIES == 1_000


def test_the_empty_log_has_a_signed_head_of_size_zero(app: Flask, client: FlaskClient, setup: Setup) -> None:
    public = setup.receiver_key.public_key()
    current = client.get("/api/v1/tree/head").get_json()
    at_zero = client.get("/api/v1/tree/head/0")
    assert at_zero.status_code == 200
    for doc in (current, at_zero.get_json()):
        head = verify_tree_head(doc["tree_head"], public)
        assert (head.size, head.root) == (0, hashlib.sha256(b"").digest())
    post(client, setup.units["KG-0001"].records(1))
    assert verify_tree_head(client.get("/api/v1/tree/head/0").get_json()["tree_head"], public).size == 0
    assert client.get("/api/v1/tree/head/2").status_code == 404


@pytest.fixture
def audit_files(app: Flask, client: FlaskClient, setup: Setup, tmp_path: Path) -> dict[str, Path]:
    records = setup.units["KG-0001"].records(4)
    post(client, records)
    head = client.get("/api/v1/tree/head").get_json()
    proof = client.get(f"/api/v1/tree/proof?hash={records[2].hash}").get_json()
    files = {"record": records[2].line(), "proof": json.dumps(proof), "head": json.dumps(head),
             "bare": head["tree_head"] + "\n",
             "lying": json.dumps(dict(head, size=999, root="ab" * 32, at="2030-01-01T00:00:00.000000Z"))}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


def verify(files: dict[str, Path], head: str, key: str) -> list[str]:
    return ["verify-inclusion", "--record", str(files["record"]), "--proof", str(files["proof"]),
            "--head", str(files[head]), "--receiver-key", key]


def test_verify_inclusion_prints_only_what_the_signature_covers(
        audit_files: dict[str, Path], setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    key = public_b64(setup.receiver_key.public_key())
    signed = verify_tree_head(json.loads(audit_files["head"].read_text())["tree_head"],
                              setup.receiver_key.public_key())
    assert cli_main(verify(audit_files, "lying", key)) == 0
    out = capsys.readouterr().out
    assert out.startswith("verified: the record is leaf 2 of the log of 4 records")
    assert signed.root.hex() in out and signed.at in out and signed.key in out
    # the lying parts (size 999, root ab…ab, a time in 2030) never show; hex digests may hold "999" by chance
    assert not re.search(r"\b999\b", out) and "ab" * 32 not in out and "2030-" not in out


def test_verify_inclusion_accepts_a_bare_signed_head(
        audit_files: dict[str, Path], setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(verify(audit_files, "bare", public_b64(setup.receiver_key.public_key()))) == 0
    assert "leaf 2 of the log of 4 records" in capsys.readouterr().out
    assert cli_main(verify(audit_files, "bare", public_b64(setup.cec.public_key()))) == 1
    assert "NOT VERIFIED" in capsys.readouterr().err


def test_a_head_signed_by_the_key_but_naming_another_key_id_is_refused(setup: Setup) -> None:
    from protocol.envelope import sign_fields

    line = sign_fields(setup.receiver_key, {"v": 1, "type": "tree_head", "size": 0, "root": "00" * 32,
                                            "key": "0123456789abcdef", "at": "2027-01-15T08:00:00.000000Z"})
    with pytest.raises(LogError, match="names receiver key"):
        verify_tree_head(line, setup.receiver_key.public_key())


DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.mark.parametrize("words", ["GET /api/v1/tree/entries", "size 0", "receiver's public key",
                                   "current time"])
def test_the_protocol_document_covers_auditing(words: str) -> None:
    assert words in DOC.read_text(encoding="utf-8")
