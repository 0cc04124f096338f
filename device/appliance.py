"""The appliance: one station unit, wired from its config. The composition root.

``build_appliance(config)`` is the only place that chooses backends and builds
collaborators. ``Appliance`` serialises everything behind one lock and follows
one rule for every change: **decide** (pure core), **commit** (journal, one
transaction), **apply** (fold into the in-memory state), **act** (move the
slot, answer the desk). Locking the slot is the only action allowed before a
commit, because it is the safe direction.

The chair's screen (``web_ui``) and the CLI's control socket use only the
public methods below; they never reach the hardware.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device import __version__
from device.core import desk as dk
from device.core import events as ev
from device.core import interlock as il
from device.core import station as st
from device.core.catalogue import ALARM_ADVICE
from device.core.delays import Delays
from device.core.errors import IllegalTransition, RefusalCode
from device.core.events import AlarmKind, CheckinMethod
from device.core.poll import PollState
from device.decision import ActionRefused, Decision
from device.hardware.interfaces import BallotBox, BoxInputs, BoxSignal, Clock, ScannerState, ScanRead, ScanSource
from device.identity import Identity, Resolved
from device.package import StationPackage
from device.store.backup import BackupError, backup_journal
from device.store.journal import Journal
from device.store.verify import VerifyReport, verify_journal

log = logging.getLogger("pollbox.appliance")

_SIGNAL_INPUT: dict[BoxSignal, Callable[[float], il.Input]] = {
    BoxSignal.BEAM_BLOCKED: lambda now: il.BeamBlocked(now),
    BoxSignal.BEAM_CLEARED: lambda now: il.BeamCleared(now),
    BoxSignal.LID_OPENED: lambda now: il.LidOpened(now),
    BoxSignal.LID_CLOSED: lambda now: il.LidClosed(now),
    BoxSignal.JAMMED: lambda now: il.JamReported(now),
}
DOWN_DETAIL = "counted by the ballot box while the station software was down"
UNHEARD_DETAIL = "counted by the ballot box while the station was not hearing it"


class Appliance:
    """A running station. Collaborators are keyword-only; see ``build_appliance``."""

    def __init__(
        self, *, package: StationPackage, journal: Journal, box: BallotBox, scanner: ScanSource,
        identity: Identity, clock: Clock, delays: Delays, data_dir: Path, mode: str,
        upstream: Any = None, sim: Any = None, backup_dir: Path | None = None,
    ) -> None:
        self.package, self.journal, self.box, self.scanner = package, journal, box, scanner
        self.identity, self.clock, self.delays, self.data_dir, self.mode = identity, clock, delays, data_dir, mode
        self.upstream, self.sim = upstream, sim
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self.state = st.StationState()
        self.interlock = il.InterlockState()
        self.report: VerifyReport | None = None
        self.last_decision: Decision | None = None
        self.desk: dk.DeskState[Decision] = dk.new_desk(delays)
        self._by_key: dict[str, Decision] = {}
        self._hourly: Counter[int] = Counter()
        self._line_to_voter = {e.line: h for h, e in package.voters.items()}
        self._next_snapshot: float | None = None
        self.started = False
        self.backup_dir = backup_dir
        self.last_backup: dict[str, Any] = {"configured": backup_dir is not None}
        self._next_backup = 0.0
        self.on_healthy_tick: Callable[[], None] | None = None
        """Called after every tick that went well (the service watchdog's ping); set by the CLI."""

    # Life cycle -------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Lock the slot, verify and replay the journal, record the start, start the parts."""
        with self._lock:
            inputs = self.box.start(self._on_box_signal)
            self.report = verify_journal(self.journal)
            self.state = self.report.state
            self._rebuild_hourly()
            if not self.report.ok:
                log.error("%s", self.report.sentence())
            self.started = True
            if self.report.ok:
                self._record_start(inputs)
        self.scanner.start(self._on_scan, self._on_scanner_state)
        if self.upstream is not None and background:
            self.upstream.start()
        if background:
            self._loop = threading.Thread(target=self._run_loop, name="pollbox-loop", daemon=True)
            self._loop.start()

    def _record_start(self, inputs: BoxInputs) -> None:
        now = self.clock.monotonic()
        out: list[ev.Event] = [ev.DeviceStarted(__version__, self.package.station_id)]
        out += [ev.ArmCancelled(t, "restart") for t in sorted(self.state.open_tokens)]
        self._commit(out)
        if inputs.unit_drops is not None:
            self._catch_up(inputs.unit_drops, DOWN_DETAIL, inputs.unit_id)
        if inputs.lid_open:
            self._feed(il.LidOpened(now))
        if inputs.beam_blocked:
            self._feed(il.BeamBlocked(now, at_startup=True))

    def stop(self) -> None:
        """Lock the slot and stop every part; the journal stays consistent. A second call does nothing."""
        with self._lock:
            if self._stop.is_set():
                return
            self.started = False
        self._stop.set()
        if self._loop is not None:
            self._loop.join(timeout=5)
        with self._lock:
            self.box.lock()
            self.box.stop()
        self.scanner.stop()
        if self.sim is not None and self.sim.camera is not None:
            self.sim.camera.stop()
        if self.upstream is not None:
            self.upstream.close()
        self.journal.close()

    def _run_loop(self) -> None:
        while not self._stop.wait(min(self.delays.heartbeat_interval, 0.25)):
            try:
                self.tick()
            except Exception:  # the loop must survive; the slot locks, and the watchdog is not fed
                log.exception("tick failed; locking the slot")
                self.box.lock()
                continue
            if self.on_healthy_tick is not None:  # also with a failed journal: the screen must stay up to say so
                self.on_healthy_tick()
            self.backup_if_due()

    def tick(self) -> None:
        """Advance timers: token expiry, jam detection, heartbeat, hourly snapshot."""
        with self._lock:
            if self.report is None or not self.report.ok:
                self.box.lock()
                return
            self._feed(il.Tick(self.clock.monotonic()))
            self.box.heartbeat()
            self._maybe_snapshot()

    # Committing -------------------------------------------------------------------

    def _commit(self, events: list[ev.Event]) -> list[ev.Recorded]:
        if self.report is None or not self.report.ok:
            raise ActionRefused("the journal failed verification; nothing more can be recorded "
                                "(run 'pollbox verify' and call the technician)", RefusalCode.JOURNAL_FAILED)
        recorded = self.journal.append(events, self.clock.wall())
        for rec in recorded:
            self._track_hourly(rec)
            st.apply(self.state, rec)
        return recorded

    def _track_hourly(self, rec: ev.Recorded) -> None:
        e = rec.event
        if isinstance(e, ev.VoterAdmitted):
            self._hourly[int(rec.at // 3600)] += 1
        elif isinstance(e, ev.CheckinUndone):
            first = self.state.checkins.get(e.voter)
            if first is not None:
                self._hourly[int(first[1] // 3600)] -= 1

    def _rebuild_hourly(self) -> None:
        self._hourly.clear()
        for _seq, at in self.state.checkins.values():
            self._hourly[int(at // 3600)] += 1

    # The ballot box -------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """True when the journal verified at start and events may be recorded."""
        return self.started and self.report is not None and self.report.ok

    def _on_box_signal(self, signal: BoxSignal, now: float, count: int | None = None,
                       unit_id: str | None = None) -> None:
        """A signal from the box (``count``: the unit's own drop counter, from a unit that keeps one;
        ``unit_id``: the unit's identity, with UNIT_FOUND, from a unit that reports one)."""
        with self._lock:
            if not self.writable:
                self.box.lock()
                log.error("box signal %s not recorded: the journal is not writable", signal.value)
                return
            if signal is BoxSignal.BEAM_BLOCKED and count is not None:
                self._catch_up(count - 1, UNHEARD_DETAIL)  # a drop the station missed is still counted, once
                self._feed(il.BeamBlocked(now), unit_count=count)
                return
            if signal in _SIGNAL_INPUT:
                self._feed(_SIGNAL_INPUT[signal](now))
                return
            lost = signal is BoxSignal.UNIT_LOST
            out: list[ev.Event] = [ev.DeviceStatusChanged("ballot_box", "lost" if lost else "present")]
            if lost:
                self.box.lock()
                out.append(st.alarm_event(self.state, AlarmKind.BOX_UNIT_LOST, "no answer from the ballot box unit"))
            elif count is not None and count >= 0:
                out += st.decide_unit_count(self.state, count, UNHEARD_DETAIL, unit_id)
            self._commit(out)

    def _catch_up(self, unit_count: int, detail: str, unit_id: str | None = None) -> None:
        """Journal the drops the unit counted that the journal does not hold yet (nothing if none)."""
        try:
            events = st.decide_unit_count(self.state, unit_count, detail, unit_id)
        except IllegalTransition as exc:
            log.error("box unit counter not reconciled: %s", exc)
            return
        if events:
            self._commit(events)

    def _feed(self, inp: il.Input, unit_count: int | None = None) -> None:
        """Step the interlock, record its outcomes, then set the slot."""
        try:
            new, outcomes = il.step(self.interlock, inp, self.delays)
        except IllegalTransition as exc:
            log.warning("ignored box input: %s", exc)
            return
        if not new.slot_should_open:
            self.box.lock()
        events = self._outcome_events(outcomes, unit_count)
        self._commit(events)
        old, self.interlock = self.interlock, new
        consumed = any(isinstance(o, il.Counted) and o.token is not None for o in outcomes)
        if new.slot_should_open and (consumed or not old.slot_should_open):
            self.box.arm()  # the box opens for one ballot per arm()

    def _outcome_events(self, outcomes: tuple[il.Outcome, ...], unit_count: int | None = None) -> list[ev.Event]:
        out: list[ev.Event] = []
        alarms = 0
        for o in outcomes:
            if isinstance(o, il.Counted):
                out.append(ev.BallotCounted(o.token, unit_count))
            elif isinstance(o, il.Expired):
                out.append(ev.ArmExpired(o.token))
            elif isinstance(o, il.Alarm):
                out.append(st.alarm_event(self.state, o.kind, o.detail, alarms))
                alarms += 1
            elif isinstance(o, il.JamEnded):
                out.append(ev.JamCleared())
            elif isinstance(o, il.LidShut):
                out.append(ev.LidClosed())
        return out

    # The desk ----------------------------------------------------------------------------

    def _on_scan(self, read: ScanRead) -> None:
        """A read from the scanner's thread; the decision reaches the screen through ``status``."""
        try:
            self.identify(read)
        except ActionRefused as exc:
            log.error("scan not recorded: %s", exc)

    def identify(self, read: ScanRead) -> Decision:
        """A document was read: decide, record, then arm the slot if admitted."""
        return self._identify(self.identity.resolve_scan(read.text), CheckinMethod.SCAN)

    def identify_manual(self, number: str) -> Decision:
        """The clerk typed a number because nothing scanned: recorded as a manual identification."""
        return self._identify(self.identity.resolve_manual(number), CheckinMethod.MANUAL)

    def _identify(self, resolved: Resolved, method: CheckinMethod) -> Decision:
        with self._lock:
            mono = self.clock.monotonic()
            self.desk, fresh = dk.read(self.desk, resolved.desk_key, mono)
            first = self._by_key.get(resolved.desk_key)
            if not fresh and first is not None:
                return Decision("duplicate_read", self.clock.wall(), first.method, first.line, first.name, first.at,
                                f"same document read again; counted once ({first.outcome})", first.seq)
            event = st.decide_checkin(self.state, resolved.voter_hash, self.package.voters, method, resolved.detail)
            (rec,) = self._commit([event])
            decision = self._decision(rec, method)
            if isinstance(event, ev.VoterAdmitted):
                self._feed(il.Arm(event.token, mono))
            live = {k for k, _ in self.desk.recent}
            self._by_key = {k: d for k, d in self._by_key.items() if k in live}
            self._by_key[resolved.desk_key] = decision
            self.desk = dk.show(self.desk, decision, mono)
            self.last_decision = decision
            return decision

    def _decision(self, rec: ev.Recorded, method: CheckinMethod) -> Decision:
        e = rec.event
        if isinstance(e, ev.VoterAdmitted):
            entry = self.package.voters[e.voter]
            return Decision("admitted", rec.at, method.value, entry.line, entry.name, seq=rec.seq)
        assert isinstance(e, ev.CheckinRefused)
        known = self.package.voters.get(e.voter) if e.voter else None
        first_at = None
        if e.voter and e.reason == "already_voted":
            first_at = self.state.checkins[e.voter][1]
        return Decision(e.reason, rec.at, method.value, known.line if known else None,
                        known.name if known else None, first_at, e.detail, rec.seq)

    def _on_scanner_state(self, state: ScannerState) -> None:
        with self._lock:
            if not self.writable or state is ScannerState.READING:
                return
            out: list[ev.Event] = [ev.DeviceStatusChanged("scanner", state.value)]
            if state is ScannerState.DISCONNECTED and self.state.poll is PollState.OPEN:
                out.append(st.alarm_event(self.state, AlarmKind.SCANNER_LOST, "scanner disconnected"))
            self._commit(out)

    # Chair actions ---------------------------------------------------------------------------

    def _act(self, decide: Callable[[], ev.Event | list[ev.Event]]) -> list[ev.Recorded]:
        with self._lock:
            try:
                made = decide()
            except IllegalTransition as exc:
                raise ActionRefused.from_transition(exc) from None
            events = made if isinstance(made, list) else [made]
            recorded = self._commit(events)
            self.desk = dk.forget(self.desk)
            for e in events:
                if isinstance(e, ev.ArmCancelled):
                    self._feed(il.Cancel(e.token))
            return recorded

    def open_polls(self) -> None:
        """Open the polls; refused unless the journal verifies and the zero report holds."""
        if self.report is None or not self.report.ok:
            raise ActionRefused(f"cannot open the polls: {self.report.sentence() if self.report else 'not started'}",
                                RefusalCode.JOURNAL_FAILED)
        self._act(lambda: st.decide_open(self.state))
        self._next_snapshot = self.clock.monotonic() + self.delays.turnout_snapshot_every

    def pause_polls(self, reason: str = "") -> None:
        self._act(lambda: st.decide_pause(self.state, reason))

    def resume_polls(self) -> None:
        self._act(lambda: st.decide_resume(self.state))

    def close_polls(self) -> dict[str, Any]:
        self._act(lambda: st.decide_close(self.state))
        if self.upstream is not None:
            self.upstream.wake()  # the close report goes at once, even during a backoff
        report = self.close_report()
        assert report is not None
        return report

    def acknowledge_alarm(self, alarm_id: int, note: str = "") -> None:
        self._act(lambda: st.decide_acknowledge(self.state, alarm_id, note))

    def undo_checkin(self, line: int, reason: str) -> None:
        """Undo the standing check-in of the voter on list line ``line``, with a reason."""
        voter = self._line_to_voter.get(line)
        if voter is None:
            raise ActionRefused(f"there is no line {line} in this station's voter list", RefusalCode.NO_SUCH_LINE,
                                {"line": line})

        def decide() -> list[ev.Event]:
            out = st.decide_undo(self.state, voter, reason)
            token = self.state.token_of.get(voter)
            if token is not None and token in self.state.open_tokens:
                out.append(ev.ArmCancelled(token, "check-in undone"))
            return out
        self._act(decide)

    def export_usb(self, directory: Path) -> dict[str, Any]:
        """Write the records the CEC has not acknowledged to a file on a USB stick, and note it in the journal."""
        if self.upstream is None:
            raise ActionRefused("this unit has no upstream outbox", RefusalCode.NO_OUTBOX)
        waiting = self.upstream.status()["waiting"]
        path = self.upstream.export(directory)
        self.annotate("usb_export", f"{waiting} records exported to a USB file")
        return {"path": str(path), "records": waiting}

    def backup_if_due(self) -> None:
        """Copy the journal to the configured backup directory every ``Delays.backup_every``.

        Runs outside the appliance lock (the copy reads its own snapshot), so a slow
        USB stick never delays a voter.
        """
        now = self.clock.monotonic()
        if self.backup_dir is None or now < self._next_backup:
            return
        self._next_backup = now + self.delays.backup_every
        try:
            self.backup(self.backup_dir)
        except BackupError as exc:
            log.warning("journal backup failed: %s", exc)

    def backup(self, directory: Path) -> dict[str, Any]:
        """Copy the journal to ``directory`` now; the result also shows in ``status()``."""
        try:
            done = backup_journal(self.journal.path, self.package.station_id, directory)
        except BackupError as exc:
            self.last_backup = {"configured": self.backup_dir is not None, "ok": False, "error": str(exc),
                                "at": self.clock.wall()}
            raise
        self.last_backup = {"configured": self.backup_dir is not None, "ok": True, "path": str(done.path),
                            "events": done.events, "at": self.clock.wall()}
        return self.last_backup

    def annotate(self, topic: str, text: str) -> None:
        """A note of record (readiness, enrollment, PIN lockout); becomes an upstream record."""
        with self._lock:
            self._commit([ev.Annotation(topic, text)])

    def _maybe_snapshot(self) -> None:
        if self.state.poll is not PollState.OPEN or self._next_snapshot is None:
            return
        if self.clock.monotonic() >= self._next_snapshot:
            s = self.state
            self._commit([ev.TurnoutSnapshot(s.identified, s.ballots, self.package.registered)])
            self._next_snapshot = self.clock.monotonic() + self.delays.turnout_snapshot_every

    # Reading ------------------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        with self._lock:
            return verify_journal(self.journal)

    def counters(self) -> dict[str, Any]:
        s, registered = self.state, self.package.registered
        turnout = round(100.0 * s.identified / registered, 2) if registered else 0.0
        return {"identified": s.identified, "ballots": s.ballots, "difference": s.difference,
                "registered": registered, "turnout_pct": turnout, "undone": s.undone,
                "refusals": dict(s.refusals), "alarms_total": s.alarms_total}

    def zero_report(self) -> dict[str, Any]:
        s = self.state
        return {"station": self.package.station_id, "identified": s.identified, "ballots": s.ballots,
                "holds": not s.anything_recorded, "poll": s.poll.value, "at": self.clock.wall()}

    def close_report(self) -> dict[str, Any] | None:
        """The close report as recorded, with the signed upstream record if there is one."""
        with self._lock:
            if self.state.poll is not PollState.CLOSED:
                return None
            closed, raised = self._close_and_alarms()
            e = closed.event
            assert isinstance(e, ev.PollsClosed)
            alarms = [self._alarm_dict(a) for a in raised]
            signed = self.upstream.signed_line_for(closed.seq) if self.upstream is not None else None
            return {"station": self.package.station_id, "station_name": self.package.payload["station"].get("name"),
                    "election": self.package.election_id, "closed_at": closed.at, "seq": closed.seq,
                    "identified": e.identified, "ballots": e.ballots, "difference": e.difference,
                    "alarms_total": e.alarms_total, "alarms_open": e.alarms_open, "alarms": alarms,
                    "registered": self.package.registered, "signed": signed,
                    "journal_head": self.journal.last_hash.hex()}

    def _close_and_alarms(self) -> tuple[ev.Recorded, list[ev.Recorded]]:
        """The close report event and every alarm raised, in one pass over the journal."""
        closing: ev.Recorded | None = None
        raised: list[ev.Recorded] = []
        for rec in self.journal.recorded():
            if isinstance(rec.event, ev.PollsClosed):
                closing = rec
            elif isinstance(rec.event, ev.AlarmRaised):
                raised.append(rec)
        assert closing is not None, "polls are closed, so the journal holds the close report"
        return closing, raised

    def _alarm_dict(self, rec: ev.Recorded) -> dict[str, Any]:
        e = rec.event
        assert isinstance(e, ev.AlarmRaised)
        return {"id": e.alarm, "kind": e.alarm_kind, "detail": e.detail, "at": rec.at,
                "open": e.alarm in self.state.alarms}

    def turnout_by_hour(self) -> list[tuple[int, int]]:
        """(hour start as wall seconds, voters identified in that hour), in order."""
        with self._lock:
            return sorted((h * 3600, n) for h, n in self._hourly.items() if n)

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot of everything the chair's screen shows."""
        with self._lock:
            s, p = self.state, self.package.payload
            return {
                "mode": self.mode,
                "station": {"id": self.package.station_id, "name": p["station"].get("name"),
                            "region": p["station"].get("region"), "election": self.package.election_id},
                "poll": s.poll.value,
                "counters": self.counters(),
                "last_decision": self.last_decision.to_dict() if self.last_decision else None,
                "desk": self._desk_status(),
                "alarms": [self._open_alarm(a) for a in sorted(s.alarms.values(), key=lambda a: a.alarm)],
                "interlock": {"armed": self.interlock.armed, "tokens": len(self.interlock.tokens),
                              "slot_open": self.interlock.slot_should_open, "lid_open": self.interlock.lid_open,
                              "jammed": self.interlock.jammed},
                "scanner": {"name": self.scanner.name, "state": self.scanner.state().value},
                "box": self.box.health(),
                "upstream": self.upstream.status() if self.upstream is not None else None,
                "journal": {"ok": bool(self.report and self.report.ok), "events": self.journal.last_seq,
                            "problem": "" if self.report is None or self.report.ok else self.report.sentence()},
                "health": self._health(),
                "backup": dict(self.last_backup),
                "seq": self.journal.last_seq,
            }

    def _desk_status(self) -> dict[str, Any]:
        mono = self.clock.monotonic()
        current = self.desk.current(mono)
        return {"current": current.to_dict() if current else None, "pending": len(self.desk.pending(mono))}

    def dismiss_decision(self) -> None:
        """The clerk moves on: the next queued decision takes the screen."""
        with self._lock:
            self.desk = dk.dismiss(self.desk, self.clock.monotonic())

    def _open_alarm(self, a: st.OpenAlarm) -> dict[str, Any]:
        return {"id": a.alarm, "kind": a.kind.value, "detail": a.detail, "at": a.at, "advice": ALARM_ADVICE[a.kind]}

    def _health(self) -> dict[str, Any]:
        usage = shutil.disk_usage(self.data_dir)
        return {"cpu_temp_c": _cpu_temperature(), "free_bytes": usage.free, "total_bytes": usage.total,
                "clock": self.clock.wall(), "power": None, "software": __version__}


def _cpu_temperature() -> float | None:
    """The SoC temperature from the kernel's thermal zone, if the machine has one."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None


class SimControls:
    """What a person can do to a simulated station: scan, type, show a document to the camera,
    drop ballots, open the lid, cut the link. Exists only in simulation mode."""

    def __init__(self, *, box: Any, scanner: Any, camera: Any = None, link: Any = None) -> None:
        self.box, self.scanner, self.camera, self.link = box, scanner, camera, link

    def attach(self, app: Appliance) -> None:
        """Connect the simulated camera to the desk (the typed scanner is the appliance's own source)."""
        if self.camera is not None:
            self.camera.start(app._on_scan, lambda state: None)

    def feed(self, text: str) -> None:
        self.scanner.feed(text)

    def feed_image(self, path: Path) -> list[str]:
        """Show an image to the simulated camera; returns the symbologies it decoded."""
        if self.camera is None:
            raise RuntimeError("this simulated station has no camera")
        if not path.exists():
            raise RuntimeError(f"no image at {path}")
        return [read.symbology for read in self.camera.feed_image(path)]

    def type_keys(self, text: str, layout: str = "us") -> None:
        """A handheld scanner in keyboard mode types ``text``: key events decoded through ``layout``."""
        from device.hardware.scanners.keymaps import keymap
        from device.hardware.scanners.keys import KeyDecoder, key_events
        decoder, typed = KeyDecoder(keymap(layout)), ""
        for code, value in key_events(text, keymap(layout)):
            typed += decoder.feed(code, value)
        self.scanner.feed(typed.rstrip("\n"), symbology=f"keyboard-{layout}")

    def cut_link(self) -> None:
        if self.link is None:
            raise RuntimeError("this station's uplink is not simulated (uplink.transport = \"sim\" to cut it)")
        self.link.cut_link()

    def restore_link(self) -> None:
        if self.link is None:
            raise RuntimeError("this station's uplink is not simulated (uplink.transport = \"sim\" to cut it)")
        self.link.restore_link()


def build_appliance(config: Any, *, clock: Clock | None = None) -> Appliance:
    """Build the station from its validated ``Config``: the one composition root."""
    from device.hardware.clock import SystemClock
    from device.hardware.registry import build_box, build_scanner
    from device.identity import Identity, load_list_key, rules_from_package
    from device.package import load_package, public_key_from_b64

    own_clock = clock is None  # an injected clock means the caller drives every timer
    clock = clock or SystemClock()
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, clock.wall())
    config.data_dir.mkdir(parents=True, exist_ok=True)
    identity = Identity(list_key=load_list_key(config.data_dir / "list.key"), rules=rules_from_package(package.payload))
    box = build_box(config, clock=clock, delays=config.delays, timers=own_clock)
    scanner = build_scanner(config, clock=clock)
    journal = Journal(config.data_dir / "journal.db", package.station_id)
    upstream, link = _build_upstream(config, package, journal, clock)
    sim = None
    if config.simulation:
        from device.hardware.registry import build_decoder
        from device.hardware.scanners.simcamera import SimCamera
        sim = SimControls(box=box, scanner=scanner, camera=SimCamera(decoder=build_decoder(config)),
                          link=link if config.uplink == "sim" else None)
    app = Appliance(package=package, journal=journal, box=box, scanner=scanner, identity=identity, clock=clock,
                    delays=config.delays, data_dir=config.data_dir, mode=config.mode, upstream=upstream, sim=sim,
                    backup_dir=config.backup_dir)
    if sim is not None:
        sim.attach(app)
    return app


def _build_upstream(config: Any, package: StationPackage, journal: Journal, clock: Clock) -> tuple[Any, Any]:
    """The outbox and uplink; attached to the journal before anything is appended."""
    from device.keys import load_device_key
    from device.package import PackageError, public_key_from_b64
    from device.upstream.service import Upstream
    from device.upstream.switchable import SwitchableUplink
    from device.upstream.uplink import HttpUplink

    http = HttpUplink.from_package(package.payload, station=package.station_id, mode=config.mode)
    link = SwitchableUplink(http, mode=config.mode) if config.uplink == "sim" else http
    try:
        receiver_key = public_key_from_b64(str(package.payload.get("receiver", {}).get("public_key", "")))
    except PackageError:
        raise PackageError("the package's receiver.public_key is not a base64 Ed25519 key; "
                           "the unit could not verify the CEC's receipts") from None
    upstream = Upstream(journal=journal, key=load_device_key(config.data_dir), station_id=package.station_id,
                        receiver_public_key=receiver_key, uplink=link, clock=clock, delays=config.delays,
                        probe_every=config.delays.uplink_probe_every)
    upstream.attach()
    return upstream, link
