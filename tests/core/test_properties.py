"""Invariants over random days: scans, drops, lid events, restarts and clock jumps.

Whatever happens: ballots that consumed a token never exceed admissions; no
voter is ever admitted twice; the in-memory counters always equal what a fresh
replay of the journal says; the journal always verifies.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.core import events as ev
from device.decision import ActionRefused
from device.demo import demo_pins
from device.hardware.clock import FakeClock
from device.hardware.interfaces import ScanRead
from device.store.verify import verify_journal

PINS = demo_pins(8)
step = st.one_of(
    st.tuples(st.just("scan"), st.integers(0, 9)),       # 8 and 9 are not on the list / garbage
    st.tuples(st.just("manual"), st.integers(0, 7)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("jam"), st.just(0)),
    st.tuples(st.just("unjam"), st.just(0)),
    st.tuples(st.just("lid"), st.booleans()),
    st.tuples(st.just("wait"), st.floats(0, 200)),
    st.tuples(st.just("jump"), st.floats(-7200, 7200)),    # wall clock corrected either way
    st.tuples(st.just("restart"), st.just(0)),
    st.tuples(st.just("undo"), st.integers(1, 8)),
    st.tuples(st.just("pause"), st.booleans()),
    st.tuples(st.just("ack"), st.integers(1, 6)),
)


def payload(i: int) -> str:
    return PINS[i] if i < 8 else ("29999999999999" if i == 8 else "<<garbage>>")


def act(app: Appliance, clock: FakeClock, name: str, arg: object) -> None:
    box = app.sim.box
    if name == "scan":
        app.identify(ScanRead(payload(int(arg)), "qr", "t"))  # type: ignore[call-overload]
    elif name == "manual":
        app.identify_manual(PINS[int(arg)])  # type: ignore[call-overload]
    elif name == "drop" and not box.beam_blocked:
        box.drop()
    elif name == "jam":
        box.block_beam()
    elif name == "unjam":
        box.clear_beam()
    elif name == "lid":
        box.open_lid() if arg else box.close_lid()
    elif name == "wait":
        clock.advance(float(arg))  # type: ignore[arg-type]
        app.tick()
    elif name == "jump":
        clock.jump_wall(float(arg))  # type: ignore[arg-type]
    elif name in ("undo", "pause", "ack"):
        try:
            if name == "undo":
                app.undo_checkin(int(arg), "property test")  # type: ignore[call-overload]
            elif name == "pause":
                app.pause_polls("break") if arg else app.resume_polls()
            else:
                app.acknowledge_alarm(int(arg))  # type: ignore[call-overload]
        except ActionRefused:
            pass


def check_invariants(app: Appliance) -> None:
    report = verify_journal(app.journal)
    assert report.ok, report.sentence()
    replay, live = report.state, app.state
    assert (replay.identified, replay.ballots, replay.alarms_total, replay.poll) == (
        live.identified, live.ballots, live.alarms_total, live.poll)
    admitted: Counter[str] = Counter()
    undone: Counter[str] = Counter()
    with_token = 0
    for rec in app.journal.recorded():
        e = rec.event
        if isinstance(e, ev.VoterAdmitted):
            admitted[e.voter] += 1
            assert admitted[e.voter] - undone[e.voter] == 1, "a voter was admitted twice"
        elif isinstance(e, ev.CheckinUndone):
            undone[e.voter] += 1
        elif isinstance(e, ev.BallotCounted) and e.token is not None:
            with_token += 1
    assert with_token <= sum(admitted.values())
    assert live.identified == sum(admitted.values()) - sum(undone.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_random_days_keep_the_invariants(demo_template: Path, steps: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        station = Path(tmp) / "s"
        shutil.copytree(demo_template, station)
        clock = FakeClock()
        config = load_config(station / "station.toml")
        app = build_appliance(config, clock=clock)
        app.start(background=False)
        app.open_polls()
        try:
            for name, arg in steps:
                if name == "restart":
                    beam, lid = app.sim.box.beam_blocked, app.sim.box.lid_open
                    app.stop()
                    app = build_appliance(config, clock=clock)
                    if beam:
                        app.sim.box.block_beam()
                    if lid:
                        app.sim.box.open_lid()
                    app.start(background=False)
                else:
                    act(app, clock, name, arg)
                check_invariants(app)
        finally:
            app.stop()
