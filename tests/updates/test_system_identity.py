"""The reports' system identity on a unit whose booted slot is not yet hashed (the image's first boot).

``pollbox-slot-status.service`` hashes the slot as flashed beside the appliance, after it is ready, so
the appliance starts before RAUC has an entry for its slot. Until then the reports name the code only;
``SystemIdentity`` asks the updater again in its own thread and names the system from the next report
on, without running the updater while a report is made (the outbox reads it inside the journal's
transaction).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from device.software import SystemIdentity, running_software
from device.updates import Bundle, RunningSlot

ROOT_SHA = "5c" * 32
DEADLINE = 10.0
"""Seconds a test waits for the identity's thread (it polls every few milliseconds here)."""


class Slot:
    """An updater whose booted slot gets its entry when ``hashed`` is set, counting its questions."""

    compatible = "pollbox-amd64"

    def __init__(self, *, known: bool = True) -> None:
        self.answer: RunningSlot | None = RunningSlot("A", "", "") if known else None
        self.asked = 0

    def hash_now(self) -> None:
        self.answer = RunningSlot("A", "0.1.0+image.0123456789ab", ROOT_SHA)

    def inspect(self, path: Path) -> Bundle:
        raise NotImplementedError

    def install(self, path: Path) -> str:
        raise NotImplementedError

    def booted(self) -> RunningSlot | None:
        self.asked += 1
        return self.answer


def poll(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"not within {DEADLINE} s: {what}"
        threading.Event().wait(0.005)


def test_a_slot_not_yet_hashed_names_the_code_only_until_its_entry_appears() -> None:
    slot = Slot()
    identity = SystemIdentity(slot, poll=None)
    assert dict(identity) == running_software() and not identity.final
    asked = slot.asked
    assert "system_hash" not in identity and identity["version"] == running_software()["version"]
    assert slot.asked == asked, "reading the identity ran the updater"
    assert identity.refresh() is False and dict(identity) == running_software()
    slot.hash_now()
    assert identity.refresh() is True
    assert dict(identity) == {**running_software(), "system_slot": "A", "system_version": "0.1.0+image.0123456789ab",
                              "system_hash": ROOT_SHA}
    asked = slot.asked
    assert identity.refresh() is True and slot.asked == asked, "a final identity is not asked for again"


def test_its_thread_names_the_system_once_the_slot_is_hashed_and_then_stops_asking() -> None:
    slot = Slot()
    identity = SystemIdentity(slot, poll=0.002, wait=DEADLINE)
    assert "system_hash" not in identity
    slot.hash_now()
    poll(lambda: "system_hash" in identity, "the thread reading the new entry")
    assert identity["system_hash"] == ROOT_SHA and identity.final
    assert identity.thread is not None
    identity.thread.join(DEADLINE)
    assert not identity.thread.is_alive(), "it kept asking after the slot was hashed"


def test_it_stops_asking_after_its_wait_and_when_stopped() -> None:
    never = Slot()
    waited = SystemIdentity(never, poll=0.001, wait=0.01)
    assert waited.thread is not None
    waited.thread.join(DEADLINE)
    assert not waited.thread.is_alive() and never.asked == 11, "it asked past its wait (10 rounds after the first)"
    stopped = Slot()
    identity = SystemIdentity(stopped, poll=DEADLINE, wait=DEADLINE)  # waiting when stopped, whatever the load
    identity.stop()
    assert identity.thread is not None
    identity.thread.join(DEADLINE)
    assert not identity.thread.is_alive() and stopped.asked <= 2 and not identity.final


def test_a_known_slot_or_no_updater_is_final_at_once_with_no_thread() -> None:
    hashed = Slot()
    hashed.hash_now()
    known = SystemIdentity(hashed)
    assert known.final and known["system_slot"] == "A" and known.thread is None
    nothing = SystemIdentity(None)
    assert nothing.final and dict(nothing) == running_software() and nothing.thread is None
    unknown = Slot(known=False)  # RAUC cannot say which slot runs: nothing will come later either
    assert SystemIdentity(unknown).thread is None and unknown.asked == 1
