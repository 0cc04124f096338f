"""The appliance end to end in simulation, with a fake clock: desk, slot, chair actions, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from device.appliance import Appliance
from device.decision import ActionRefused
from device.hardware.interfaces import ScanRead


def scan(app: Appliance, text: str) -> str:
    return app.identify(ScanRead(text, "qr", "test")).outcome


def test_voter_admitted_arms_slot_after_commit(app: Appliance, pins: list[str]) -> None:
    app.open_polls()
    seq_before = app.journal.last_seq
    decision = app.identify(ScanRead(pins[0], "code128", "test"))
    assert decision.outcome == "admitted" and decision.line == 1 and decision.name
    assert app.journal.last_seq == seq_before + 1 and app.sim.box.slot_open
    app.sim.box.drop()
    assert not app.sim.box.slot_open
    assert app.counters()["identified"] == 1 and app.counters()["ballots"] == 1


def test_outcomes_at_the_desk(app: Appliance, pins: list[str], clock: Any) -> None:
    assert scan(app, pins[0]) == "polls_not_open"
    app.open_polls()
    assert scan(app, pins[0]) == "admitted"
    assert scan(app, pins[0]) == "duplicate_read"
    clock.advance(app.delays.duplicate_read_window + 0.01)
    d = app.identify(ScanRead(pins[0], "qr", "t"))
    assert d.outcome == "already_voted" and d.first_at is not None
    assert scan(app, "29999999999999") in ("invalid_document", "not_on_list")
    assert scan(app, "garbage!") == "invalid_document"


def test_raw_number_never_reaches_the_journal(app: Appliance, pins: list[str], station_dir: Path) -> None:
    app.open_polls()
    scan(app, pins[0])
    app.identify_manual(pins[1])
    raw = (station_dir / "data" / "journal.db").read_bytes()
    wal = station_dir / "data" / "journal.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert pins[0].encode() not in raw and pins[1].encode() not in raw


def test_manual_identification_is_recorded_as_manual(app: Appliance, pins: list[str]) -> None:
    app.open_polls()
    d = app.identify_manual(" ".join([pins[2][:5], pins[2][5:]]))
    assert d.outcome == "admitted" and d.method == "manual"


def test_never_admitted_twice_across_restart(make_app: Any, pins: list[str], clock: Any) -> None:
    app = make_app()
    app.open_polls()
    assert scan(app, pins[0]) == "admitted"
    app.stop()
    clock.advance(60)
    app2 = make_app()
    assert app2.state.poll.value == "open"
    assert scan(app2, pins[0]) == "already_voted"
    assert app2.counters()["identified"] == 1


def test_restart_cancels_open_token_and_locks(make_app: Any, pins: list[str]) -> None:
    app = make_app()
    app.open_polls()
    scan(app, pins[0])
    assert app.sim.box.slot_open
    app.stop()
    app2 = make_app()
    assert not app2.sim.box.slot_open and not app2.state.open_tokens
    app2.sim.box.drop()
    assert [a["kind"] for a in app2.status()["alarms"]] == ["drop_without_token"]


def test_undo_lets_the_voter_check_in_again(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    scan(app, pins[0])
    app.undo_checkin(1, "clerk scanned the wrong card")
    assert not app.sim.box.slot_open and app.counters()["identified"] == 0
    clock.advance(10)
    assert scan(app, pins[0]) == "admitted"
    with pytest.raises(ActionRefused, match="no line 99999"):
        app.undo_checkin(99999, "x")


def test_opening_refused_after_anything_recorded(app: Appliance) -> None:
    app.sim.box.drop()
    with pytest.raises(ActionRefused, match="zero report"):
        app.open_polls()


def test_pause_refuses_identification(app: Appliance, pins: list[str]) -> None:
    app.open_polls()
    app.pause_polls("lunch")
    assert scan(app, pins[0]) == "polls_not_open"
    app.resume_polls()
    assert scan(app, pins[0]) == "admitted"


def test_chair_actions_in_wrong_state_are_refused(app: Appliance) -> None:
    for action in (app.resume_polls, app.close_polls, app.pause_polls):
        with pytest.raises(ActionRefused):
            action()
    app.open_polls()
    with pytest.raises(ActionRefused):
        app.open_polls()
    with pytest.raises(ActionRefused, match="alarm 3 is not open"):
        app.acknowledge_alarm(3)


def test_close_report(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    for p in pins[:3]:
        scan(app, p)
        app.sim.box.drop()
        clock.advance(20)
    app.sim.box.drop()
    report = app.close_polls()
    assert (report["identified"], report["ballots"], report["difference"]) == (3, 4, 1)
    assert report["alarms_total"] == 1 and report["alarms"][0]["kind"] == "drop_without_token"
    assert scan(app, pins[5]) == "polls_not_open"


def test_hourly_snapshot_is_journaled(app: Appliance, pins: list[str], clock: Any) -> None:
    app.open_polls()
    scan(app, pins[0])
    clock.advance(app.delays.turnout_snapshot_every)
    app.tick()
    kinds = [r.event.kind for r in app.journal.recorded()]
    assert kinds.count("turnout_snapshot") == 1
    assert sum(n for _, n in app.turnout_by_hour()) == 1


def test_broken_journal_refuses_to_open(make_app: Any, station_dir: Path) -> None:
    app = make_app()
    app.stop()
    path = station_dir / "data" / "journal.db"
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER events_no_update; UPDATE events SET body='{\"software\":\"x\",\"station_id\":\"y\"}' WHERE seq=1;")
    conn.close()
    app2 = make_app()
    status = app2.status()
    assert not status["journal"]["ok"] and "event 1" in status["journal"]["problem"]
    with pytest.raises(ActionRefused, match="nothing can be recorded: journal FAILED verification at event 1"):
        app2.open_polls()


def test_status_is_json_ready(app: Appliance, pins: list[str]) -> None:
    import json
    app.open_polls()
    scan(app, pins[0])
    status = json.loads(json.dumps(app.status()))
    assert status["poll"] == "open" and status["counters"]["identified"] == 1
    assert status["last_decision"]["outcome"] == "admitted" and status["interlock"]["slot_open"]
    assert pins[0] not in json.dumps(status)


def test_background_loop_feeds_the_service_watchdog(make_app: Any) -> None:
    import threading
    app = make_app(start=False)
    fed = threading.Event()
    app.on_healthy_tick = fed.set
    app.start(background=True)
    assert fed.wait(10), "the appliance loop never reported a healthy tick"


def test_watchdog_is_fed_with_a_broken_journal_so_the_screen_can_say_so(make_app: Any, station_dir: Path) -> None:
    import threading
    make_app().stop()
    conn = sqlite3.connect(station_dir / "data" / "journal.db")
    conn.executescript("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 1;")
    conn.close()
    app = make_app(start=False)
    fed = threading.Event()
    app.on_healthy_tick = fed.set
    app.start(background=True)
    assert fed.wait(10) and not app.status()["journal"]["ok"]


def test_a_failing_tick_starves_the_watchdog_and_locks(make_app: Any) -> None:
    import threading
    app = make_app(start=False)
    fed, failed = threading.Event(), threading.Event()
    app.on_healthy_tick = fed.set

    def broken_tick() -> None:
        failed.set()
        raise RuntimeError("a bug")
    app.tick = broken_tick  # type: ignore[method-assign]
    app.start(background=True)
    assert failed.wait(10)
    app.stop()
    assert not fed.is_set() and not app.sim.box.slot_open


def test_a_start_check_longer_than_the_box_watchdog_trips_nothing(
        make_app: Any, clock: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The journal check and the parts' start run after the box has started and before the first heartbeat;
    when each takes longer than the box's watchdog period, the box (whose timer runs meanwhile) neither logs a
    lost heartbeat nor lights the red lamp. Its watchdog counts from the end of the start."""
    import logging

    import device.appliance as appliance_module
    app = make_app(start=False)

    def slowly(work: Any) -> Any:
        def slow(*args: Any, **kwargs: Any) -> Any:
            for _ in range(4):  # the box's own timer fires while the work runs
                clock.advance(app.delays.heartbeat_timeout)
                app.sim.box.check()
            return work(*args, **kwargs)
        return slow
    monkeypatch.setattr(appliance_module, "verify_journal", slowly(appliance_module.verify_journal))
    monkeypatch.setattr(app.scanner, "start", slowly(app.scanner.start))
    with caplog.at_level(logging.ERROR, logger="pollbox.box"):
        app.start(background=False)
        app.sim.box.check()
    assert app.report is not None and app.report.ok
    unit = app.sim.box.unit
    assert not unit.watchdog.tripped and not unit.outputs()["red"]
    assert "no heartbeat" not in caplog.text
    clock.advance(app.delays.heartbeat_timeout + 0.1)  # no tick: the core sends no heartbeat
    app.sim.box.check()
    assert unit.watchdog.tripped and unit.outputs()["red"]
