"""The check-in desk: duplicate reads count once, and no decision is lost.

Two pure, immutable pieces, driven by the appliance with monotonic time:

* **Dedupe** (``DeskState.recent``): a read of the same identity within
  ``Delays.duplicate_read_window`` of that identity's previous read is the
  same scan (a double trigger, the 1D barcode on the back of the card read
  after the front) and counts once. The window slides: a document held in
  front of the camera keeps being "the same scan" until it has been away for
  the whole window. The identity is a string chosen by the appliance (the
  voter hash; for refusals, a keyed hash of the payload), never a raw number.
* **Decision queue** (``DeskState.showing`` / ``queue``): a decision is shown
  for ``Delays.decision_display``; one that arrives while another is on
  screen waits its turn and is then shown for the full time. ``dismiss``
  lets the clerk move on early.

Transition functions return a new state; the appliance keeps the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from .delays import Delays

D = TypeVar("D")


@dataclass(frozen=True)
class DeskState(Generic[D]):
    """Recent identities ``(key, last seen)`` and decisions: ``showing`` since a time, then ``queue``."""

    window: float
    display: float
    recent: tuple[tuple[str, float], ...] = ()
    showing: tuple[D, float] | None = None
    queue: tuple[D, ...] = ()

    def current(self, now: float) -> D | None:
        """The decision on screen at ``now``, or None."""
        shown = advance(self, now).showing
        return None if shown is None else shown[0]

    def pending(self, now: float | None = None) -> tuple[D, ...]:
        """Decisions waiting for the screen (at ``now`` if given)."""
        return (self if now is None else advance(self, now)).queue


def new_desk(delays: Delays) -> DeskState[D]:
    return DeskState(window=delays.duplicate_read_window, display=delays.decision_display)


def read(state: DeskState[D], key: str, now: float) -> tuple[DeskState[D], bool]:
    """Note a read of ``key``; the flag is True if it is new and must be decided."""
    live = tuple((k, t) for k, t in state.recent if now - t < state.window and k != key)
    previous = next((t for k, t in state.recent if k == key), None)
    fresh = previous is None or not 0 <= now - previous < state.window
    return replace(state, recent=live + ((key, now),)), fresh


def show(state: DeskState[D], decision: D, now: float) -> DeskState[D]:
    """Put ``decision`` on screen now, or behind those already waiting."""
    state = advance(state, now)
    if state.showing is None:
        return replace(state, showing=(decision, now))
    return replace(state, queue=state.queue + (decision,))


def advance(state: DeskState[D], now: float) -> DeskState[D]:
    """Retire decisions whose display time is over; the next waiting one takes the screen."""
    while state.showing is not None and now - state.showing[1] >= state.display:
        ended = state.showing[1] + state.display
        nxt = (state.queue[0], ended) if state.queue else None
        state = replace(state, showing=nxt, queue=state.queue[1:])
    return state


def dismiss(state: DeskState[D], now: float) -> DeskState[D]:
    """The clerk moves on: the next waiting decision is shown from ``now``."""
    state = advance(state, now)
    nxt = (state.queue[0], now) if state.queue else None
    return replace(state, showing=nxt, queue=state.queue[1:])


def forget(state: DeskState[D]) -> DeskState[D]:
    """A chair action changed the situation (polls opened, a check-in undone): the next read is new."""
    return replace(state, recent=())
