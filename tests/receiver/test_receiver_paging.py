"""The overview at scale: keyset pages, page tokens, the prefix index and the kept counts, on SQLite and PostgreSQL.

Stations get their status through ``Storage.store`` with really signed records (the ingest path), except where a
test builds a database of an earlier version by hand.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from html import unescape
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rx_kit import Setup, Unit, post

from device.hardware.clock import FakeClock
from protocol.training import TRAINING_PREFIX
from receiver.pgcluster import Cluster
from receiver.status import StationStatus
from receiver.storage import Storage, open_storage
from receiver.store.overview import SORTS, STATUS_FILTERS, OverviewQuery, PageTokenError, Position
from receiver.store.tallies import SILENT_RECOUNT_SECONDS

NOW = 1_800_100_000.0
SILENT_BEFORE = NOW - 15 * 60
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREVIOUS = re.compile(r'<a rel="prev" href="([^"]+)"')
HYPOTHESIS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Storage]]:
    """Make fresh, empty databases (one per hypothesis example), closed at the end."""
    made: list[Storage] = []
    counter = itertools.count()

    def make() -> Storage:
        if request.param == "sqlite":
            url = str(tmp_path / f"receiver-{next(counter)}.db")
        else:
            cluster: Cluster = request.getfixturevalue("pg_cluster")
            url = cluster.create_database()
        made.append(open_storage(url))
        return made[-1]

    yield make
    for storage in made:
        storage.close()


@dataclass(frozen=True)
class Plan:
    """What a station has sent: nothing, or records ending at ``received`` seconds before NOW."""

    name: str
    reported: bool = False
    closed: bool = False
    ago: int = 0
    identified: int = 0
    registered: int | None = None
    alarms: int = 0
    acknowledged: int = 0


def records_of(unit: Unit, plan: Plan) -> list:
    out = [unit.record("polls_opened", {"identified": 0, "ballots": 0})]
    body = {"identified": plan.identified, "ballots": plan.identified}
    if plan.registered is not None:
        body["registered"] = plan.registered
    out.append(unit.record("turnout_snapshot", body))
    out += [unit.record("alarm_raised", {"alarm": k, "alarm_kind": "lid_open", "detail": "d"})
            for k in range(1, plan.alarms + 1)]
    out += [unit.record("alarm_acknowledged", {"alarm": k}) for k in range(1, min(plan.acknowledged, plan.alarms) + 1)]
    if plan.closed:
        out.append(unit.record("polls_closed", {"identified": plan.identified, "ballots": plan.identified,
                                                "difference": 0, "alarms_total": plan.alarms, "alarms_open": 0}))
    return out


def apply(storage: Storage, plans: list[Plan]) -> None:
    storage.sync_enrolled([p.name for p in plans], digest=str(hash(tuple(p.name for p in plans))))
    for plan in plans:
        if plan.reported:
            storage.store(plan.name, records_of(Unit(plan.name), plan), NOW - plan.ago, "test")


# Station ids with LIKE's special characters, lower and upper case, and characters beyond ASCII and the BMP.
# Some are training stations' ids: every filter leaves them out but ``training``, which shows only them.
names = st.text(alphabet="KG-%_!a\u00e9\U0001f600", min_size=1, max_size=4).flatmap(
    lambda name: st.sampled_from([name, TRAINING_PREFIX + name]))
plans = st.builds(Plan, name=names, reported=st.booleans(), closed=st.booleans(), ago=st.sampled_from([0, 60, 3600]),
                  identified=st.integers(0, 50), registered=st.sampled_from([None, 0, 40, 100]),
                  alarms=st.integers(0, 2), acknowledged=st.integers(0, 2))
station_sets = st.lists(plans, min_size=1, max_size=24, unique_by=lambda p: p.name)


def matches(status: StationStatus, filter_: str, prefix: str) -> bool:
    reported, closed = status.highest_seq > 0, status.phase == "closed"
    voting = reported and not closed and status.last_received is not None
    ok = {"all": True, "not_reported": not reported, "closed": closed, "alarms": status.alarms_open > 0,
          "silent": voting and status.last_received < SILENT_BEFORE,
          "reporting": voting and status.last_received >= SILENT_BEFORE, "training": True}[filter_]
    shown = bool(status.training) if filter_ == "training" else not status.training  # training stations apart
    return ok and shown and status.station.startswith(prefix)


def sort_key(sort: str, s: StationStatus) -> tuple:
    """The overview's orders, written independently of the database: unknown values last."""
    inf = float("inf")
    return {"station": (), "silent": (s.last_received if s.last_received is not None else inf,),
            "alarms": (-s.alarms_open,), "turnout": (-s.turnout if s.turnout is not None else inf,)}[sort] + (s.station,)


