"""A software update's life in the journal: checked, then refused or started, then installed or failed.

The whole machine is the ``TRANSITIONS`` table: ``idle`` -> ``installing`` when a
checked bundle is accepted, back to ``idle`` when the install ends (either way) or
the unit restarts. ``POLL_ACTIONS`` is the other direction: which chair actions on
the polls each phase lets through. While a bundle is being written the polls are
neither opened nor resumed (``held_for_update``): the refusal is journaled
(``PollsHeldForUpdate``) and shown to the chair with its reason.

What the bundle check found (``UpdateChecked``) comes from the updater
(``device/updates``), which runs outside the core; the core decides whether
the update may go ahead: never while the polls are open or paused, never with a
bundle the updater refused, never while another install runs (that raises and
records nothing). Every answer is one journal event, so each attempt and each
refusal's reason is on the hash-chained record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from . import events as ev
from .errors import IllegalTransition, RefusalCode
from .poll import PollAction, PollState


class UpdateRefusal(str, enum.Enum):
    """Why an update was refused before anything was written to the other slot."""

    POLLS_OPEN = "polls_open"
    TOO_LARGE = "too_large"
    TRUNCATED = "truncated"
    BAD_SIGNATURE = "bad_signature"
    WRONG_COMPATIBLE = "wrong_compatible"
    UNREADABLE = "unreadable"


class UpdatePhase(str, enum.Enum):
    IDLE = "idle"
    INSTALLING = "installing"


class UpdateStep(str, enum.Enum):
    START = "start"
    FINISH = "finish"


TRANSITIONS: dict[tuple[UpdatePhase, UpdateStep], UpdatePhase] = {
    (UpdatePhase.IDLE, UpdateStep.START): UpdatePhase.INSTALLING,
    (UpdatePhase.INSTALLING, UpdateStep.FINISH): UpdatePhase.IDLE,
}

BUSY_POLLS = (PollState.OPEN, PollState.PAUSED)
"""Poll states in which no update is taken."""


def next_phase(phase: UpdatePhase, step: UpdateStep) -> UpdatePhase:
    """The phase after ``step``; raises IllegalTransition if the table has no entry."""
    try:
        return TRANSITIONS[(phase, step)]
    except KeyError:
        raise IllegalTransition("update", phase.value, f"{step.value} an update") from None


POLL_ACTIONS: dict[UpdatePhase, frozenset[PollAction]] = {
    UpdatePhase.IDLE: frozenset(PollAction),
    UpdatePhase.INSTALLING: frozenset({PollAction.PAUSE, PollAction.CLOSE}),
}
"""The chair's actions on the polls each update phase allows: while a bundle is written into the other slot the
polls may be paused or closed (that only makes them safer), never opened or resumed."""


@dataclass(frozen=True)
class Held:
    """A chair action on the polls held back by an install: the event to journal, and the refusal to show."""

    event: ev.PollsHeldForUpdate
    refusal: IllegalTransition


def held_for_update(phase: UpdatePhase, action: PollAction, version: str) -> Held | None:
    """None when ``action`` may go ahead in ``phase``; else what to journal and say (``version``: the bundle
    being installed). Whether the poll table allows ``action`` at all is checked before, in ``poll.py``."""
    if action in POLL_ACTIONS[phase]:
        return None
    refusal = IllegalTransition(
        "polls", f"update {phase.value}", f"{action.value} the polls",
        f"software update {version or '(no version)'} is being written into the other root slot; wait until "
        "the install ends", code=RefusalCode.UPDATE_INSTALLING, params={"version": version})
    return Held(ev.PollsHeldForUpdate(action.value, version), refusal)


@dataclass(frozen=True)
class UpdateOutcome:
    """The journal's last word on software updates, for the screens: ``what`` is ``refused`` (with
    ``reason``, an ``UpdateRefusal`` value), ``installing``, ``installed``, ``failed``, ``booted`` or
    ``rolled_back``; ``version`` the bundle's, ``slot`` the slot written, booted or gone back to."""

    what: str
    version: str
    reason: str = ""
    slot: str = ""


