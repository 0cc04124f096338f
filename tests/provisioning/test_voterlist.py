"""The voter list import: good lists hash correctly, every kind of bad row is reported, nothing half-imported."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as hs
from prov_helpers import STATION

from device.core.voterkey import voter_hash
from provisioning.samplelist import sample_rows
from provisioning.voterlist import HEADER, import_bytes, import_csv

KEY = bytes(range(32))


def csv_bytes(rows: list[list[str]], header: str = ",".join(HEADER)) -> bytes:
    return (header + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode()


def test_good_list_becomes_keyed_hashes_sorted_by_line(voters: tuple[Path, list[list[str]]], list_key: bytes) -> None:
    path, rows = voters
    result = import_csv(path, STATION, list_key)
    assert result.ok and result.rows == len(rows)
    assert [e[1] for e in result.entries] == list(range(1, len(rows) + 1))
    for (number, surname, given_names, line, _), (h, got_line, name) in zip(rows, result.entries, strict=True):
        assert h == voter_hash(list_key, number)
        assert (got_line, name) == (int(line), f"{surname} {given_names}")
    assert all(number not in path.read_text() or number not in str(result.entries) for number, *_ in rows)


def test_numbers_with_spaces_and_dashes_hash_like_the_scanner() -> None:
    rows = sample_rows(STATION, 2)
    number = rows[0][0]
    rows[0][0] = f"{number[:1]} {number[1:9]}-{number[9:]}"
    result = import_bytes(csv_bytes(rows), STATION, KEY)
    assert result.entries[0][0] == voter_hash(KEY, number)


def bad(rows: list[list[str]], index: int, column: int, value: str) -> list[list[str]]:
    rows = [list(r) for r in rows]
    rows[index][column] = value
    return rows


def single_error(data: bytes) -> tuple[int, str, str]:
    result = import_bytes(data, STATION, KEY)
    assert result.entries == [], "nothing may be half-imported"
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


ROWS = sample_rows(STATION, 20, seed=3)


def test_short_number() -> None:
    line, reason, code = single_error(csv_bytes(bad(ROWS, 15, 0, ROWS[15][0][:13])))
    assert (line, code) == (17, "E012") and "14 digits, this has 13" in reason
    assert ROWS[15][0][:13] not in reason


def test_letters_in_number() -> None:
    assert single_error(csv_bytes(bad(ROWS, 2, 0, "2150519800A123")))[2] == "E012"


def test_impossible_birth_date() -> None:
    line, reason, code = single_error(csv_bytes(bad(ROWS, 4, 0, "23102199012345")))
    assert (line, code) == (6, "E012") and "birth date" in reason


def test_bad_sex_digit() -> None:
    assert single_error(csv_bytes(bad(ROWS, 0, 0, "3" + ROWS[0][0][1:])))[2] == "E012"


def test_duplicate_number() -> None:
    line, reason, code = single_error(csv_bytes(bad(ROWS, 9, 0, ROWS[3][0])))
    assert (line, code) == (11, "E013") and "file line 5" in reason


def test_wrong_station() -> None:
    line, reason, code = single_error(csv_bytes(bad(ROWS, 7, 4, "KG-0002")))
    assert (line, code) == (9, "E014") and "KG-0002" in reason


def test_duplicate_list_line() -> None:
    line, reason, code = single_error(csv_bytes(bad(ROWS, 12, 3, "2")))
    assert (line, code) == (14, "E015") and "file line 3" in reason


def test_list_line_not_a_number() -> None:
    assert single_error(csv_bytes(bad(ROWS, 1, 3, "x7")))[2] == "E015"
    assert single_error(csv_bytes(bad(ROWS, 1, 3, "0")))[2] == "E015"


def test_wrong_column_count() -> None:
    rows = [list(r) for r in ROWS]
    rows[5] = rows[5][:4]
    line, reason, code = single_error(csv_bytes(rows))
    assert (line, code) == (7, "E016") and "4 columns" in reason


def test_empty_surname_and_overlong_name() -> None:
    assert single_error(csv_bytes(bad(ROWS, 0, 1, "  ")))[2] == "E017"
    assert single_error(csv_bytes(bad(ROWS, 0, 2, "x" * 300)))[2] == "E017"


def test_bad_encoding_is_reported_on_its_line() -> None:
    data = csv_bytes(ROWS).replace(ROWS[10][1].encode(), b"\xff\xfe" + ROWS[10][1].encode(), 1)
    line, _, code = import_bytes(data, STATION, KEY).errors[0]
    assert code == "E011" and line == data[:data.index(b"\xff")].count(b"\n") + 1


def test_bad_header_and_empty_files() -> None:
    assert single_error(csv_bytes(ROWS, header="pin,surname,given_names,line,station"))[2] == "E010"
    assert single_error(b"")[2] == "E018"
    assert single_error(csv_bytes([]))[2] == "E018"


def test_every_bad_row_is_reported() -> None:
    rows = bad(bad(bad(ROWS, 1, 0, "1"), 4, 4, "KG-9"), 8, 3, "1")
    result = import_bytes(csv_bytes(rows), STATION, KEY)
    assert [(e.line, e.code) for e in result.errors] == [(3, "E012"), (6, "E014"), (10, "E015")]
    assert result.entries == []


def test_bom_and_crlf_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(ROWS).replace(b"\n", b"\r\n")
    assert import_bytes(data, STATION, KEY).ok


@given(hs.permutations(range(len(ROWS))))
def test_row_order_does_not_change_the_entries(order: list[int]) -> None:
    shuffled = [ROWS[i] for i in order]
    assert import_bytes(csv_bytes(shuffled), STATION, KEY).entries == import_bytes(csv_bytes(ROWS), STATION, KEY).entries


@settings(max_examples=200)
@given(hs.binary(max_size=400))
def test_arbitrary_bytes_never_crash_and_never_half_import(noise: bytes) -> None:
    result = import_bytes(csv_bytes(ROWS[:3]) + noise, STATION, KEY)
    assert result.ok or result.entries == []
    assert all(e.line >= 1 and e.code.startswith("E0") for e in result.errors)


def test_large_list_imports() -> None:
    rows = sample_rows(STATION, 5000, seed=random.Random(5).randint(0, 99))
    assert len(import_bytes(csv_bytes(rows), STATION, KEY).entries) == 5000


# Constant memory: rows are checked in batches against an on-disk index ----------------

@given(hs.lists(hs.integers(0, len(ROWS) - 1), min_size=1, max_size=5), hs.integers(1, 7))
def test_duplicates_are_found_across_batches_as_within_one(copies: list[int], batch: int) -> None:
    """However the rows fall into batches, every repeated number and line is reported on its own row."""
    from provisioning import voterlist
    rows = [list(r) for r in ROWS] + [list(ROWS[i]) for i in copies]
    whole = import_bytes(csv_bytes(rows), STATION, KEY)
    old, voterlist.BATCH = voterlist.BATCH, batch
    try:
        batched = import_bytes(csv_bytes(rows), STATION, KEY)
    finally:
        voterlist.BATCH = old
    bad_lines = sorted({e.line for e in batched.errors})
    assert bad_lines == list(range(len(ROWS) + 2, len(rows) + 2))  # each copy, never the original
    assert sorted((e.line, e.code) for e in batched.errors) == sorted((e.line, e.code) for e in whole.errors)
    assert {e.code for e in batched.errors} == {"E013", "E015"} and batched.entries == [] and not batched.ok


def test_a_list_in_many_batches_streams_its_entries_in_line_order() -> None:
    from provisioning import voterlist
    shuffled = random.Random(4).sample(ROWS, len(ROWS))
    old, voterlist.BATCH = voterlist.BATCH, 3
    try:
        result = import_bytes(csv_bytes(shuffled), STATION, KEY)
    finally:
        voterlist.BATCH = old
    streamed = list(result.iter_entries())
    assert result.ok and result.count == len(ROWS) == len(streamed)
    assert [e[1] for e in streamed] == list(range(1, len(ROWS) + 1))
    assert streamed == import_bytes(csv_bytes(ROWS), STATION, KEY).entries
    listed = result.entries
    result.close()
    assert listed == streamed and result.entries == streamed  # read as a list before the close: kept


def test_bad_bytes_late_in_a_long_list_are_named_after_a_clean_start() -> None:
    rows = sample_rows(STATION, 3000, seed=8)
    data = csv_bytes(rows)
    cut = data.index(rows[2500][0].encode())
    result = import_bytes(data[:cut] + b"\xc3(" + data[cut:], STATION, KEY)
    assert [(e.line, e.code) for e in result.errors] == [(2502, "E011")] and result.entries == []


def test_progress_counts_each_row_once_when_bad_bytes_make_a_second_reading() -> None:
    rows = sample_rows(STATION, 3000, seed=9)
    data = csv_bytes(rows)
    cut = data.index(rows[2500][0].encode())
    told: list[int] = []
    import_bytes(data[:cut] + b"\xff" + data[cut:], STATION, KEY, progress=told.append)
    assert sum(told) == 3000
    told.clear()
    import_bytes(data, STATION, KEY, progress=told.append)
    assert told == [1000] * 3