def expected(storage: Storage, names: list[str], query: OverviewQuery) -> list[str]:
    statuses = [storage.status(n) for n in names]
    chosen = [s for s in statuses if s is not None and matches(s, query.status, query.prefix)]
    return [s.station for s in sorted(chosen, key=lambda s: sort_key(query.sort, s))]


def walk_forward(storage: Storage, query: OverviewQuery, limit: int = 1000) -> list[list[str]]:
    pages, token = [], ""
    for _ in range(limit):
        page = storage.overview(replace(query, after=token), SILENT_BEFORE)
        pages.append([r.station for r in page.rows])
        assert len(pages[-1]) == len(set(pages[-1])) <= query.per_page
        assert (page.previous is None) == (not token or not any(itertools.chain(*pages[:-1])))
        if page.next is None:
            return pages
        token = page.next
    raise AssertionError("the walk did not end")


def walk_backward(storage: Storage, query: OverviewQuery) -> list[str]:
    """From the last page, follow the previous links back to the first page."""
    last, token = [], ""
    while True:
        page = storage.overview(replace(query, after=token), SILENT_BEFORE)
        if page.next is None:
            break
        token = page.next
    seen, previous = [r.station for r in page.rows], page.previous
    while previous is not None:
        page = storage.overview(replace(query, before=previous), SILENT_BEFORE)
        seen = [r.station for r in page.rows] + seen
        previous = page.previous
        last.append(len(page.rows))
    assert all(n == query.per_page for n in last)
    return seen


@HYPOTHESIS
@given(stations=station_sets, per_page=st.integers(1, 5), prefix=st.sampled_from(["", "K", "KG-", "%", "_", "!", "é"]))
def test_walking_every_page_visits_each_matching_station_once_in_order(
        new_storage: Callable[[], Storage], stations: list[Plan], per_page: int, prefix: str) -> None:
    storage = new_storage()
    apply(storage, stations)
    for filter_, sort, within in itertools.product(STATUS_FILTERS, SORTS, {"", prefix}):
        query = OverviewQuery(status=filter_, prefix=within, sort=sort, per_page=per_page)
        want = expected(storage, [p.name for p in stations], query)
        pages = walk_forward(storage, query)
        assert list(itertools.chain(*pages)) == want, (filter_, sort)
        assert all(len(p) == per_page for p in pages[:-1])
        assert walk_backward(storage, query) == want, (filter_, sort)
        assert storage.count_matching(query, SILENT_BEFORE, cap=100) == len(want)


@pytest.mark.parametrize("sort", list(SORTS))
def test_a_walk_ends_and_never_repeats_a_row_on_a_page_while_stations_move(
        new_storage: Callable[[], Storage], sort: str) -> None:
    storage = new_storage()
    units = {f"KG-{n:03d}": Unit(f"KG-{n:03d}") for n in range(40)}
    storage.sync_enrolled(list(units), "d")
    for n, unit in enumerate(units.values()):
        storage.store(unit.station, [unit.record("turnout_snapshot", {"identified": n, "ballots": n,
                                                                      "registered": 100})], NOW - 3600 + n, "test")
    moved: set[str] = set()
    seen: list[str] = []
    token, pages = "", 0
    query = OverviewQuery(sort=sort, per_page=6)
    while True:
        page = storage.overview(replace(query, after=token), SILENT_BEFORE)
        rows = [r.station for r in page.rows]
        assert len(rows) == len(set(rows))
        assert [sort_key(sort, r) for r in page.rows] == sorted(sort_key(sort, r) for r in page.rows)
        seen += rows
        pages += 1
        assert pages < 40
        if page.next is None:
            break
        token = page.next
        # between two page views, two stations report again: new turnout, new last record, an alarm
        for name in (rows[0], sorted(units)[(pages * 7) % 40]):
            unit, moved = units[name], moved | {name}
            storage.store(name, [unit.record("turnout_snapshot", {"identified": 99 - pages, "ballots": 1,
                                                                  "registered": 100}),
                                 unit.record("alarm_raised", {"alarm": pages, "alarm_kind": "k", "detail": ""})],
                          NOW + pages, "test")
    for name in set(units) - moved:
        assert seen.count(name) == 1, name


