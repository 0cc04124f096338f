"""Hard power cuts at random points of a voting day driven from outside, and what must hold after each.

The day is driven as at a station, through the chair's screen on the forwarded port: the chair logs in
with the PIN, shows the zero report and opens the polls; then voters are admitted (a document scanned on
the simulator panel, ``/dev/scan``) and drop their ballots (``/dev/drop``), one after the other. An
action is *acknowledged* when the screen's status shows it (the identified or ballot counter moved);
everything the screen has shown is acknowledged, including the journal's event count.

A series is a list of ``Cut``s drawn from a seeded generator (the seed is printed, so a failing series
can be replayed with ``POLLBOX_POWER_CUT_SEED``). Each cut is of one kind:

- ``sigkill``: QEMU is killed (the plug pulled); the disk is then read from outside before the next boot;
- ``system_reset``: the reset line (QMP); the machine restarts at once, QEMU and its disk stay.

and falls at one point:

- ``sent``: right after an action of a burst was handed to the unit (its form answered), before the
  screen acknowledged it: the event may or may not be committed;
- ``acknowledged``: right after the screen acknowledged an action of a burst;
- ``boot``: during the boot that follows the previous cut, when the serial console has reached a random
  line of a boot's length (firmware, kernel, systemd, the appliance starting).

After each ``sigkill`` the data partition is read on the host: the journal verifies (``device.cli
verify``), its sequence numbers run 1..N with no gap or repeat, N is at least the acknowledged count,
what the previous read saw is still there unchanged (same sequence numbers and hashes), every
acknowledged admission is there exactly once (by the voter's keyed hash) and no voter is admitted twice,
and at least the acknowledged ballots are counted. After each boot to ready the screen reports the
journal verified, no fewer events, voters or ballots than acknowledged, the polls still open, and the
console shows neither a second station import nor a second growth of the data partition.

``power_cut_series`` runs a series on a booted unit and returns one ``Round`` per cut; it stops at the
first round that fails (its ``problem`` says what). ``tests/image/test_boot.py`` and
``bench/bench_image.py`` both use it.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from device.core.voterkey import voter_hash
from device.demo import DEMO_CHAIR_PIN, demo_pins

from .vm import BOOT_DEADLINE, DevPanel, VirtualMachine, disk_partitions, pull_folder, wait_for

KINDS = ("sigkill", "system_reset")
POINTS = ("sent", "acknowledged", "boot")
RESET_SHARE = 0.3
"""The share of a series' cuts made with the reset line instead of killing QEMU."""
BURST = (2, 4)
"""Voters admitted in one burst (each then drops a ballot): the fewest and the most."""
VOTERS = 200
"""Voters on the list of the station a series runs on: more than the bursts of a long series use."""
ACKNOWLEDGED = 60.0
"""How long the screen may take to acknowledge one action (an emulated, shared CPU)."""
SEED_VARIABLE = "POLLBOX_POWER_CUT_SEED"


@dataclass(frozen=True)
class Cut:
    """One planned cut: its kind, its point, where in the burst or boot (0..1), and the burst's voters."""

    kind: str
    point: str
    at: float
    voters: int


def plan(seed: int, rounds: int) -> list[Cut]:
    """``rounds`` cuts drawn from ``seed``: every point about as often, ``RESET_SHARE`` of them resets,
    in a random order; the first is never during a boot (the series starts on a running unit)."""
    rng = random.Random(seed)
    points = [POINTS[i % len(POINTS)] for i in range(rounds)]
    kinds = [KINDS[1] if i < round(rounds * RESET_SHARE) else KINDS[0] for i in range(rounds)]
    rng.shuffle(points)
    rng.shuffle(kinds)
    if points and points[0] == "boot":
        swap = next((i for i, p in enumerate(points) if p != "boot"), 0)
        points[0], points[swap] = points[swap], points[0]
    return [Cut(kind, point, round(rng.random(), 3), rng.randint(*BURST)) for kind, point in zip(kinds, points, strict=True)]


def series_seed() -> int:
    """The seed from ``POLLBOX_POWER_CUT_SEED`` (to replay a series), else a fresh one."""
    given = os.environ.get(SEED_VARIABLE, "")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


