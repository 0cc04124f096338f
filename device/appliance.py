"""The appliance: one station unit, driven by the pure station session on one owner thread.

Every input (a document read, a box signal, a chair action, a tick) becomes a
message to the ``Owner`` (``device/owner.py``); the owner thread alone asks the
pure core what to do (``device.core.session.step``), and then follows one rule:
**lock** the slot first if the step says so (the safe direction), **commit** the
events to the journal in one transaction, **apply** them to the journal's fold,
and only then **act** (arm the slot, feed the box's heartbeat, show the
decision). After each batch of messages it publishes a frozen
``StationStatus`` (``device/status.py``) that the screens read without waiting.

Hardware callbacks only post; no lock is held while the owner calls into the
hardware; so a box that signals while it is being locked, a screen polled
during a drop, or a scanner read during a tick cannot stall the station.

The chair's screen (``web_ui``) and the control socket use the public methods
below; they never reach the hardware. ``build_appliance`` (``device/compose.py``)
wires it from config.
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
from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.delays import Delays
from device.core.errors import IllegalTransition, RefusalCode
from device.core.events import CheckinMethod
from device.core.poll import PollState
from device.decision import ActionRefused, Decision
from device.hardware.interfaces import BallotBox, BoxSignal, Clock, ScannerState, ScanRead, ScanSource
from device.identity import Identity, Resolved
from device.owner import Owner
from device.package import StationPackage
from device.reports import close_report
from device.status import AlarmView, StationStatus, StorageView, counters_of
from device.store.backup import BackupError, backup_journal
from device.store.errors import StorageError
from device.store.journal import Journal
from device.store.verify import VerifyReport, verify_journal

log = logging.getLogger("pollbox.appliance")


class Appliance:
    """A running station. Collaborators are keyword-only; see ``device.compose.build_appliance``."""

    def __init__(
        self, *, package: StationPackage, journal: Journal, box: BallotBox, scanner: ScanSource,
        identity: Identity, clock: Clock, delays: Delays, data_dir: Path, mode: str,
        upstream: Any = None, sim: Any = None, backup_dir: Path | None = None,
    ) -> None:
        self.package, self.journal, self.box, self.scanner = package, journal, box, scanner
        self.identity, self.clock, self.delays, self.data_dir, self.mode = identity, clock, delays, data_dir, mode
        self.upstream, self.sim, self.backup_dir = upstream, sim, backup_dir
        self.state = st.StationState()
        self.session = ss.Session.new(delays)
        self.report: VerifyReport | None = None
        self.started = False
        self._ctx = ss.Context.of(package.voters, delays)
        self._hourly: Counter[int] = Counter()
        self._fault: StorageError | None = None
        self._fault_at = 0.0
        self._backlog: list[ss.Input] = []
        self.read_failure: str | None = None
        """Why the last read from a scanner was not recorded (None when it was)."""
        self._owner = Owner(on_idle=self._publish, request_timeout=delays.request_timeout)
        self._status: StationStatus | None = None
        self.last_backup: dict[str, Any] = {"configured": backup_dir is not None}
        self._next_backup = 0.0
        self._backing_up = threading.Lock()
        self.on_healthy_tick: Callable[[], None] | None = None
        """Called on the owner thread after every tick that went well (the service watchdog's ping)."""

    # Life cycle -------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Lock the slot, verify and replay the journal, record the start, start the parts.

        ``background`` starts the owner thread and the upstream sender; without it the
        caller drives time with ``tick()`` (tests with a fake clock).
        """
        inputs = self.box.start(self._on_box_signal)
        self._owner.call(self._start, inputs)
        self.scanner.start(self.post_scan, self._on_scanner_state)
        if background:
            if self.upstream is not None:
                self.upstream.start()
            self._owner.start(interval=min(self.delays.heartbeat_interval, 0.25), on_timer=self._timer)

    def _start(self, inputs: Any) -> None:
        self.report = verify_journal(self.journal, backup_dir=self.backup_dir)
        self.state = self.report.state
        self._hourly = Counter(int(at // 3600) for _seq, at in self.state.checkins.values())
        self.started = True
        if not self.report.ok:
            log.error("%s", self.report.sentence())
            return
        self._step(ss.StartUp(__version__, self.package.station_id, inputs.beam_blocked, inputs.lid_open,
                              inputs.unit_drops, inputs.unit_id))

    def stop(self) -> None:
        """Lock the slot and stop every part; the journal stays consistent. A second call does nothing."""
        if self._owner.stopped:
            return
        self.started = False  # what the parts report while they stop is not an incident of the day
        self.scanner.stop()
        if self.sim is not None and getattr(self.sim, "camera", None) is not None:
            self.sim.camera.stop()
        self._owner.stop()
        self.box.lock()
        self.box.stop()
        if self.upstream is not None:
            self.upstream.close()
        self.journal.close()

    # The owner's work: decide, lock, commit, apply, act ------------------------------------

    @property
    def writable(self) -> bool:
        """True when the journal verified at start and events may be recorded."""
        return self.started and self.report is not None and self.report.ok

    def _step(self, inp: ss.Input) -> ss.Step:
        """Run one input through the session and carry out its step. Owner thread only.

        While the journal cannot be written, every step first tries to record what
        happened meanwhile (``_recover``); until that works it raises the
        ``StorageError`` and the slot stays locked.
        """
        if not self.writable:
            self.box.lock()
            raise ActionRefused("the journal failed verification; nothing more can be recorded "
                                "(run 'pollbox verify' and call the technician)", RefusalCode.JOURNAL_FAILED)
        self._recover()
        return self._run(inp)

    def _run(self, inp: ss.Input) -> ss.Step:
        now = ss.Now(self.clock.monotonic(), self.clock.wall())
        try:
            done = ss.step(self.state, self.session, inp, self._ctx, now)
        except IllegalTransition as exc:
            raise ActionRefused.from_transition(exc) from None
        if done.ignored:
            log.warning("ignored: %s", done.ignored)
        if ss.Action.LOCK_SLOT in done.actions:
            self.box.lock()
        if done.events:
            try:
                self._commit(list(done.events), now.wall)
            except StorageError as exc:
                self._storage_failed(exc, now.wall)
                raise
        self.session = done.session
        for action in done.actions:
            self._act(action)
        return done

    def _storage_failed(self, exc: StorageError, wall: float) -> None:
        """Nothing of the step was recorded: lock the slot, remember since when, say so on the screen."""
        self.box.lock()
        if self._fault is None:
            self._fault_at = wall
            log.error("the journal cannot be written: %s", exc)
        self._fault = exc

    def _recover(self) -> None:
        """After a storage fault: record the fault as an alarm, then every box input kept meanwhile, in order."""
        if self._fault is None:
            return
        fault = self._fault
        kept = len(self._backlog)
        self._run(ss.StorageRecovered(
            f"the journal could not be written for {max(0.0, self.clock.wall() - self._fault_at):.0f} s "
            f"({fault.code}); {kept} box or scanner input(s) from that time are recorded now, in order"))
        self._fault = None
        while self._backlog:
            self._run(self._backlog[0])
            self._backlog.pop(0)
        log.warning("the journal takes writes again (%s)", fault.code)

    def _commit(self, events: list[ev.Event], wall: float) -> None:
        for rec in self.journal.append(events, wall):
            self._track_hourly(rec)
            st.apply(self.state, rec)

    def _act(self, action: ss.Action) -> None:
        if action is ss.Action.ARM_SLOT:
            self.box.arm()
        elif action is ss.Action.HEARTBEAT:
            self.box.heartbeat()
        elif action is ss.Action.WAKE_UPSTREAM and self.upstream is not None:
            self.upstream.wake()

    def _track_hourly(self, rec: ev.Recorded) -> None:
        e = rec.event
        if isinstance(e, ev.VoterAdmitted):
            self._hourly[int(rec.at // 3600)] += 1
        elif isinstance(e, ev.CheckinUndone) and e.voter in self.state.checkins:
            self._hourly[int(self.state.checkins[e.voter][1] // 3600)] -= 1

    def _timer(self) -> None:
        """Every tick on the owner thread: the station's timers, the watchdog, the backup."""
        try:
            self.tick()
        except Exception:  # the owner survives; the slot locks, and the watchdog is not fed
            self.box.lock()
            raise
        if self.on_healthy_tick is not None:  # also with a failed journal: the screen must stay up to say so
            self.on_healthy_tick()
        self.backup_if_due()

    def tick(self) -> None:
        """Advance timers: token expiry, jam detection, heartbeat, turnout snapshot."""
        self._owner.call(self._tick)

    def _tick(self) -> None:
        if not self.writable:
            self.box.lock()
            return
        self.journal.sync_mark()
        try:
            space = self.journal.space()
            if space.low != self.session.storage_low:
                self._step(ss.SpaceChecked(space.low, space.sentence()))
            self._step(ss.Tick())
        except StorageError:
            self.box.heartbeat()  # the core is alive; the slot stays locked until the journal takes writes

    # Inputs from the parts: posted, never waited for ---------------------------------------

    def _on_box_signal(self, signal: BoxSignal, now: float, count: int | None = None,
                       unit_id: str | None = None) -> None:
        """A signal from the box's own thread (``count``, ``unit_id``: see ``OnBoxSignal``)."""
        self._owner.post(self._signal, ss.BoxSaw(ss.BoxSignal(signal.value), now, count, unit_id))

    def _signal(self, inp: ss.Input) -> None:
        if not self.writable:
            self.box.lock()
            log.error("box input not recorded: the journal is not writable (%s)", inp)
            return
        try:
            self._step(inp)
        except StorageError:
            self._backlog.append(inp)  # recorded, in order, as soon as the journal takes writes again

    def _on_scanner_state(self, state: ScannerState) -> None:
        if state is not ScannerState.READING:
            self._owner.post(self._signal, ss.ScannerChanged(state.value))

    def post_scan(self, read: ScanRead) -> None:
        """A read from a scanner's thread: resolved there, decided by the owner; the decision shows on screen."""
        resolved = self.identity.resolve_scan(read.text)
        self._owner.post(self._identify_logged, resolved, CheckinMethod.SCAN)

    def settle(self) -> None:
        """Return once every input posted before this call has been handled."""
        self._owner.settle()

    # The desk --------------------------------------------------------------------------------

    def identify(self, read: ScanRead) -> Decision:
        """A document was read: decide, record, then arm the slot if admitted."""
        return self._owner.call(self._identify, self.identity.resolve_scan(read.text), CheckinMethod.SCAN)

    def identify_manual(self, number: str) -> Decision:
        """The clerk typed a number because nothing scanned: recorded as a manual identification."""
        return self._owner.call(self._identify, self.identity.resolve_manual(number), CheckinMethod.MANUAL)

    def _identify(self, resolved: Resolved, method: CheckinMethod) -> Decision:
        done = self._step(ss.Identify(resolved.voter_hash, resolved.desk_key, method, resolved.detail))
        assert done.decision is not None
        return done.decision

    def _identify_logged(self, resolved: Resolved, method: CheckinMethod) -> None:
        try:
            self._identify(resolved, method)
        except (ActionRefused, StorageError) as exc:
            log.error("scan not recorded: %s", exc)
            self.read_failure = str(exc)
        else:
            self.read_failure = None

    @property
    def last_decision(self) -> Decision | None:
        return self.session.last_decision

    # Chair actions -------------------------------------------------------------------------------

    def open_polls(self) -> None:
        """Open the polls; refused unless the journal verifies and the zero report holds."""
        self._owner.call(self._open)

    def _open(self) -> None:
        if self.report is None or not self.report.ok:
            raise ActionRefused(f"cannot open the polls: {self.report.sentence() if self.report else 'not started'}",
                                RefusalCode.JOURNAL_FAILED)
        self._step(ss.OpenPolls())

    def pause_polls(self, reason: str = "") -> None:
        self._owner.call(self._step, ss.PausePolls(reason))

    def resume_polls(self) -> None:
        self._owner.call(self._step, ss.ResumePolls())

    def close_polls(self) -> dict[str, Any]:
        self._owner.call(self._step, ss.ClosePolls())
        report = self.close_report()
        assert report is not None
        return report

    def acknowledge_alarm(self, alarm_id: int, note: str = "") -> None:
        self._owner.call(self._step, ss.Acknowledge(alarm_id, note))

    def undo_checkin(self, line: int, reason: str) -> None:
        """Undo the standing check-in of the voter on list line ``line``, with a reason."""
        self._owner.call(self._step, ss.Undo(line, reason))

    def annotate(self, topic: str, text: str) -> None:
        """A note of record (readiness, enrollment, PIN lockout); becomes an upstream record."""
        self._owner.call(self._step, ss.Note(topic, text))

    def export_usb(self, directory: Path) -> dict[str, Any]:
        """Write the records the CEC has not acknowledged to a file on a USB stick, and note it in the journal."""
        if self.upstream is None:
            raise ActionRefused("this unit has no upstream outbox", RefusalCode.NO_OUTBOX)
        waiting = self.upstream.status()["waiting"]
        path = self.upstream.export(directory)
        self.annotate("usb_export", f"{waiting} records exported to a USB file")
        return {"path": str(path), "records": waiting}

    # Backups: copied outside the owner, so a slow stick never delays a voter -------------------------

    def backup_if_due(self) -> None:
        """Copy the journal to the configured backup directory every ``Delays.backup_every``, on a thread of its own."""
        now = self.clock.monotonic()
        if self.backup_dir is None or now < self._next_backup or self._backing_up.locked():
            return
        self._next_backup = now + self.delays.backup_every
        threading.Thread(target=self._backup_quietly, name="pollbox-backup", daemon=True).start()

    def _backup_quietly(self) -> None:
        try:
            assert self.backup_dir is not None
            self.backup(self.backup_dir)
        except BackupError as exc:
            log.warning("journal backup failed: %s", exc)

    def backup(self, directory: Path) -> dict[str, Any]:
        """Copy the journal to ``directory`` now; the result also shows in ``status()``."""
        with self._backing_up:
            try:
                done = backup_journal(self.journal.path, self.package.station_id, directory)
            except BackupError as exc:
                self.last_backup = {"configured": self.backup_dir is not None, "ok": False, "error": str(exc),
                                    "at": self.clock.wall()}
                raise
            self.last_backup = {"configured": self.backup_dir is not None, "ok": True, "path": str(done.path),
                                "events": done.events, "at": self.clock.wall()}
            return dict(self.last_backup)

    # Reading ------------------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        return self._owner.call(verify_journal, self.journal)

    def zero_report(self) -> dict[str, Any]:
        s = self.status()
        c = s["counters"]
        return {"station": self.package.station_id, "identified": c["identified"], "ballots": c["ballots"],
                "holds": c["identified"] == 0 and c["ballots"] == 0 and not self.state.anything_recorded,
                "poll": s["poll"], "at": self.clock.wall()}

    def close_report(self) -> dict[str, Any] | None:
        """The close report as recorded, with the signed upstream record if there is one."""
        return self._owner.call(close_report, self)

    def counters(self) -> dict[str, Any]:
        return self.status()["counters"]  # type: ignore[no-any-return]

    def turnout_by_hour(self) -> list[tuple[int, int]]:
        """(hour start as wall seconds, voters identified in that hour), in order."""
        return list(self.snapshot().turnout_by_hour)

    def status(self) -> dict[str, Any]:
        """A JSON-able copy of the latest snapshot: everything the chair's screen shows."""
        return self.snapshot().to_dict(self.clock.monotonic())

    def snapshot(self) -> StationStatus:
        """The latest published ``StationStatus``; with an owner thread, never waits for it.

        Without one (a caller driving time step by step) each read publishes afresh.
        """
        status = self._status
        if status is None or not self._owner.threaded:
            self._owner.call(self._publish)
            status = self._status
        assert status is not None
        return status

    def _publish(self) -> None:
        """Build the read model from the owner's state and what the parts report. Owner thread only."""
        s, p = self.state, self.package.payload
        usage = shutil.disk_usage(self.data_dir)
        health = {"cpu_temp_c": _cpu_temperature(), "free_bytes": usage.free, "total_bytes": usage.total,
                  "clock": self.clock.wall(), "power": None, "software": __version__}
        ok = bool(self.report and self.report.ok)
        self._status = StationStatus(
            mode=self.mode,
            station=(("id", self.package.station_id), ("name", p["station"].get("name")),
                     ("region", p["station"].get("region")), ("election", self.package.election_id)),
            poll=s.poll.value, counters=counters_of(s, self.package.registered),
            last_decision=self.session.last_decision, desk=self.session.desk,
            alarms=tuple(AlarmView.of(a) for a in sorted(s.alarms.values(), key=lambda a: a.alarm)),
            interlock=self.session.interlock,
            scanner_info=(("name", self.scanner.name), ("state", self.scanner.state().value)),
            box_info=self.box.health(),
            upstream_info=self.upstream.status() if self.upstream is not None else None,
            journal_ok=ok, journal_problem="" if self.report is None or ok else self.report.sentence(),
            seq=self.journal.last_seq, health=tuple(health.items()), backup=tuple(self.last_backup.items()),
            turnout_by_hour=tuple(sorted((h * 3600, n) for h, n in self._hourly.items() if n)),
            writable=self.writable, storage=self._storage_view(),
        )

    def _storage_view(self) -> StorageView:
        fault = self._fault or self.journal.mark_fault
        return StorageView(fault.code if fault else "", str(fault) if fault else "", self.session.storage_low,
                           len(self._backlog))

    @property
    def polls_closed(self) -> bool:
        return self.state.poll is PollState.CLOSED


def _cpu_temperature() -> float | None:
    """The SoC temperature from the kernel's thermal zone, if the machine has one."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None


def __getattr__(name: str) -> Any:
    """``build_appliance`` lives in ``device.compose``; this keeps older imports working."""
    if name == "build_appliance":
        from device.compose import build_appliance
        return build_appliance
    raise AttributeError(name)
