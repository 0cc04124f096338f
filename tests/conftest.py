"""Shared fixtures: a demo station in a temporary directory, a fake clock, a started appliance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import demo_pins, make_demo_station
from device.hardware.clock import FakeClock
from receiver.pgcluster import Cluster, ClusterError, start_cluster

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo station built once per session (keys and a 2,000-voter package)."""
    return make_demo_station(tmp_path_factory.mktemp("demo-template") / "station", voters=2000).parent


@pytest.fixture
def station_dir(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo station with an empty journal."""
    import shutil
    target = tmp_path / "station"
    shutil.copytree(demo_template, target)
    return target


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(station_dir: Path, clock: FakeClock) -> Iterator[object]:
    """Build (and on teardown stop) appliances on the same station directory."""
    built: list[Appliance] = []

    def make(start: bool = True) -> Appliance:
        app = build_appliance(load_config(station_dir / "station.toml"), clock=clock)
        if start:
            app.start(background=False)
        built.append(app)
        return app

    yield make
    for app in built:
        app.stop()  # idempotent: tests that stopped an appliance themselves are fine


@pytest.fixture
def app(make_app: object) -> Appliance:
    return make_app()  # type: ignore[operator, no-any-return]


@pytest.fixture(scope="session")
def pins() -> list[str]:
    return demo_pins(50)


# Storage faults: a full disk and an unwritable file, for any test that needs one --------------

import contextlib  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Callable  # noqa: E402


class FullDisk:
    """A full disk for SQLite connections, unprivileged and without a loop device.

    ``fill(conn, ...)`` caps each connection's database at the pages it has now
    (``PRAGMA max_page_count``): the next transaction that needs one more page
    fails with SQLITE_FULL, exactly as on a full card, while the last page's
    free room still takes a few small rows. ``free()`` lifts the cap again.
    Fill the journal's own connection (``journal.conn``): its appends and the
    outbox rows written in the same transaction go through it.
    """

    def __init__(self) -> None:
        self._limits: list[tuple[sqlite3.Connection, int]] = []

    def fill(self, *conns: sqlite3.Connection) -> None:
        for conn in conns:
            limit = conn.execute("PRAGMA max_page_count").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            self._limits.append((conn, limit))

    def free(self) -> None:
        while self._limits:
            conn, limit = self._limits.pop()
            conn.execute(f"PRAGMA max_page_count = {limit}")


@pytest.fixture
def full_disk() -> Iterator[FullDisk]:
    """``full_disk.fill(journal.conn)``: appends soon fail with StorageFull; ``full_disk.free()`` makes room."""
    disk = FullDisk()
    yield disk
    with contextlib.suppress(sqlite3.Error):
        disk.free()


@pytest.fixture
def make_unwritable() -> Iterator[Callable[..., Callable[[], None]]]:
    """``undo = make_unwritable(path)``: the file can be read but not written, also for root, until ``undo()``.

    As root the immutable flag (``chattr +i``) is used: it also stops writes through
    files already open, so ``live=True`` (a file made unwritable while a connection
    has it open) works only as root and skips otherwise, as it does where the file
    system has no immutable flag. Everything is undone at teardown.
    """
    undos: list[Callable[[], None]] = []

    def make(path: Path, *, live: bool = False) -> Callable[[], None]:
        root = os.geteuid() == 0
        if live and not root:
            pytest.skip("file permissions do not stop writes through an open file; needs root (chattr +i)")
        if not root:
            path.chmod(0o444)
        elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a file unwritable for root here (no chattr +i)")

        def undo() -> None:
            if root:
                subprocess.run(["chattr", "-i", str(path)], check=False)
            else:
                path.chmod(0o644)
        undos.append(undo)
        return undo

    yield make
    for undo in undos:
        undo()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | None]:
    """A real PostgreSQL server for the whole test run; in CI it must start, elsewhere its absence skips."""
    try:
        cluster = start_cluster()
    except ClusterError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: an SQLite file, then (marked postgres) a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "receiver.db")
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (``tests/browser_kit.py``); skipped without it."""
    from tests.browser_kit import launch, playwright_or_skip
    with playwright_or_skip().sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()
