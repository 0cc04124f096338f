"""The GPIO backend with every thread running: edges, its ticker, the owner and readers, under load.

The appliance runs as in ``pollbox run`` (its owner thread, real time), its
ballot box is ``GpioBallotBox`` on the line-level rig (``FakeGPIO``), with the
backend's own ticker thread debouncing inputs and a "hardware" thread driving
the drop sensor's line the way a ballot does. Meanwhile three threads read the
status as screens do. This is the arrangement that once froze: the
backend's ``check()`` holds its guard while it reports a drop, at the moment the
owner locks the slot or a reader asks for the box's health.

A watchdog fails the test on any wait over ``STALL`` seconds and puts every
thread's stack in the failure.
"""

from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from device.appliance import Appliance
from device.compose import build_appliance
from device.config import load_config
from device.demo import demo_pins
from device.hardware.clock import SystemClock
from device.hardware.interfaces import ScanRead

from .fakes import FakeGPIO

STALL = 2.0
VOTERS = 200
DAY_LIMIT = 120.0
"""Seconds for the whole day (it takes about ten): past it, a call never returned and the stacks say where."""


def _stacks() -> str:
    frames = sys._current_frames()
    return "\n".join(f"--- {t.name}\n" + "".join(traceback.format_stack(frames[t.ident]))
                     for t in threading.enumerate() if t.ident in frames)


def _wait(what: str, check: Any) -> None:
    """Poll ``check`` until it holds; a wait over ``STALL`` seconds fails with every thread's stack."""
    ready = threading.Event()
    for _ in range(int(STALL / 0.002)):
        if check():
            return
        ready.wait(0.002)
    raise AssertionError(f"stalled over {STALL:g} s waiting for {what}\n{_stacks()}")


def _caught(fn: Any) -> BaseException | None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
        return exc
    return None


def _read_status(app: Appliance, stop: threading.Event, seen: list[int], errors: list[str]) -> None:
    while not stop.is_set():
        try:
            seen.append(app.status()["counters"]["ballots"])
            stop.wait(0.001)  # screens refreshing often: the readers' pace
        except Exception as exc:  # noqa: BLE001 - any failure of a reader is a finding
            errors.append(repr(exc))
            return


def test_gpio_backend_with_all_threads_never_stalls(fake_gpio: tuple[Any, FakeGPIO], station_dir: Path) -> None:
    module, fake = fake_gpio
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns a thousand times more often: races show within the run
    from device.hardware.boxes.pins import DEFAULT_PINS
    clock = SystemClock()
    parts = build_appliance(load_config(station_dir / "station.toml"), clock=clock)
    for channel, level in ((DEFAULT_PINS.beam.bcm, 0), (DEFAULT_PINS.lid.bcm, 0), (5, 0)):
        fake.wire(channel, level)
    box = module.GpioBallotBox(clock=clock, delays=parts.delays, pins=DEFAULT_PINS, tick_every=0.002)
    app = Appliance(package=parts.package, journal=parts.journal, box=box, scanner=parts.scanner,
                    identity=parts.identity, clock=clock, delays=parts.delays, data_dir=parts.data_dir,
                    mode=parts.mode, upstream=None)
    app.start(background=True)
    stop, seen, errors = threading.Event(), [], []  # type: ignore[var-annotated]
    readers = [threading.Thread(target=_read_status, args=(app, stop, seen, errors), daemon=True) for _ in range(3)]
    for r in readers:
        r.start()
    beam, lock = DEFAULT_PINS.beam.bcm, DEFAULT_PINS.lock.bcm

    def day() -> None:
        app.open_polls()
        for n, pin in enumerate(demo_pins(VOTERS), start=1):
            assert app.identify(ScanRead(pin, "qr", "soak")).outcome == "admitted"
            _wait("the slot to open", lambda: fake.levels[lock] == 1)
            fake.drive(beam, 1)  # the ballot blocks the beam, on this (the hardware's) thread
            _wait(f"ballot {n} to be counted", lambda n=n: app.status()["counters"]["ballots"] == n)
            fake.drive(beam, 0)
            _wait("the beam to clear", lambda: app.snapshot().interlock.beam_blocked_since is None)
            assert fake.levels[lock] == 0, "the slot must lock after its one ballot"
        assert app.verify().ok

    outcome: list[BaseException | None] = []
    driver = threading.Thread(target=lambda: outcome.append(_caught(day)), name="driver", daemon=True)
    try:
        driver.start()
        driver.join(DAY_LIMIT)
        assert not driver.is_alive(), f"the day did not end within {DAY_LIMIT:g} s: a wait that never returns\n{_stacks()}"
        if outcome[0] is not None:
            raise outcome[0]
    finally:
        sys.setswitchinterval(switch)
        stop.set()
        for r in readers:
            r.join(STALL)
        if not driver.is_alive():  # a stuck station could not stop either; its threads are daemons
            app.stop()
    assert not errors, errors
    assert seen and max(seen) == VOTERS
