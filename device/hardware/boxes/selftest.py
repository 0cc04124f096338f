"""The technician's hardware self-test of a ballot box unit: every output, every input, a report.

``run_selftest(box, clock=, ask=, notify=, wait=, polls_open=)`` is refused
(``SelfTestRefused``) while polls are open. Otherwise, on a started box, it
switches each output on and off (the slot lock included) and checks it, by
the unit's own read-back where it has one (smart box, simulation) or by
asking the technician (``ask`` returns True for "yes"); then, for each input,
it asks the technician to exercise it (``notify``) and waits, up to
``step_timeout`` seconds of the injected clock, for the debounced input to
follow. ``wait(seconds)`` lets time pass (``time.sleep`` in production; tests
advance a fake clock). The slot is locked again at the end, whatever happens.
The caller (the CLI) prints ``SelfTestReport.lines()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from device.hardware.interfaces import Clock
from protocol.errors import UserError

_ACTIVE_WORDS = {
    "beam": ("Block the drop sensor (hold a card in the slot)", "Clear the drop sensor"),
    "lid": ("Open the lid", "Close the lid"),
    "present": ("Plug the unit in", "Unplug the unit"),
}
_OUTPUT_WORDS = {"lock": "Is the slot unlocked (the lock clicked open)?", "green": "Is the green lamp lit?",
                 "red": "Is the red lamp lit?", "buzzer": "Is the buzzer sounding?"}


class SelfTestRefused(UserError):
    """The self-test may not run now; the message says why."""


class SelfTestable(Protocol):
    """What the self-test needs from a ballot box backend (all three provide it)."""

    def heartbeat(self) -> None: ...

    def lock(self) -> None: ...

    def output_names(self) -> tuple[str, ...]: ...

    def input_names(self) -> tuple[str, ...]: ...

    def set_output(self, name: str, active: bool) -> None: ...

    def read_back(self, name: str) -> bool | None: ...

    def read_input(self, name: str) -> bool: ...

    def expect_input(self, name: str, active: bool) -> None: ...


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class SelfTestReport:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        """The printable report, one line per check and a verdict."""
        out = [f"{'PASS' if c.passed else 'FAIL'}  {c.name:<16} {c.detail}" for c in self.checks]
        failed = sum(not c.passed for c in self.checks)
        out.append("self-test passed" if self.passed else f"self-test FAILED: {failed} of {len(self.checks)} checks")
        return out


def run_selftest(box: SelfTestable, *, clock: Clock, ask: Callable[[str], bool], notify: Callable[[str], None],
                 wait: Callable[[float], None], polls_open: bool, step_timeout: float = 30.0,
                 settle: float = 0.3) -> SelfTestReport:
    """Cycle each output, wait for each input; the slot is locked at the end."""
    if polls_open:
        raise SelfTestRefused("the hardware self-test is refused while the polls are open; close or finish first")
    checks: list[Check] = []
    try:
        for name in box.output_names():
            checks.append(_check_output(box, name, ask, wait, settle))
        for name in box.input_names():
            checks.append(_check_input(box, name, clock, notify, wait, step_timeout))
    finally:
        box.lock()
    return SelfTestReport(tuple(checks))


def _check_output(box: SelfTestable, name: str, ask: Callable[[str], bool], wait: Callable[[float], None],
                  settle: float) -> Check:
    seen = []
    for active in (True, False):
        box.heartbeat()
        box.set_output(name, active)
        wait(settle)
        observed = box.read_back(name)
        if observed is None:
            question = _OUTPUT_WORDS.get(name, f"Is {name} on?")
            observed = ask(question)
        seen.append(observed == active)
    how = "on and off" if all(seen) else ("did not switch on" if not seen[0] else "did not switch off")
    return Check(f"output {name}", all(seen), how)


def _check_input(box: SelfTestable, name: str, clock: Clock, notify: Callable[[str], None],
                 wait: Callable[[float], None], step_timeout: float) -> Check:
    start = box.read_input(name)
    for active in (not start, start):
        words = _ACTIVE_WORDS.get(name, (f"Activate {name}", f"Release {name}"))
        notify(words[0] if active else words[1])
        box.expect_input(name, active)
        if not _wait_for(box, name, active, clock, wait, step_timeout):
            return Check(f"input {name}", False, f"no change to {'active' if active else 'inactive'} "
                                                 f"within {step_timeout:g} s")
    return Check(f"input {name}", True, "seen both ways")


def _wait_for(box: SelfTestable, name: str, active: bool, clock: Clock, wait: Callable[[float], None],
              step_timeout: float) -> bool:
    deadline = clock.monotonic() + step_timeout
    while True:
        box.heartbeat()
        if box.read_input(name) == active:
            return True
        if clock.monotonic() >= deadline:
            return False
        wait(0.05)