@dataclass
class Acknowledged:
    """What the screen has shown so far: the journal's event count, the counters, the admitted voters."""

    events: int = 0
    identified: int = 0
    ballots: int = 0
    voters: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One cut as it happened and what was found after it."""

    number: int
    kind: str
    point: str
    where: str = ""
    acknowledged: int = 0
    """Journal events acknowledged by the screen before the cut."""
    on_disk: int | None = None
    """Events found on the data partition after a ``sigkill`` (None after a reset)."""
    after_boot: int | None = None
    """Events the screen reported at the next boot to ready."""
    survived: bool = False
    problem: str = ""
    seconds: float = 0.0
    """From the round's start to its cut and the disk's read: a burst round first waits for the boot
    after the previous cut, a boot round only for its console line."""

    def line(self) -> str:
        found = f"disk {self.on_disk if self.on_disk is not None else '-'}, boot {self.after_boot or '-'}"
        verdict = "survived" if self.survived else f"FAILED: {self.problem}"
        return (f"round {self.number:2d} | {self.kind:12s} | {self.point:12s} | {self.where} | "
                f"acknowledged {self.acknowledged}, found {found} | {verdict} | {self.seconds:.0f} s")


@dataclass
class JournalRead:
    """The journal as read from the stopped unit's data partition."""

    events: int
    hashes: dict[int, bytes]
    admitted: Counter[str]
    ballots: int


