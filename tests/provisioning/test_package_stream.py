"""Station packages written as a stream: the bytes of ``sign_package``, checked as a unit checks, memory flat.

The reference for the bytes is the unit side's own ``device.package.sign_package``
(Ed25519 signatures are deterministic, so the same payload and key give the
same file), and for the verdicts ``device.package.load_package``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.package import PackageError, load_package, sign_package
from protocol.canonical import canonical
from provisioning import package_stream
from provisioning.errors import ProvisionError
from provisioning.package import build_payload, write_package
from provisioning.package_stream import check_streamed

CEC = Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x05")
ELECTION = "KG-2026-test"
NOW = 1_800_000_000.0
LIST_KEY = bytes(range(32))

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
"""Any text, including quotes, backslashes, brackets, commas and characters outside ASCII."""


def entries_of(names_: list[str]) -> list[list[Any]]:
    return [[hashlib.sha256(f"{n}".encode()).hexdigest(), n, name] for n, name in enumerate(names_, start=1)]


def payload(entries: Any, *, station: str = "KG-0001", name: str = "School", training: bool = False,
            documents: dict[str, Any] | None = None) -> dict[str, Any]:
    made = build_payload(election={"id": ELECTION, "expires_at": "2099-01-01T00:00:00Z", "name": name},
                         station={"id": station, "name": name}, receiver={"url": "https://r.example"},
                         cec_public_key="k", entries=entries, list_key=LIST_KEY, issued_at=NOW, documents=documents)
    return {**made, "training": True} if training else made


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(voter_names=st.lists(names, max_size=30), name=names, chunk=st.integers(8, 200), streamed=st.booleans(),
       documents=st.dictionaries(names, st.lists(st.integers(), max_size=2) | names, max_size=3))
def test_the_streamed_package_is_sign_package_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              voter_names: list[str], name: str, chunk: int,
                                                              streamed: bool, documents: dict[str, Any]) -> None:
    monkeypatch.setattr(package_stream, "CHUNK", chunk)  # entries cut across chunk ends, and longer than a chunk
    entries = entries_of(voter_names)
    documents = {**documents, "pin_rule": {"country": "KGZ"}, "entries": [], "key_check": "x"}
    reference = sign_package(payload(entries, name=name, documents=documents), CEC)
    path = tmp_path / f"{len(voter_names)}-{chunk}-{streamed}" / "station.pkg"
    if streamed:
        digest = write_package(path, payload(lambda: iter(entries), name=name, documents=documents), CEC, NOW,
                               entries=lambda: iter(entries))
    else:
        digest = write_package(path, payload(entries, name=name, documents=documents), CEC, NOW)
    assert path.read_bytes() == reference
    assert digest == hashlib.sha256(reference).hexdigest()
    loaded = load_package(path, CEC.public_key(), ELECTION, NOW)
    assert loaded.registered == len(entries) and loaded.payload["voters"]["entries"] == entries


def _signed(tmp_path: Path, doc_payload: dict[str, Any]) -> Path:
    path = tmp_path / "signed.pkg"
    path.write_bytes(sign_package(doc_payload, CEC))
    return path


def _bad_payloads() -> dict[str, dict[str, Any]]:
    good = entries_of(["a", "b", "c"])
    twice = [good[0], good[1], [good[0][0], 3, "c"]]
    cases = {
        "hash twice": payload(twice),
        "entry not a list": {**payload(good), "voters": {**payload(good)["voters"], "entries": good[:2] + [{"x": 1}]}},
        "line zero": {**payload(good), "voters": {**payload(good)["voters"], "entries": [[good[0][0], 0, "a"]]}},
        "digest": {**payload(good), "voters": {**payload(good)["voters"], "digest": "0" * 64}},
        "other election": {**payload(good), "election": {"id": "KG-other", "expires_at": "2099-01-01T00:00:00Z"}},
        "expired": {**payload(good), "election": {"id": ELECTION, "expires_at": "2020-01-01T00:00:00Z"}},
        "training flag": payload(good, training=True),
    }
    cases["entries not a list"] = {**payload(good), "voters": {**payload(good)["voters"], "entries": "none"}}
    return cases


@pytest.mark.parametrize("case", sorted(_bad_payloads()))
def test_a_signed_package_a_unit_refuses_is_refused_with_the_units_reason(tmp_path: Path, case: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_stream, "CHUNK", 16)
    path = _signed(tmp_path, _bad_payloads()[case])
    with pytest.raises(PackageError) as unit:
        load_package(path, CEC.public_key(), ELECTION, NOW)
    with pytest.raises(ProvisionError) as streamed:
        check_streamed(path, CEC.public_key(), ELECTION, NOW)
    assert streamed.value.code == "E022"
    if case == "entries not a list":
        assert "not a list of voters" in str(streamed.value)
    else:
        assert str(streamed.value) == f"E022 {path}: {unit.value}"


def test_hashes_repeated_far_apart_are_found_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_stream, "_BATCH", 3)
    entries = entries_of([f"v{n}" for n in range(10)])
    entries[8][0] = entries[1][0]
    path = _signed(tmp_path, payload(entries))
    with pytest.raises(ProvisionError, match="voter list line 9 repeats the hash of line 2"):
        check_streamed(path, CEC.public_key(), ELECTION, NOW)


@pytest.mark.parametrize("damage, reason", [
    (lambda d: d.replace(b'"name":"a"', b'"name":"b"', 1), "signature does not verify"),
    (lambda d: d[:-3], "unsigned"),
    (lambda d: b"", "not a JSON station package"),
    (lambda d: json.dumps(json.loads(d), indent=1).encode(), "canonical form"),
    (lambda d: d.replace(b"pollbox-station-package/1", b"pollbox-station-package/9"), "format must be"),
])
def test_a_damaged_file_is_refused_with_a_reason(tmp_path: Path, damage: Any, reason: str) -> None:
    path = _signed(tmp_path, payload(entries_of(["a", "b"]), name="a"))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ProvisionError, match=reason):
        check_streamed(path, CEC.public_key(), ELECTION, NOW)


def test_entries_that_change_between_readings_leave_no_file(tmp_path: Path) -> None:
    readings = iter([entries_of(["a", "b"]), entries_of(["a", "c"])])

    def entries() -> Iterator[list[Any]]:
        return iter(next(readings))

    made = payload(entries)
    with pytest.raises(ProvisionError, match="changed while the package was written"):
        write_package(tmp_path / "out" / "station.pkg", made, CEC, NOW, entries=entries)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_signature_is_over_the_payloads_bytes_in_the_file(tmp_path: Path) -> None:
    entries = entries_of(["é", "\\", '"]'])
    path = tmp_path / "station.pkg"
    write_package(path, payload(entries), CEC, NOW)
    doc = json.loads(path.read_bytes())
    CEC.public_key().verify(base64.b64decode(doc["signature"]), canonical(doc["payload"]))


def _write_peak(tmp_path: Path, count: int) -> int:
    def entries() -> Iterator[list[Any]]:
        return ([hashlib.sha256(str(n).encode()).hexdigest(), n, f"Voter {n} Example"] for n in range(1, count + 1))

    tracemalloc.start()
    try:
        write_package(tmp_path / f"{count}" / "station.pkg", payload(entries), CEC, NOW, entries=entries)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert load_package(tmp_path / f"{count}" / "station.pkg", CEC.public_key(), ELECTION, NOW).registered == count
    return peak


def test_package_writing_memory_does_not_grow_with_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten times the voters, about the same peak of Python memory while writing and checking.

    What is held is bounded by the chunk of text decoded and the batch of hashes looked up (both made
    small here so that both lists pass them); holding the entries, or the payload's bytes, grows tenfold.
    """
    monkeypatch.setattr(package_stream, "CHUNK", 8_192)
    monkeypatch.setattr(package_stream, "_BATCH", 500)
    small, large = _write_peak(tmp_path, 2_000), _write_peak(tmp_path, 20_000)
    assert large < small * 1.5, (small, large)
