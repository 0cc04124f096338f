"""The streamed USB export: the same bytes as the file format says, read back line by line, memory flat.

The reference for the bytes is the format itself (``protocol/export.py``): the
canonical header, then each record's signed line, each followed by ``\\n``;
and ``read_export``, the receiver's whole-file reader, reading what was written.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_memory import write_outbox
from device.upstream import service
from device.upstream.export import write_export
from device.upstream.outbox import Outbox
from device.upstream.service import UpstreamError, export_outbox
from protocol.canonical import canonical
from protocol.envelope import SignedRecord, iso_utc, make_record
from protocol.export import FORMAT, ExportError, export_chunks, iter_export, read_export

KEY = Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x07")
BENCH_KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))  # the key bench.bench_memory.write_outbox signs with
STATION = "KG-0001"
AT = 1_800_000_000.0
RECORDS_SIGNED_WITHIN = 30.0
"""Seconds the real process is given to sign the records of opening the polls."""


def chain(first: int, texts: list[str], *, station: str = STATION, unit: str = "") -> list[SignedRecord]:
    out, prev = [], "0" * 64
    for seq, text in enumerate(texts, start=first):
        record = make_record(key=KEY, station=station, seq=seq, prev=prev, at=AT + seq, type_="annotation",
                             body={"topic": "t", "text": text}, unit=unit)
        out.append(record)
        prev = record.hash
    return out


def reference_bytes(records: list[SignedRecord], key: str) -> bytes:
    """The file as the format describes it, made without the module under test."""
    header = canonical({"format": FORMAT, "station": STATION, "key": key, "from_seq": records[0].seq,
                        "to_seq": records[-1].seq, "created_at": iso_utc(AT)})
    return header + b"\n" + b"".join(r.line().encode("utf-8") + b"\n" for r in records)


@settings(max_examples=60, deadline=None)
@given(first=st.integers(1, 10_000), texts=st.lists(st.text(max_size=40), min_size=1, max_size=12),
       unit=st.sampled_from(["", "desk-2"]))
def test_streamed_bytes_are_the_format_and_read_back_as_written(first: int, texts: list[str], unit: str) -> None:
    records = chain(first, texts, unit=unit)
    chunks = list(export_chunks(iter(records), station=STATION, key="k" * 16, created_at=AT,
                                from_seq=first, to_seq=first + len(texts) - 1))
    data = b"".join(chunks)
    assert data == reference_bytes(records, "k" * 16)
    assert len(chunks) == len(records) + 1  # one line per chunk: nothing is held beyond one record
    header, back = read_export(data)
    assert back == records and (header.from_seq, header.to_seq) == (first, first + len(texts) - 1)
    streamed_header, streamed = iter_export(data.splitlines(keepends=True))
    assert streamed_header == header and list(streamed) == records


def _damaged(data: bytes, how: int, where: int, byte: int) -> bytes:
    lines = data.split(b"\n")
    at = where % len(lines)
    if how == 0:
        return b"\n".join(lines[:at] + lines[at + 1:])  # a line lost
    if how == 1:
        return b"\n".join(lines[:at] + [lines[at]] + lines[at:])  # a line twice
    if how == 2:
        return data[:where % len(data)]  # cut short
    position = where % len(data)
    return data[:position] + bytes([byte]) + data[position + 1:]  # one byte changed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 6), how=st.integers(0, 3), where=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_the_line_by_line_reader_accepts_and_refuses_what_the_whole_file_reader_does(
        count: int, how: int, where: int, byte: int) -> None:
    records = chain(3, [f"é{n}" for n in range(count)])
    data = _damaged(reference_bytes(records, "k" * 16), how, where, byte)
    try:
        whole: Any = read_export(data)
    except ExportError as exc:
        whole = exc
    try:
        header, lines = iter_export(iter(data.splitlines(keepends=True)))
        streamed: Any = (header, list(lines))
    except ExportError as exc:
        streamed = exc
    if isinstance(whole, ExportError):
        assert isinstance(streamed, ExportError)
        assert streamed.code == whole.code
    else:
        assert streamed == whole


def test_a_record_that_does_not_belong_is_refused_when_it_is_reached() -> None:
    good = chain(1, ["a", "b"])
    stranger = chain(3, ["c"], station="KG-0002")
    chunks = export_chunks(iter(good + stranger), station=STATION, key="k", created_at=AT, from_seq=1, to_seq=3)
    assert next(chunks).startswith(b'{"created_at"') and next(chunks) and next(chunks)
    with pytest.raises(ExportError, match="record 3 is for station 'KG-0002'"):
        next(chunks)
    with pytest.raises(ExportError, match="holds 2 records"):
        list(export_chunks(iter(good), station=STATION, key="k", created_at=AT, from_seq=1, to_seq=3))
    with pytest.raises(ExportError, match="more than 1 records"):
        list(export_chunks(iter(good), station=STATION, key="k", created_at=AT, from_seq=1, to_seq=1))
    with pytest.raises(ExportError, match="no records"):
        export_chunks(iter([]), station=STATION, key="k", created_at=AT, from_seq=4, to_seq=3)


def test_a_write_refused_half_way_leaves_no_file(tmp_path: Path) -> None:
    def lines() -> Iterator[bytes]:
        yield b"one\n"
        raise ExportError("malformed", "record 2 is for station 'KG-0002', not 'KG-0001'")

    target = tmp_path / "pollbox-export-KG-0001-1-2.txt"
    with pytest.raises(ExportError, match="KG-0002"):
        write_export(target, lines())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_outbox_records_come_in_chunks_equal_to_the_whole_read(tmp_path: Path, chunk: int) -> None:
    write_outbox(tmp_path / "outbox.db", 23)
    outbox = Outbox(tmp_path / "outbox.db", key=BENCH_KEY, station_id=STATION)
    assert list(outbox.iter_records(1, 23, chunk)) == outbox.records(1, 23)
    assert list(outbox.iter_records(5, 17, chunk)) == outbox.records(5, 17)
    assert list(outbox.iter_records(20, 40, chunk)) == outbox.records(20, 23)
    outbox.close()


def test_the_written_export_is_the_outbox_read_whole(tmp_path: Path) -> None:
    write_outbox(tmp_path / "outbox.db", 2_500)
    outbox = Outbox(tmp_path / "outbox.db", key=BENCH_KEY, station_id=STATION)
    stick = tmp_path / "stick"
    stick.mkdir()
    written = export_outbox(outbox, stick, 1_001, 2_500, created_at=AT)
    assert written.name == "pollbox-export-KG-0001-1001-2500.txt" and list(stick.iterdir()) == [written]
    header, records = read_export(written.read_bytes())
    assert (header.station, header.key, header.from_seq, header.to_seq) == (STATION, outbox.key_id, 1_001, 2_500)
    assert records == outbox.records(1_001, 2_500)
    outbox.close()


@pytest.mark.parametrize("fault", ["a record short", "unreadable"])
def test_a_file_that_does_not_read_back_never_takes_the_export_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    write_outbox(tmp_path / "outbox.db", 5)
    outbox = Outbox(tmp_path / "outbox.db", key=BENCH_KEY, station_id=STATION)
    stick = tmp_path / "stick"
    stick.mkdir()
    real = iter_export

    def bad_stick(lines: Any) -> Any:
        if fault == "unreadable":
            raise ExportError("malformed", "an export file is UTF-8 text")
        header, records = real(lines)
        return header, (r for r in records if r.seq != 5)

    monkeypatch.setattr(service, "iter_export", bad_stick)
    message = "did not read back correctly (an export file is UTF-8 text)" if fault == "unreadable" else (
        "did not read back correctly; use another USB stick")
    with pytest.raises(UpstreamError, match=message.replace("(", r"\(").replace(")", r"\)")):
        export_outbox(outbox, stick, 1, 5, created_at=AT)
    assert list(stick.iterdir()) == []
    outbox.close()


def _export_peak(tmp_path: Path, records: int) -> int:
    write_outbox(tmp_path / f"outbox-{records}.db", records)
    outbox = Outbox(tmp_path / f"outbox-{records}.db", key=BENCH_KEY, station_id=STATION)
    tracemalloc.start()
    try:
        export_outbox(outbox, tmp_path / f"export-{records}.txt", 1, records, created_at=AT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        outbox.close()
    return peak


def test_export_memory_does_not_grow_with_the_outbox(tmp_path: Path) -> None:
    """Four times the records, about the same peak: what an export holds is bounded by a chunk of rows.

    Holding every record (as rendering the file in memory did) makes the peak grow about fourfold.
    """
    small, large = _export_peak(tmp_path, 1_000), _export_peak(tmp_path, 4_000)
    assert large < small * 1.5, (small, large)


def test_pollbox_export_through_the_real_process_writes_the_outbox_whole(tmp_path: Path) -> None:
    """``pollbox run`` with its receiver unreachable, the polls opened, then ``pollbox export STICK`` as a user runs
    it: one file, no ``.part``, holding every pending record exactly as the station's outbox has it."""
    import subprocess
    import sys
    import time

    from device.demo import make_demo_station
    from tests.process_station import RunningStation, child_env, free_port

    root = tmp_path / "station"
    make_demo_station(root, voters=50, receiver_url=f"http://127.0.0.1:{free_port()}")
    station = RunningStation(root).start()
    try:
        assert station.control({"cmd": "open"})["ok"]
        deadline = time.monotonic() + RECORDS_SIGNED_WITHIN
        while (waiting := station.status()["upstream"]["waiting"]) < 1 and time.monotonic() < deadline:
            pass  # each status is a round trip through the control socket
        assert waiting >= 1  # the zero report, signed when the polls opened
        stick = tmp_path / "stick"
        stick.mkdir()
        done = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(root / "station.toml"), "export",
                               str(stick)], capture_output=True, text=True, env=child_env(), cwd=root, timeout=60)
        assert done.returncode == 0, done.stderr
        (written,) = stick.iterdir()
        assert written.suffix == ".txt" and "signed records written to" in done.stdout
        header, records = read_export(written.read_bytes())
        assert header.from_seq == 1 and header.to_seq >= waiting
    finally:
        station.stop()
    outbox = Outbox(root / "data" / "journal.db", key=BENCH_KEY, station_id=header.station)
    try:
        assert records == outbox.records(1, header.to_seq)
    finally:
        outbox.close()
