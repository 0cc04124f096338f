"""Fault family: crashes and power cuts. A child process runs a voting day and is SIGKILLed at random points.

After every kill: the journal verifies, every event the child acknowledged is
in the journal as acknowledged, and the next run resumes where the last one
stopped. The full suite kills 200 times; the quick suite 12.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from device.config import load_config
from device.core import events as ev
from device.core.catalogue import CATALOGUE
from device.package import load_package, public_key_from_b64
from device.store.journal import Journal
from device.store.verify import verify_journal

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]
KIND = {"admitted": "voter_admitted", "ballot_counted": "ballot_counted", "polls_opened": "polls_opened",
        "already_voted": "checkin_refused"}
VOTERS = 2000


def spawn(config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(CHILD), str(config), str(VOTERS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def run_until(config: Path, acks_wanted: int) -> tuple[list[tuple[int, str]], bool]:
    """Start the child, read ``acks_wanted`` acknowledgements, then SIGKILL it."""
    child = spawn(config)
    acks: list[tuple[int, str]] = []
    done = False
    assert child.stdout is not None
    while len(acks) < acks_wanted:
        line = child.stdout.readline()
        if not line:
            break
        if line.startswith("DONE"):
            done = True
            break
        _, seq, kind, _ = line.split()
        acks.append((int(seq), kind))
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate()
    assert "Traceback" not in err, err
    return acks, done


def check_journal(config: Path, acknowledged: list[tuple[int, str]]) -> object:
    cfg = load_config(config)
    package = load_package(cfg.station_package, public_key_from_b64(cfg.cec_public_key), cfg.election_id, 0)
    journal = Journal(cfg.data_dir / "journal.db", package.station_id)
    try:
        report = verify_journal(journal)
        assert report.ok, report.sentence()
        kinds = {r.seq: r.kind for r in journal.rows()}
        for seq, kind in acknowledged:
            assert kinds.get(seq) == KIND[kind], f"acknowledged event {seq} ({kind}) lost"
        admitted = Counter(r.event.voter for r in journal.recorded() if isinstance(r.event, ev.VoterAdmitted))
        assert not admitted or max(admitted.values()) == 1, "a voter was admitted twice"
        s = report.state
        assert s.ballots <= s.identified
        upstream = [r.seq for r in journal.rows() if CATALOGUE[r.kind].upstream]
        tables = {r[0] for r in journal.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # killed before the outbox was attached: then nothing can have been journaled yet
        outbox = (journal.conn.execute("SELECT seq, journal_seq FROM outbox ORDER BY seq").fetchall()
                  if "outbox" in tables else [])
        assert [j for _, j in outbox] == upstream, "outbox and journal disagree after a crash"
        assert [q for q, _ in outbox] == list(range(1, len(outbox) + 1))
        return s
    finally:
        journal.close()


def crash_day(station_dir: Path, kills: int, seed: int) -> None:
    config = station_dir / "station.toml"
    rng = random.Random(seed)
    acknowledged: list[tuple[int, str]] = []
    for _ in range(kills):
        acks, done = run_until(config, rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 34]))
        acknowledged += acks
        check_journal(config, acknowledged)
        if done:
            break
    acks, done = run_until(config, 10**9)    # let the last run finish the day
    acknowledged += acks
    state = check_journal(config, acknowledged)
    assert done and state.identified == VOTERS  # type: ignore[attr-defined]
    # every voter whose run died between admission and drop has no ballot: the difference shows it
    assert state.ballots == VOTERS + state.difference  # type: ignore[attr-defined]


def test_crash_quick(station_dir: Path) -> None:
    crash_day(station_dir, kills=12, seed=1)


@pytest.mark.slow
def test_crash_200_kills(station_dir: Path) -> None:
    crash_day(station_dir, kills=200, seed=2)
