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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device import __version__
from device.backups import JournalBackups
from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.delays import Delays
from device.core.errors import IllegalTransition, RefusalCode
from device.core.events import CheckinMethod
from device.decision import ActionRefused, Decision
from device.hardware.interfaces import BallotBox, BoxInputs, BoxSignal, Clock, ScannerState, ScanRead, ScanSource
from device.identity import Identity, Resolved
from device.owner import Owner
from device.package import StationPackage
from device.reports import close_report, export_usb, zero_report
from device.status import StationStatus, TurnoutByHour, station_status
from device.storagefault import StorageFault
from device.store.errors import StorageError
from device.store.journal import Journal
from device.store.verify import VerifyReport, verify_journal
from device.updates import UpdateError, Updater, run_update
from protocol.errors import UserError

if TYPE_CHECKING:
    from device.hardware.sim.controls import SimControls
    from device.keystate import KeyState, KeyWatch
    from device.sync.service import UnitSync
    from device.upstream.service import Upstream

log = logging.getLogger("pollbox.appliance")


class Appliance:
    """A running station. Collaborators are keyword-only; see ``device.compose.build_appliance``."""

    def __init__(
        self, *, package: StationPackage, journal: Journal, box: BallotBox, scanner: ScanSource,
        identity: Identity, clock: Clock, delays: Delays, data_dir: Path, mode: str,
        upstream: Upstream | None = None, sim: SimControls | None = None, backup_dir: Path | None = None,
        unit_sync: UnitSync | None = None, updater: Updater | None = None, key_watch: KeyWatch | None = None,
    ) -> None:
        self.package, self.journal, self.box, self.scanner = package, journal, box, scanner
        self.identity, self.clock, self.delays, self.data_dir, self.mode = identity, clock, delays, data_dir, mode
        self.upstream, self.sim, self.backup_dir = upstream, sim, backup_dir
        self.state = st.StationState()
        self.session = ss.Session.new(delays)
        self.report: VerifyReport | None = None
        self.started = False
        self._ctx = ss.Context.of(package.voters, delays)
        self.unit_sync = unit_sync
        self.updater = updater
        """The software updater (``device/updates``); None: this station takes no updates."""
        """The sync with the other units of the station (``device/sync/``); None for a one-unit station."""
        self.key_watch = key_watch
        """Reads the record key's enrollment files at start and again when they change (``device/keystate.py``)."""
        if unit_sync is not None:
            self._ctx = replace(self._ctx, units=unit_sync.units.units)
            unit_sync.attach(self.post_peer)
        self.hours = TurnoutByHour()
        self.fault = StorageFault()
        self.read_failure: str | None = None
        """Why the last read from a scanner was not recorded (None when it was)."""
        self._owner = Owner(on_idle=self._publish, request_timeout=delays.request_timeout,
                            stall_report=delays.owner_stall_report)
        self._status: StationStatus | None = None
        self._live_due = True
        self.backups = JournalBackups(journal_path=journal.path, station_id=package.station_id, directory=backup_dir,
                                      clock=clock, delays=delays)
        self.on_healthy_tick: Callable[[], None] | None = None
        """Called on the owner thread after every tick that went well (the service watchdog's ping)."""

    @property
    def key_state(self) -> KeyState | None:
        """The record key and its enrollment as last read by ``key_watch``; None: not known."""
        return self.key_watch.state if self.key_watch is not None else None

    # Life cycle -------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Lock the slot, verify and replay the journal, record the start, start the parts, then the heartbeats.

        ``background`` starts the owner thread and the upstream sender; without it the
        caller drives time with ``tick()`` (tests with a fake clock).
        """
        inputs = self.box.start(self._on_box_signal)
        self._owner.call(self._start, inputs)
        self.scanner.start(self.post_scan, self._on_scanner_state)
        if background:
            if self.upstream is not None:
                self.upstream.start()
            if self.unit_sync is not None:
                self.unit_sync.start()
        # The heartbeats start here (the owner's ticks, or the caller's), and with them the box's watchdog's
        # clock: the start's checks above (the journal's verification above all) may take longer than it.
        self.box.heartbeat()
        if background:
            self._owner.start(interval=min(self.delays.heartbeat_interval, 0.25), on_timer=self._timer)

    def _start(self, inputs: BoxInputs) -> None:
        self.report = verify_journal(self.journal, backup_dir=self.backup_dir)
        self.state = self.report.state
        self.hours.rebuild(self.state)
        if self.unit_sync is not None:
            self.unit_sync.catch_up(self.state.replica)
        self.started = True
        if not self.report.ok:
            log.error("%s", self.report.sentence())
            return
        booted = self.updater.booted() if self.updater is not None else None  # an update booted or rolled back
        self._step(ss.StartUp(__version__, self.package.station_id, inputs.beam_blocked, inputs.lid_open,
                              inputs.unit_drops, inputs.unit_id, booted.slot if booted else "",
                              booted.version if booted else ""))
        self._key_found()

    def _key_found(self) -> None:
        """Journal the record key's enrollment as read (``device/keystate.py``), once per certificate."""
        from device.keystate import found
        said = found(self.key_state) if self.key_state is not None else None
        if said is not None:
            self._step(said)

    def stop(self) -> None:
        """Lock the slot and stop every part; the journal stays consistent. A second call does nothing."""
        if self._owner.stopped:
            return
        self.started = False  # what the parts report while they stop is not an incident of the day
        if self.unit_sync is not None:
            self.unit_sync.close()
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
        """Run one input through the session and carry out its step (owner thread only); after a storage
        fault, first record what happened meanwhile (``_recover``), or raise the ``StorageError`` again."""
        if not self.writable:
            self.box.lock()
            why = self.report.sentence() if self.report else "the station has not started"
            raise ActionRefused(f"nothing can be recorded: {why} (run 'pollbox verify' and call the technician)",
                                RefusalCode.JOURNAL_FAILED)
        self._recover()
        done = self._run(inp)
        if done.refused is not None:  # journaled, then refused (the polls held while an update installs)
            raise ActionRefused.from_transition(done.refused)
        return done

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
                self.box.lock()  # nothing of the step was recorded
                self.fault.failed(exc, now.wall)
                raise
        self.session = done.session
        for action in done.actions:
            self._act(action)
        return done

    def _recover(self) -> None:
        """After a storage fault: record the fault as an alarm, then every input kept meanwhile, in order."""
        if self.fault.error is None:
            return
        self._run(self.fault.note(self.clock.wall()))
        log.warning("the journal takes writes again (%s)", self.fault.error.code)
        self.fault.error = None
        while self.fault.kept:
            self._run(self.fault.kept[0])
            self.fault.kept.pop(0)

    def _commit(self, events: list[ev.Event], wall: float) -> None:
        for rec in self.journal.append(events, wall):
            self.hours.track(rec, self.state)
            st.apply(self.state, rec)
        if self.unit_sync is not None:
            self.unit_sync.catch_up(self.state.replica)

    def _act(self, action: ss.Action) -> None:
        if action is ss.Action.ARM_SLOT:
            self.box.arm()
        elif action is ss.Action.HEARTBEAT:
            self.box.heartbeat()
        elif action is ss.Action.WAKE_UPSTREAM and self.upstream is not None:
            self.upstream.wake()

    def _timer(self) -> None:
        """Every tick on the owner thread: the station's timers, the watchdog, the backup."""
        self._live_due = True
        try:
            self.tick()
        except Exception:  # the owner survives; the slot locks, and the watchdog is not fed
            self.box.lock()
            raise
        if self.on_healthy_tick is not None:  # also with a failed journal: the screen must stay up to say so
            self.on_healthy_tick()
        self.backups.start_if_due()

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
            if self.key_watch is not None and self.key_watch.changed() is not None:  # a certificate taken meanwhile
                self._key_found()
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
            self.fault.kept.append(inp)  # recorded, in order, as soon as the journal takes writes again

    def _on_scanner_state(self, state: ScannerState) -> None:
        if state is not ScannerState.READING and self.started:  # a scanner stopping with the unit is no incident
            self._owner.post(self._signal, ss.ScannerChanged(state.value))

    def post_scan(self, read: ScanRead) -> None:
        """A read from a scanner's thread: resolved there, decided by the owner; the decision shows on screen."""
        resolved = self.identity.resolve_scan(read.text)
        self._owner.post(self._identify_logged, resolved, CheckinMethod.SCAN)

    def post_peer(self, inp: ss.Input) -> None:
        """Records, refusals and clocks from the sync thread (``device/sync/``): posted, never waited for."""
        self._owner.post(self._signal, inp)

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
        self._owner.call(self._step, ss.OpenPolls())

    def pause_polls(self, reason: str = "") -> None:
        self._owner.call(self._step, ss.PausePolls(reason))

    def resume_polls(self) -> None:
        self._owner.call(self._step, ss.ResumePolls())

    def close_polls(self) -> dict[str, Any]:
        self._owner.call(self._step, ss.ClosePolls())
        report = self.close_report()
        assert report is not None
        return report

    def close_without(self, unit: str, reason: str) -> None:
        """Record that the polls close without another unit's final records (out of reach), with a reason."""
        self._owner.call(self._step, ss.CloseWithout(unit, reason))

    def set_unit_link(self, peer: str, up: bool) -> None:
        """Simulation only: cut (``up`` False) or restore the link to another unit of the station, as the
        demo's ``link`` command does on one side (this unit neither asks ``peer`` nor answers it)."""
        if self.mode != "simulation" or self.unit_sync is None:
            raise UserError("links between units are switched only on a simulated station of several units")
        if peer == self.unit_sync.units.units.own or self.unit_sync.units.units.role_of(peer) is None:
            raise UserError(f"{peer!r} is not another unit of this station")
        self.unit_sync.links.set(peer, up)

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
        return export_usb(self, directory)

    def backup(self, directory: Path) -> dict[str, Any]:
        """Copy the journal to ``directory`` now; the result also shows in ``status()``."""
        return self.backups.copy(directory)

    def update(self, bundle: Path) -> dict[str, Any]:
        """Check a signed bundle and write it into the other root slot (``device/updates``, docs/updates.md):
        refused while the polls are open or paused; every attempt and its outcome is journaled. The install
        runs on the caller's thread, never on the owner's."""
        if self.updater is None:
            raise UpdateError("this station takes no software updates (no updater configured)")
        return run_update(self.updater, bundle, lambda inp: self._owner.call(self._step, inp).events)

    # Reading ------------------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Verify the journal between two commits."""
        return self._owner.call(verify_journal, self.journal)

    def zero_report(self) -> dict[str, Any]:
        """The zero report: nothing identified and nothing counted before the polls open."""
        return self._owner.call(zero_report, self)

    def close_report(self) -> dict[str, Any] | None:
        """The close report as recorded, with the signed upstream record if there is one."""
        return self._owner.call(close_report, self)

    def counters(self) -> dict[str, Any]:
        return self.snapshot().counters.to_dict()

    def turnout_by_hour(self) -> list[tuple[int, int]]:
        """(hour start as wall seconds, voters identified in that hour), in order."""
        return list(self.snapshot().turnout_by_hour)

    def status(self) -> dict[str, Any]:
        """A JSON-able copy of the latest snapshot: everything the chair's screen shows."""
        return self.snapshot().to_dict(self.clock.monotonic())

    def snapshot(self) -> StationStatus:
        """The latest published ``StationStatus``; with an owner thread, never waits for it (without one,
        a caller driving time step by step, each read builds it afresh)."""
        if self._status is None or not self._owner.threaded:
            self._owner.call(self._build)
        assert self._status is not None
        return self._status

    def _build(self) -> None:
        self._status = station_status(self)

    def _publish(self) -> None:
        """After each batch: the state anew; the parts' own reports (box, outbox, disk) only after a tick."""
        if self._owner.threaded:
            self._status = station_status(self, previous=None if self._live_due else self._status)
            self._live_due = False
