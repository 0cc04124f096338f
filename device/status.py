"""The station's read model: a frozen ``StationStatus``, published by the owner after each change.

The appliance's owner thread builds a new ``StationStatus`` after every batch of
messages it handled and on every tick, from its state alone plus what the
parts report of themselves (scanner state, box health, the outbox). Readers
(the chair's screen, ``/api/status``, the control socket, readiness) take the
latest one without a lock and without waiting for the owner; nothing they do
can delay a voter or reach the hardware.

``to_dict(now)`` is the JSON shape the screens, the API and the command line
read. The desk's current decision is the only part computed at read time
(from the immutable desk state and the reader's monotonic clock), so a decision
leaves the screen on time even between ticks.
"""

from __future__ import annotations

import copy
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from device import __version__
from device.backups import JournalBackups
from device.core import station as st
from device.core.catalogue import ALARM_ADVICE
from device.core.decision import Decision
from device.core.desk import DeskState
from device.core.events import CheckinUndone, Recorded, VoterAdmitted
from device.core.interlock import InterlockState
from device.core.session import Session
from device.hardware.interfaces import BallotBox, Clock, ScanSource
from device.package import StationPackage
from device.storagefault import StorageFault, StorageView
from device.store.journal import Journal
from device.store.verify import VerifyReport

if TYPE_CHECKING:
    from device.upstream.service import Upstream


@dataclass(frozen=True)
class Counters:
    """The counters every screen shows."""

    identified: int
    ballots: int
    registered: int
    undone: int
    refusals: tuple[tuple[str, int], ...]
    alarms_total: int

    @property
    def difference(self) -> int:
        return self.ballots - self.identified

    @property
    def turnout_pct(self) -> float:
        return round(100.0 * self.identified / self.registered, 2) if self.registered else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"identified": self.identified, "ballots": self.ballots, "difference": self.difference,
                "registered": self.registered, "turnout_pct": self.turnout_pct, "undone": self.undone,
                "refusals": dict(self.refusals), "alarms_total": self.alarms_total}


@dataclass(frozen=True)
class AlarmView:
    """An open alarm as the chair sees it, with what to do."""

    id: int
    kind: str
    detail: str
    at: float
    advice: str

    @classmethod
    def of(cls, a: st.OpenAlarm) -> AlarmView:
        return cls(a.alarm, a.kind.value, a.detail, a.at, ALARM_ADVICE[a.kind])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "detail": self.detail, "at": self.at, "advice": self.advice}


@dataclass(frozen=True)
class StationStatus:
    """Everything the chair's screen shows, as of one moment of the owner thread.

    The ``*_info`` fields are what parts report of themselves (plain JSON
    values, copied when published and again when read).
    """

    mode: str
    station: tuple[tuple[str, Any], ...]
    poll: str
    counters: Counters
    last_decision: Decision | None
    desk: DeskState[Decision]
    alarms: tuple[AlarmView, ...]
    interlock: InterlockState
    scanner_info: tuple[tuple[str, Any], ...]
    box_info: Any
    upstream_info: Any
    journal_ok: bool
    journal_problem: str
    seq: int
    health: tuple[tuple[str, Any], ...]
    backup: tuple[tuple[str, Any], ...]
    turnout_by_hour: tuple[tuple[int, int], ...]
    storage: StorageView
    units_info: Any = None
    """A station of several units: this unit, how far it holds each unit, each peer's last contact
    (``device/sync/service.py`` ``UnitSync.status``); None for a one-unit station."""
    update: tuple[tuple[str, Any], ...] = ()
    """Software updates as the journal tells them (``update_view``): the phase and the last outcome."""
    key_info: tuple[tuple[str, Any], ...] = ()
    """The record key and its enrollment as read at start (``device/keystate.py``); empty when not known."""

    def to_dict(self, now: float) -> dict[str, Any]:
        """The JSON-able status at monotonic time ``now`` (for the desk's current decision)."""
        current = self.desk.current(now)
        return {
            "mode": self.mode,
            "station": dict(self.station),
            "poll": self.poll,
            "counters": self.counters.to_dict(),
            "last_decision": self.last_decision.to_dict() if self.last_decision else None,
            "desk": {"current": current.to_dict() if current else None, "pending": len(self.desk.pending(now))},
            "alarms": [a.to_dict() for a in self.alarms],
            "interlock": {"armed": self.interlock.armed, "tokens": len(self.interlock.tokens),
                          "slot_open": self.interlock.slot_should_open and self.storage.ok,
                          "lid_open": self.interlock.lid_open, "jammed": self.interlock.jammed},
            "storage": self.storage.to_dict(),
            "scanner": dict(self.scanner_info),
            "box": copy.deepcopy(self.box_info),
            "upstream": copy.deepcopy(self.upstream_info),
            "journal": {"ok": self.journal_ok, "events": self.seq, "problem": self.journal_problem},
            "health": dict(self.health),
            "backup": dict(self.backup),
            "seq": self.seq,
            "units": copy.deepcopy(self.units_info),
            "update": {k: dict(v) if isinstance(v, tuple) else v for k, v in self.update},
            "key": dict(self.key_info),
        }