def outcome_of(event: ev.Event) -> UpdateOutcome | None:
    """The outcome an update event records; None for any other event."""
    if isinstance(event, ev.UpdateRefused):
        return UpdateOutcome("refused", event.version, event.reason)
    if isinstance(event, ev.UpdateStarted):
        return UpdateOutcome("installing", event.version)
    if isinstance(event, ev.UpdateInstalled):
        return UpdateOutcome("installed", event.version, slot=event.slot)
    if isinstance(event, ev.UpdateFailed):
        return UpdateOutcome("failed", event.version)
    if isinstance(event, ev.UpdateBooted):
        return UpdateOutcome("booted", event.version, slot=event.slot)
    if isinstance(event, ev.UpdateRolledBack):
        return UpdateOutcome("rolled_back", event.version, slot=event.booted)
    return None


UPDATE_EVENTS = (ev.UpdateRefused, ev.UpdateStarted, ev.UpdateInstalled, ev.UpdateFailed, ev.UpdateBooted,
                 ev.UpdateRolledBack)


@dataclass(frozen=True)
class SlotRecord:
    """What the journal says about root slots: the install that still waits for its boot (``pending``:
    version, slot) and the slot the unit last started from with its version (``running``), as far as
    ``UpdateBooted``/``UpdateRolledBack`` events recorded them."""

    pending: tuple[str, str] | None = None
    running: tuple[str, str] | None = None


def decide_boot(record: SlotRecord, slot: str, slot_version: str) -> list[ev.Event]:
    """At a start from ``slot`` (running ``slot_version``): whether an update booted or was rolled back.

    After an install into slot X the next start from X is ``UpdateBooted``; a start from any other slot is
    ``UpdateRolledBack`` (the new slot never booted, or its trial failed before it was marked good and the
    boot loader chose the old one). Without a pending install, a start from another slot than the one last
    recorded is a rollback too: the trial boot started the appliance but it never became ready. A start whose
    slot is unknown ("": no updater, or one that cannot say) records nothing and keeps what is pending."""
    if not slot:
        return []
    if record.pending is not None:
        version, target = record.pending
        if slot == target:
            return [ev.UpdateBooted(version, slot)]
        return [ev.UpdateRolledBack(version, target, slot, slot_version)]
    if record.running is not None and record.running[0] != slot:
        return [ev.UpdateRolledBack(record.running[1], record.running[0], slot, slot_version)]
    return []


@dataclass(frozen=True)
class UpdateChecked:
    """The updater read a bundle: what it says it is, or why it was refused (``refusal``, with ``detail``)."""

    version: str
    compatible: str
    size: int
    signer: str = ""
    refusal: UpdateRefusal | None = None
    detail: str = ""


@dataclass(frozen=True)
class UpdateFinished:
    """The install ended: into ``slot`` when ``error`` is empty, else failed with that sentence."""

    version: str
    slot: str = ""
    error: str = ""


def decide_checked(poll: PollState, phase: UpdatePhase, inp: UpdateChecked) -> ev.Event:
    """The one event that answers a checked bundle. The polls come first: an update is refused while they
    are open or paused whatever the bundle; a second update while one installs raises (nothing recorded)."""
    if poll in BUSY_POLLS:
        return ev.UpdateRefused(UpdateRefusal.POLLS_OPEN.value, f"the polls are {poll.value}; updates are "
                                "taken only before the polls open or after they close", inp.version, inp.size)
    if inp.refusal is not None:
        return ev.UpdateRefused(inp.refusal.value, inp.detail, inp.version, inp.size)
    next_phase(phase, UpdateStep.START)
    return ev.UpdateStarted(inp.version, inp.compatible, inp.size, inp.signer)


def decide_finished(phase: UpdatePhase, inp: UpdateFinished) -> ev.Event:
    """The install's end: installed into a slot, or failed with the updater's sentence."""
    next_phase(phase, UpdateStep.FINISH)
    if inp.error:
        return ev.UpdateFailed(inp.version, inp.error)
    return ev.UpdateInstalled(inp.version, inp.slot)
