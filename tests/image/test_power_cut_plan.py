"""The power-cut series' plan and its checks of a journal read from the disk, on the host (no boot).

The series itself runs in ``test_boot.py`` on a booted image; here the seeded plan is shown to replay
and to cover every point and kind, and ``holds`` to fail on each loss it is there to find.
"""

from __future__ import annotations

from collections import Counter

import pytest

from device.core.voterkey import voter_hash

from .power_cuts import KINDS, POINTS, RESET_SHARE, Acknowledged, JournalRead, holds, plan

KEY = bytes(range(32))
PINS = ("21204199000011", "11507198500022", "20101200700033")


def test_a_seed_replays_its_plan_and_the_plan_covers_every_point_and_kind() -> None:
    cuts = plan(935747361, 20)
    assert cuts == plan(935747361, 20) and cuts != plan(935747362, 20)
    assert {c.point for c in cuts} == set(POINTS) and {c.kind for c in cuts} == set(KINDS)
    assert sum(c.kind == "system_reset" for c in cuts) == round(20 * RESET_SHARE)
    assert all(plan(seed, 3)[0].point != "boot" for seed in range(50)), "a series starts on a running unit"
    assert {c.point for c in plan(1, 3)} == set(POINTS)


def journal(voters: tuple[str, ...], ballots: int, extra: int = 2, hashes: dict[int, bytes] | None = None) -> JournalRead:
    events = len(voters) + ballots + extra
    return JournalRead(events, hashes or {seq: bytes([seq]) for seq in range(1, events + 1)},
                       Counter(voter_hash(KEY, pin) for pin in voters), ballots)


def acknowledged(voters: tuple[str, ...], ballots: int, events: int) -> Acknowledged:
    return Acknowledged(events=events, identified=len(voters), ballots=ballots, voters=list(voters))


def test_a_journal_holding_everything_acknowledged_holds() -> None:
    before = journal(PINS[:2], 1)
    holds(journal(PINS, 2), acknowledged(PINS[:2], 2, 6), KEY, before)


@pytest.mark.parametrize(("found", "acked", "said"), [
    (journal(PINS[:2], 2), acknowledged(PINS, 2, 6), "1 acknowledged admissions missing"),
    (journal(PINS, 1), acknowledged(PINS, 2, 6), "1 ballots on disk, 2 acknowledged"),
    (journal(PINS, 2), acknowledged(PINS, 2, 8), "7 events on disk, 8 acknowledged"),
    (journal((*PINS, PINS[0]), 0), acknowledged(PINS, 0, 3), "1 voters admitted twice"),
])
def test_a_lost_or_doubled_event_fails(found: JournalRead, acked: Acknowledged, said: str) -> None:
    with pytest.raises(AssertionError, match=said):
        holds(found, acked, KEY, None)


def test_an_event_changed_since_the_last_read_fails() -> None:
    before = journal(PINS[:2], 1)
    after = journal(PINS, 2, hashes={**before.hashes, 3: b"rewritten"})
    with pytest.raises(AssertionError, match=r"changed or vanished: seq \[3\]"):
        holds(after, acknowledged(PINS, 2, 7), KEY, before)