class TurnoutByHour:
    """Voters identified per wall-clock hour, kept up to date by the owner as it commits."""

    def __init__(self) -> None:
        self._hours: Counter[int] = Counter()

    def rebuild(self, state: st.StationState) -> None:
        self._hours = Counter(int(at // 3600) for _seq, at in state.checkins.values())

    def track(self, rec: Recorded, state: st.StationState) -> None:
        """Count ``rec`` (before it is applied to ``state``): an admission adds, an undo takes away."""
        e = rec.event
        if isinstance(e, VoterAdmitted):
            self._hours[int(rec.at // 3600)] += 1
        elif isinstance(e, CheckinUndone) and e.voter in state.checkins:
            self._hours[int(state.checkins[e.voter][1] // 3600)] -= 1

    def hours(self) -> tuple[tuple[int, int], ...]:
        """(hour start as wall seconds, voters identified in it), in order."""
        return tuple(sorted((h * 3600, n) for h, n in self._hours.items() if n))


def counters_of(state: st.StationState, registered: int) -> Counters:
    """The counters of a journal's fold."""
    return Counters(state.identified, state.ballots, registered, state.undone,
                    tuple(sorted(state.refusals.items())), state.alarms_total)


class Owned(Protocol):
    """What the read model is built from: the owner's state and its parts (the ``Appliance`` is one)."""

    mode: str
    package: StationPackage
    state: st.StationState
    session: Session
    report: VerifyReport | None
    scanner: ScanSource
    box: BallotBox
    upstream: Upstream | None
    journal: Journal
    hours: TurnoutByHour
    backups: JournalBackups
    fault: StorageFault
    data_dir: Path
    clock: Clock


def station_status(app: Owned, previous: StationStatus | None = None) -> StationStatus:
    """The read model of ``app`` as its owner thread sees it now (called on that thread only).

    With ``previous``, what the parts report of themselves (scanner, box, outbox, health) is taken
    from it instead of being asked for again.
    """
    s, p = app.state, app.package.payload
    ok = bool(app.report and app.report.ok)
    if previous is not None:
        scanner, box, upstream, health = (previous.scanner_info, previous.box_info, previous.upstream_info,
                                          previous.health)
    else:
        scanner, box, upstream, health = _parts(app)
    return StationStatus(
        mode=app.mode,
        station=(("id", app.package.station_id), ("name", p["station"].get("name")),
                 ("region", p["station"].get("region")), ("election", app.package.election_id),
                 ("training", app.package.training)),
        poll=s.poll.value, counters=counters_of(s, app.package.registered),
        last_decision=app.session.last_decision, desk=app.session.desk,
        alarms=tuple(AlarmView.of(a) for a in sorted(s.alarms.values(), key=lambda a: a.alarm)),
        interlock=app.session.interlock,
        scanner_info=scanner, box_info=box, upstream_info=upstream,
        journal_ok=ok, journal_problem="" if app.report is None or ok else app.report.sentence(),
        seq=app.journal.last_seq, health=health, backup=tuple(app.backups.last.items()),
        turnout_by_hour=app.hours.hours(),
        storage=app.fault.view(app.session.storage_low, app.journal.mark_fault),
        units_info=previous.units_info if previous is not None else _units(app),
        update=update_view(s),
        key_info=_key_info(app),
    )


def _key_info(app: Owned) -> tuple[tuple[str, Any], ...]:
    """The appliance's record key state (``device/keystate.py``), read once at start; () without one."""
    known = getattr(app, "key_state", None)
    return known.to_items() if known is not None else ()


def update_view(s: st.StationState) -> tuple[tuple[str, Any], ...]:
    """The phase of software updates and the journal's last outcome (what, why, which version and slot)."""
    last = s.last_update
    if last is None:
        return (("phase", s.update.value), ("last", None))
    return (("phase", s.update.value), ("last", (("what", last.what), ("reason", last.reason),
                                                 ("version", last.version), ("slot", last.slot))))


def _units(app: Owned) -> Any:
    """What the sync with the station's other units reports of itself now (in memory: no network)."""
    unit_sync = getattr(app, "unit_sync", None)
    return unit_sync.status() if unit_sync is not None else None


def _parts(app: Owned) -> tuple[tuple[tuple[str, Any], ...], Any, Any, tuple[tuple[str, Any], ...]]:
    """What the scanner, the box, the outbox and the machine report of themselves now."""
    usage = shutil.disk_usage(app.data_dir)
    health = {"cpu_temp_c": _cpu_temperature(), "free_bytes": usage.free, "total_bytes": usage.total,
              "clock": app.clock.wall(), "power": None, "software": __version__}
    return ((("name", app.scanner.name), ("state", app.scanner.state().value)), app.box.health(),
            app.upstream.status() if app.upstream is not None else None, tuple(health.items()))


def _cpu_temperature() -> float | None:
    """The SoC temperature from the kernel's thermal zone, if the machine has one."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None