def read_journal(vm: VirtualMachine, name: str) -> JournalRead:
    """Copy the stopped unit's data folder to the host, verify its journal there (``device.cli verify``,
    with the station's config and keys) and read its events; the copy is removed afterwards."""
    station = vm.workdir / name
    shutil.copytree(vm.station, station, ignore=shutil.ignore_patterns("data"))
    pull_folder(vm.disk, disk_partitions(vm.disk)["data"], "/station/data", station)
    done = subprocess.run([sys.executable, "-m", "device.cli", "--config", str(station / "station.toml"), "verify"],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"the journal does not verify on the host: {done.stdout}{done.stderr}"
    verified = re.search(r"journal verified: (\d+) events", done.stdout)
    assert verified, done.stdout
    db = sqlite3.connect(station / "data" / "journal.db")
    try:
        rows = db.execute("SELECT seq, kind, body, hash FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    shutil.rmtree(station)
    seqs = [row[0] for row in rows]
    assert seqs == list(range(1, len(rows) + 1)), f"the sequence numbers have a gap or a repeat: {seqs[-20:]}"
    assert int(verified.group(1)) == len(rows), (verified.group(0), len(rows))
    admitted = Counter(json.loads(body)["voter"] for _, kind, body, _ in rows if kind == "voter_admitted")
    ballots = sum(1 for _, kind, _, _ in rows if kind == "ballot_counted")
    return JournalRead(len(rows), {seq: bytes(h) for seq, _, _, h in rows}, admitted, ballots)


def listed_voters(count: int = VOTERS) -> Iterator[str]:
    """The personal numbers of the demo station's voters (``make_stick(..., voters=count)``), in order.
    Share one iterator among the series run on one station: a voter is scanned once in a day."""
    return iter(demo_pins(count))


def journal_on_disk(vm: VirtualMachine, name: str) -> int:
    """Verify, on the host, the journal left on the stopped unit's data partition; its event count."""
    return read_journal(vm, name).events


class StationDay:
    """A voting day on one unit, driven through its screen as the chair and the voters do it."""

    def __init__(self, vm: VirtualMachine, pins: Iterator[str]) -> None:
        self.vm = vm
        self.panel = DevPanel(vm, timeout=ACKNOWLEDGED)
        self.pins = pins
        """The personal numbers of voters not yet scanned (on the station's list, ``listed_voters``)."""
        self.list_key = (vm.station / "data" / "list.key").read_bytes()
        self.acked = Acknowledged()

    def status(self) -> dict[str, Any]:
        return wait_for(self.vm.status, "the chair's screen answering", ACKNOWLEDGED)

    def seen(self, status: dict[str, Any]) -> dict[str, Any]:
        """Take what ``status`` shows as acknowledged (it only ever grows)."""
        counters = status["counters"]
        self.acked.events = max(self.acked.events, int(status["journal"]["events"]))
        self.acked.identified = max(self.acked.identified, int(counters["identified"]))
        self.acked.ballots = max(self.acked.ballots, int(counters["ballots"]))
        return status

    def open_polls(self) -> None:
        """The chair logs in with the PIN, shows the zero report and opens the polls (if not yet open)."""
        if self.seen(self.status())["poll"] == "open":
            return
        self.panel.page()
        self.panel.submit("/chair/login", {"pin": DEMO_CHAIR_PIN})
        self.panel.get("/report/zero")
        self.panel.submit("/chair/open")
        wait_for(lambda: self.seen(self.status())["poll"] == "open", "the polls shown open", ACKNOWLEDGED)

    def burst(self, voters: int, cut_at: float | None, acknowledged: bool) -> str:
        """Admit ``voters`` voters, each dropping a ballot. With ``cut_at`` (0..1) stop at that share of
        the burst's actions: right after the action was sent, or after it was acknowledged; where it
        stopped, in words."""
        steps = [step for _ in range(voters) for step in (("scan", next(self.pins)), ("drop", ""))]
        stop = min(int(cut_at * len(steps)), len(steps) - 1) if cut_at is not None else None
        for number, (action, pin) in enumerate(steps):
            before = self.seen(self.status())
            if action == "scan":
                self.panel.submit("/dev/scan", {"text": pin})
            else:
                self.panel.act("drop")
            where = f"{action} {number + 1} of {len(steps)}"
            if number == stop and not acknowledged:
                return f"{where} sent"
            self.acknowledge(action, pin, before)
            if number == stop:
                return f"{where} acknowledged"
        return f"all {len(steps)} actions acknowledged"

    def acknowledge(self, action: str, pin: str, before: dict[str, Any]) -> None:
        """Until the screen shows the action done; a refused scan fails with the screen's reason."""
        counter = "identified" if action == "scan" else "ballots"
        last = before.get("last_decision")

        def done() -> dict[str, Any] | None:
            status = self.vm.status()
            if status is None:
                return None
            decision = status.get("last_decision")
            if action == "scan" and decision and decision != last and decision.get("outcome") != "admitted":
                raise AssertionError(f"the scan of a listed voter was refused: {decision}")
            return status if status["counters"][counter] > before["counters"][counter] else None
        self.seen(wait_for(done, f"the {action} acknowledged on the screen", ACKNOWLEDGED))
        if action == "scan":
            self.acked.voters.append(pin)

    def after_boot(self) -> dict[str, Any]:
        """Until the unit is ready; what must hold then (everything acknowledged is still shown)."""
        status = self.vm.wait_until_ready()
        console = self.vm.console()
        assert status["journal"]["ok"] is True, f"the journal does not verify: {status['journal']}"
        for name in ("events", "identified", "ballots"):
            shown = status["journal"]["events"] if name == "events" else status["counters"][name]
            assert shown >= getattr(self.acked, name), f"{name}: {shown} shown, {getattr(self.acked, name)} acknowledged"
        assert status["poll"] == "open", f"the polls are {status['poll']} after the boot"
        assert "station imported" not in console, "the station was imported again after a power cut"
        assert "pollbox-data-grow: growing" not in console, "the data partition was grown again"
        return self.seen(status)

    def check_disk(self, name: str, before: JournalRead | None) -> JournalRead:
        """Read the stopped unit's journal (``read_journal``) and hold it to what was acknowledged."""
        found = read_journal(self.vm, name)
        holds(found, self.acked, self.list_key, before)
        return found


def holds(found: JournalRead, acked: Acknowledged, list_key: bytes, before: JournalRead | None) -> None:
    """What a journal read from the disk must hold after a cut: at least the acknowledged events, every
    acknowledged admission once and no voter twice, at least the acknowledged voters and ballots, and
    every event of the previous read (``before``) unchanged."""
    assert found.events >= acked.events, f"{found.events} events on disk, {acked.events} acknowledged"
    twice = [voter for voter, n in found.admitted.items() if n > 1]
    assert not twice, f"{len(twice)} voters admitted twice"
    missing = [pin for pin in acked.voters if voter_hash(list_key, pin) not in found.admitted]
    assert not missing, f"{len(missing)} acknowledged admissions missing"
    admitted = sum(found.admitted.values())
    assert admitted >= acked.identified, f"{admitted} voters admitted on disk, {acked.identified} acknowledged"
    assert found.ballots >= acked.ballots, f"{found.ballots} ballots on disk, {acked.ballots} acknowledged"
    if before is not None:
        changed = [seq for seq, h in before.hashes.items() if found.hashes.get(seq) != h]
        assert not changed, f"events already on disk changed or vanished: seq {changed[:10]}"


def _cut(vm: VirtualMachine, kind: str) -> None:
    if kind == "sigkill":
        vm.power_cut()
    else:
        vm.reset()


def _console_lines(vm: VirtualMachine) -> int:
    return vm.console().count("\n")


def _reached(vm: VirtualMachine, line: int) -> Callable[[], bool]:
    """A condition: the boot's console has ``line`` lines, or the appliance has already started."""
    return lambda: _console_lines(vm) >= line or "Started pollbox.service" in vm.console()


def power_cut_series(vm: VirtualMachine, seed: int, rounds: int, pins: Iterator[str],
                     report: Callable[[Round], None] = lambda r: None) -> list[Round]:
    """Run ``rounds`` cuts planned from ``seed`` on the running ``vm`` (its polls opened first, voters
    taken from ``pins``) and return them; ``report`` is called as each round ends (and its line added to
    ``power-cuts.log`` in the unit's folder). Stops at the first failed round; after the last round the
    unit is ready, then cut once more and its whole journal read from the disk."""
    log = vm.workdir / "power-cuts.log"

    def ended(done_round: Round) -> None:
        with log.open("a") as out:
            out.write(done_round.line() + "\n")
        report(done_round)
    with log.open("a") as out:
        out.write(f"seed {seed}, {rounds} rounds\n")
    day = StationDay(vm, pins)
    day.seen(vm.wait_until_ready())
    day.open_polls()
    boot_lines = _console_lines(vm)
    done: list[Round] = []
    disk: JournalRead | None = None
    booting: list[Round] = []
    """Rounds whose cut was made and whose next boot to ready is still to come."""
    for number, cut in enumerate(plan(seed, rounds), start=1):
        this = Round(number, cut.kind, cut.point)
        started = time.monotonic()
        try:
            if cut.point == "boot":
                line = max(1, int(cut.at * boot_lines))
                wait_for(_reached(vm, line),
                         f"console line {line} of the boot", BOOT_DEADLINE[vm.accel])
                this.where = f"boot, console line {_console_lines(vm)} of about {boot_lines}"
            else:
                if booting:
                    status = day.after_boot()
                    for earlier in booting:
                        earlier.after_boot, earlier.survived = int(status["journal"]["events"]), True
                        ended(earlier)
                    booting = []
                    boot_lines = _console_lines(vm)
                this.where = day.burst(cut.voters, cut.at, cut.point == "acknowledged")
            this.acknowledged = day.acked.events
            _cut(vm, cut.kind)
            if cut.kind == "sigkill":
                disk = day.check_disk(f"after-cut-{number}", disk)
                this.on_disk = disk.events
                vm.start()
        except (AssertionError, OSError) as exc:  # OSError: the screen did not answer a request in time
            this.problem = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            (vm.workdir / f"console-round-{number}.log").write_text(vm.console())
            for earlier in booting:
                earlier.problem = f"the boot after it failed (round {number}): {this.problem}"
                ended(earlier)
            this.seconds = time.monotonic() - started
            ended(this)
            done.append(this)
            break
        this.seconds = time.monotonic() - started
        booting.append(this)
        done.append(this)
    else:
        # the last boot to ready, then the plug pulled once more: the whole day read from the disk
        try:
            status = day.after_boot()
            vm.power_cut()
            day.check_disk("after-the-series", disk)
            for earlier in booting:
                earlier.after_boot, earlier.survived = int(status["journal"]["events"]), True
        except AssertionError as exc:
            (vm.workdir / "console-last-boot.log").write_text(vm.console())
            for earlier in booting:
                earlier.problem = f"the last boot or read failed: {str(exc).splitlines()[0][:300]}"
        for earlier in booting:
            ended(earlier)
    (vm.workdir / "power-cuts.json").write_text(json.dumps({"seed": seed, "rounds": [asdict(r) for r in done]},
                                                           indent=1))
    return done