def test_bad_page_tokens_are_a_clear_400(app: Flask, client: FlaskClient, setup: Setup, tmp_path: Path) -> None:
    setup.enroll(*[Unit(f"KG-{i:04d}") for i in range(3, 160)])
    html = client.get("/?sort=turnout").get_data(as_text=True)
    token = unescape(NEXT.search(html).group(1)).split("after=")[1]
    assert client.get(f"/?sort=turnout&after={token}").status_code == 200
    body, mac = token.split(".")
    other = open_storage(str(tmp_path / "other.db"))
    foreign = other.tokens.make(Position("turnout", 1e300, "KG-0100"))
    other.close()
    bad = {"altered": f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}",
           "altered mac": f"{body}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}",
           # the same 16 bytes spelled differently: the last character's 4 unused low bits are not all zero
           "unused bits set": f"{body}.{mac[:-1]}{chr(ord(mac[-1]) + 1)}",
           "another database": foreign,
           "garbage": "hello", "empty part": f".{mac}", "two dots": f"{body}.{mac}.x", "not base64": "%%%.***",
           "padding": f"{body}=.{mac}", "too long": "A" * 600 + "." + mac, "unicode": "é.é", "sql": "' OR 1=1 --.x"}
    for what, value in bad.items():
        for param in ("after", "before"):
            reply = client.get("/", query_string={"sort": "turnout", param: value})
            assert reply.status_code == 400, (what, param)
            assert "page link" in reply.get_data(as_text=True), what
    reply = client.get("/", query_string={"sort": "station", "after": token})
    assert reply.status_code == 400 and "belongs to the sort by turnout" in reply.get_data(as_text=True)


def test_control_characters_in_the_prefix_are_a_400(app: Flask, client: FlaskClient) -> None:
    reply = client.get("/", query_string={"q": "KG\x00"})
    assert reply.status_code == 400 and "control characters" in reply.get_data(as_text=True)


def test_page_links_walk_the_html_overview_both_ways(app: Flask, client: FlaskClient, setup: Setup) -> None:
    setup.enroll(*[Unit(f"KG-{i:04d}") for i in range(3, 251)])
    url, pages = "/?sort=silent", []
    while url:
        html = client.get(url).get_data(as_text=True)
        pages.append(re.findall(r'href="/stations/([^"]+)"', html))
        found = NEXT.search(html)
        url = unescape(found.group(1)) if found else ""
    assert [len(p) for p in pages] == [100, 100, 50]
    assert list(itertools.chain(*pages)) == sorted(f"KG-{i:04d}" for i in range(1, 251))
    back = unescape(PREVIOUS.search(html).group(1))
    assert re.findall(r'href="/stations/([^"]+)"', client.get(back).get_data(as_text=True)) == pages[1]


def test_prefix_and_every_sort_are_index_ranges(new_storage: Callable[[], Storage]) -> None:
    storage = new_storage()
    storage.sync_enrolled([f"KG-{n:05d}" for n in range(2000)] + [f"TJ-{n:05d}" for n in range(2000)], "d")
    if storage.dialect.name == "postgresql":
        storage._q("ANALYZE stations")
    for sort in SORTS:
        probe = storage.overview(OverviewQuery(sort=sort, per_page=10), SILENT_BEFORE)
        for query in (OverviewQuery(sort=sort, after=probe.next or ""), OverviewQuery(sort=sort, prefix="KG-01")):
            plan = storage.overview_plan(query, SILENT_BEFORE)
            if storage.dialect.name == "sqlite":
                assert "SEARCH stations USING" in plan and "SCAN" not in plan, (sort, plan)
            else:
                assert "Index" in plan and "Seq Scan" not in plan and "Sort" not in plan.split("->")[0], (sort, plan)
    plan = storage.overview_plan(OverviewQuery(prefix="KG-01"), SILENT_BEFORE)
    assert ("station>? AND station<?" in plan) if storage.dialect.name == "sqlite" else ("~>=~" in plan or "Index Cond" in plan)


