"""The owner thread (``device/owner.py``): the hand-over from draining in place, and the stall report.

These drive ``Owner`` with real threads and events (no sleeps): every wait has a named deadline.
"""

from __future__ import annotations

import logging
import threading

import pytest

from device.owner import Owner, OwnerBusy, thread_stacks

DEADLINE = 10.0
"""How long a test waits for a thread to reach a point it must reach (only a broken owner takes that long)."""
HAND_OVER_GRACE = 0.5
"""How long the owner thread is given to run something it must not run yet (the timer, every 10 ms)."""


def test_a_drain_in_place_that_ends_after_the_owner_thread_started_leaves_it_able_to_ask_itself() -> None:
    # A hardware thread posts just before the owner thread starts (a scanner reporting its device found) and
    # is still handling that message, in place, when the thread starts. The owner thread's own requests (the
    # timer's tick asks the owner, which is itself) must run in place once that drain has ended, not wait
    # for themselves until the request timeout.
    owner = Owner(on_idle=lambda: None, request_timeout=DEADLINE, stall_report=DEADLINE)
    handling, finish = threading.Event(), threading.Event()
    ticks: list[int] = []
    ticked = threading.Event()

    def slow_message() -> None:
        handling.set()
        finish.wait(DEADLINE)

    def timer() -> None:
        ticks.append(owner.call(lambda: len(ticks) + 1))
        ticked.set()

    poster = threading.Thread(target=owner.post, args=(slow_message,))
    poster.start()
    assert handling.wait(DEADLINE)
    owner.start(interval=0.01, on_timer=timer)  # the poster is still draining in place
    finish.set()
    poster.join(DEADLINE)
    try:
        assert ticked.wait(DEADLINE), "the owner thread's request to itself never ran"
        assert ticks[0] == 1
    finally:
        owner.stop()


def test_no_two_threads_handle_messages_at_once_across_the_hand_over() -> None:
    owner = Owner(on_idle=lambda: None, request_timeout=DEADLINE, stall_report=DEADLINE)
    handling, finish, timer_ran = threading.Event(), threading.Event(), threading.Event()
    inside: list[str] = []
    overlaps: list[str] = []

    def work(name: str) -> None:
        if inside:
            overlaps.append(f"{name} ran while {inside[0]} was running")
        inside.append(name)
        if name == "first":
            handling.set()
            finish.wait(DEADLINE)
        inside.remove(name)

    def timer() -> None:
        work("the timer")
        timer_ran.set()

    poster = threading.Thread(target=owner.post, args=(work, "first"))
    poster.start()
    assert handling.wait(DEADLINE)
    owner.start(interval=0.01, on_timer=timer)
    # the owner thread must not run its timer (or anything) while "first" is still being handled: give a
    # broken hand-over the time to show itself, then let "first" end
    assert not timer_ran.wait(HAND_OVER_GRACE)
    finish.set()
    poster.join(DEADLINE)
    try:
        assert timer_ran.wait(DEADLINE)
        assert overlaps == []
    finally:
        owner.stop()


def test_a_request_the_owner_does_not_answer_logs_every_threads_stack_then_gives_up(
        caplog: pytest.LogCaptureFixture) -> None:
    owner = Owner(on_idle=lambda: None, request_timeout=0.2, stall_report=0.1)
    stuck, release = threading.Event(), threading.Event()

    def hardware_that_hangs() -> None:
        stuck.set()
        release.wait(DEADLINE)

    owner.start(interval=60.0, on_timer=lambda: None)
    owner.post(hardware_that_hangs)
    assert stuck.wait(DEADLINE)
    try:
        with caplog.at_level(logging.WARNING, logger="pollbox.owner"), pytest.raises(OwnerBusy, match="did not answer"):
            owner.call(lambda: None)
        said = [r.getMessage() for r in caplog.records if r.name == "pollbox.owner"]
        assert len(said) == 2
        assert "has not answered" in said[0] and "did not answer" in said[1]
        for text in said:  # the owner thread's stack names the call it is stuck in
            assert "Thread pollbox-owner" in text and "hardware_that_hangs" in text
    finally:
        release.set()
        owner.stop()


def test_thread_stacks_names_every_thread() -> None:
    text = thread_stacks()
    assert f"Thread {threading.current_thread().name}" in text
    assert "test_thread_stacks_names_every_thread" in text