@HYPOTHESIS
@given(batches=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(
    ["open", "snapshot", "alarm", "ack", "close", "enroll"])), max_size=30))
def test_counts_stay_exact_after_random_ingests(new_storage: Callable[[], Storage],
                                                 batches: list[tuple[int, str]]) -> None:
    storage = new_storage()
    units = [Unit(f"KG-{n}") for n in range(6)]
    storage.sync_enrolled([u.station for u in units[:3]], "first")
    alarms = [0] * 6
    for n, action in batches:
        unit = units[n]
        if action == "enroll":
            storage.sync_enrolled([u.station for u in units[: n + 1]], f"d{n}")
            continue
        if action in ("alarm", "ack"):
            alarms[n] += action == "alarm"
        body = {"open": ("polls_opened", {"identified": 0, "ballots": 0}),
                "snapshot": ("turnout_snapshot", {"identified": unit.seq, "ballots": unit.seq, "registered": 90}),
                "alarm": ("alarm_raised", {"alarm": alarms[n], "alarm_kind": "k", "detail": ""}),
                "ack": ("alarm_acknowledged", {"alarm": alarms[n]}),
                "close": ("polls_closed", {"identified": 3, "ballots": 3, "difference": 0})}[action]
        storage.store(unit.station, [unit.record(*body)], NOW - 60 * n, "test")
    assert storage.tallies() == storage.counted_tallies()
    summary = storage.summary(SILENT_BEFORE, NOW)
    for filter_ in STATUS_FILTERS:
        assert summary.matching(filter_) == storage.count_matching(OverviewQuery(status=filter_), SILENT_BEFORE, 99)


def test_counts_stay_exact_under_concurrent_ingest(new_storage: Callable[[], Storage]) -> None:
    storage = new_storage()
    units = [Unit(f"KG-{n:03d}") for n in range(24)]
    storage.sync_enrolled([u.station for u in units[:12]], "half")
    batches = {u.station: [[u.record("polls_opened", {"identified": 0, "ballots": 0})]] + [
        [u.record("turnout_snapshot", {"identified": k, "ballots": k, "registered": 50}),
         u.record("alarm_raised", {"alarm": k, "alarm_kind": "k", "detail": ""})] for k in range(1, 4)] + (
        [[u.record("polls_closed", {"identified": 3, "ballots": 3, "difference": 0})]] if n % 3 else [])
        for n, u in enumerate(units)}
    failures: list[BaseException] = []

    def ingest(names: list[str]) -> None:
        try:
            for k in range(5):
                for name in names:
                    if k < len(batches[name]):
                        storage.store(name, batches[name][k], NOW, "test")
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    def enroll() -> None:
        try:
            storage.sync_enrolled([u.station for u in units], "all")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ingest, args=([u.station for u in units[i::4]],)) for i in range(4)]
    threads.append(threading.Thread(target=enroll))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert storage.tallies() == storage.counted_tallies()
    assert storage.tallies()["stations"] == 24 and storage.tallies()["with_alarms"] == 24


def test_silent_is_recounted_at_most_every_30_seconds_and_the_page_says_so(
        app: Flask, client: FlaskClient, setup: Setup, clock: FakeClock) -> None:
    unit = setup.units["KG-0001"]
    post(client, [unit.record("polls_opened", {"identified": 0, "ballots": 0})])
    clock.advance(15 * 60 - 10)
    html = client.get("/?status=silent").get_data(as_text=True)
    assert "<b>0</b> silent" in html and "About 0 stations match" in html and "recounted every 30 s" in html
    clock.advance(SILENT_RECOUNT_SECONDS - 1)  # silent now, but the count is less than 30 s old
    html = client.get("/?status=silent").get_data(as_text=True)
    assert "<b>0</b> silent" in html and "KG-0001" in html.split("<tbody>")[1]
    clock.advance(1)
    html = client.get("/?status=silent").get_data(as_text=True)
    assert "<b>1</b> silent" in html and "About 1 stations match" in html


def test_a_prefix_matching_too_many_stations_is_not_counted(new_storage: Callable[[], Storage]) -> None:
    storage = new_storage()
    storage.sync_enrolled([f"KG-{n:02d}" for n in range(30)] + ["TJ-1"], "d")
    assert storage.count_matching(OverviewQuery(prefix="KG-"), SILENT_BEFORE, cap=29) is None
    assert storage.count_matching(OverviewQuery(prefix="KG-"), SILENT_BEFORE, cap=30) == 30
    assert storage.count_matching(OverviewQuery(prefix="KG-1", status="not_reported"), SILENT_BEFORE, 29) == 10


OLD_STATIONS = """CREATE TABLE stations (
    station TEXT PRIMARY KEY, enrolled INTEGER NOT NULL DEFAULT 0,
    highest_seq {bigint} NOT NULL DEFAULT 0, last_hash TEXT NOT NULL DEFAULT '{zero}',
    phase TEXT NOT NULL DEFAULT 'not_opened', first_received {float}, last_received {float},
    last_at TEXT, opened_at TEXT, closed_at TEXT, identified {bigint}, ballots {bigint}, registered {bigint},
    alarms_open INTEGER NOT NULL DEFAULT 0, close_report TEXT)"""


def test_a_database_of_the_earlier_version_is_upgraded_in_place(new_storage: Callable[[], Storage]) -> None:
    """Rank columns added and computed, counts made, from the rows already there; nothing else changes."""
    storage = new_storage()
    url, postgres = storage.url, storage.dialect.name == "postgresql"
    types = {"bigint": "BIGINT" if postgres else "INTEGER", "float": "DOUBLE PRECISION" if postgres else "REAL",
             "zero": "0" * 64}
    storage._q("DROP TABLE stations")
    storage._q("DROP TABLE station_counts")
    storage._q(OLD_STATIONS.format(**types))
    rows = [("KG-1", 0, None, None, None, None, 0), ("KG-2", 4, "open", 100.0, 30, 100, 2),
            ("KG-3", 9, "closed", 50.0, 90, 100, 0), ("KG-4", 3, "open", 200.0, 5, 0, 1)]
    for row in rows:
        storage._q("INSERT INTO stations (station, highest_seq, phase, last_received, identified, registered, "
                   "alarms_open) VALUES (?, ?, COALESCE(?, 'not_opened'), ?, ?, ?, ?)", row)
    storage.close()
    upgraded = open_storage(url)
    try:
        assert upgraded.tallies() == upgraded.counted_tallies()
        assert upgraded.tallies()["stations"] == 4 and upgraded.tallies()["with_alarms"] == 2
        orders = {sort: [r.station for r in upgraded.overview(OverviewQuery(sort=sort), NOW).rows] for sort in SORTS}
        assert orders == {"station": ["KG-1", "KG-2", "KG-3", "KG-4"], "silent": ["KG-3", "KG-2", "KG-4", "KG-1"],
                          "alarms": ["KG-2", "KG-4", "KG-1", "KG-3"], "turnout": ["KG-3", "KG-2", "KG-1", "KG-4"]}
        assert upgraded.status("KG-2") == StationStatus("KG-2", highest_seq=4, phase="open", last_received=100.0,
                                                        identified=30, registered=100, alarms_open=2)
    finally:
        upgraded.close()


def test_page_tokens_round_trip_and_refuse_other_sorts(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "r.db"))
    try:
        for position in (Position("silent", 1e300, "KG-é\U0001f600"), Position("station", None, "x"),
                         Position("alarms", -3, "a.b"), Position("turnout", -0.123456789012345678, "\"quoted\"")):
            assert storage.tokens.read(storage.tokens.make(position), position.sort) == position
            with pytest.raises(PageTokenError, match="belongs to the sort"):
                storage.tokens.read(storage.tokens.make(position), "other")
    finally:
        storage.close()


def test_sqlite_prefix_is_case_sensitive_like_postgresql(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "r.db"))
    try:
        storage.sync_enrolled(["KG-1", "kg-2", "KG_3", "KGx4"], "d")
        rows = storage.overview(OverviewQuery(prefix="KG_"), NOW).rows
        assert [r.station for r in rows] == ["KG_3"]
        assert [r.station for r in storage.overview(OverviewQuery(prefix="kg"), NOW).rows] == ["kg-2"]
    finally:
        storage.close()
