"""The first minutes with a simulated station: every simulator action, named once in
``device.hardware.sim.controls.ACTIONS``, does what it says, through the control socket
(``pollbox sim ...``) and through the developer panel (``/dev``); the simulated camera
reaches the desk through the appliance's public ``post_scan``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device.control import handle
from device.hardware.interfaces import ScanRead
from device.hardware.sim.controls import ACTIONS, BY_NAME, SimControls

Check = Callable[[Any], bool]


def _line(app: Any) -> int | None:
    return app.last_decision.line if app.last_decision and app.last_decision.outcome == "admitted" else None


def effects(station_dir: Path, pins: list[str]) -> dict[str, tuple[dict[str, str], Check]]:
    """For each action, in the table's order: what it is given and what a person would then see."""
    return {
        "scan": ({"text": pins[0]}, lambda app: _line(app) == 1),
        "type": ({"text": pins[5], "layout": "de"}, lambda app: _line(app) == 6),
        "image": ({"path": str(station_dir / "documents" / "td3.png")}, lambda app: _line(app) == 3),
        "drop": ({}, lambda app: app.status()["counters"]["ballots"] == 1),
        "lid-open": ({}, lambda app: app.status()["interlock"]["lid_open"]
                     and [a["kind"] for a in app.status()["alarms"]] == ["lid_opened"]),
        "lid-close": ({}, lambda app: not app.status()["interlock"]["lid_open"]),
        "jam": ({}, lambda app: app.sim.box.beam_blocked),
        "unjam": ({}, lambda app: not app.sim.box.beam_blocked),
        "box-unplug": ({}, lambda app: not app.sim.box.present),
        "box-replug": ({}, lambda app: app.sim.box.present),
        "scanner-unplug": ({}, lambda app: app.status()["scanner"]["state"] == "disconnected"),
        "scanner-replug": ({}, lambda app: app.status()["scanner"]["state"] == "connected"),
        "link-cut": ({}, lambda app: not app.sim.link.link_up),
        "link-restore": ({}, lambda app: app.sim.link.link_up),
    }


def test_every_action_in_the_table_has_its_check(station_dir: Path, pins: list[str]) -> None:
    assert list(effects(station_dir, pins)) == [a.name for a in ACTIONS]


def test_every_simulator_action_through_the_control_socket(app: Any, station_dir: Path, pins: list[str]) -> None:
    assert handle(app, {"cmd": "open"})["ok"]
    for name, (values, check) in effects(station_dir, pins).items():
        answer = handle(app, {"cmd": name, **values})
        assert answer["ok"], (name, answer)
        assert check(app), name
        if BY_NAME[name].reads:
            assert answer["result"]["decision"] == app.last_decision.to_dict(), name


def test_every_simulator_action_through_the_dev_panel(app: Any, station_dir: Path, pins: list[str],
                                                      clock: Any, tmp_path: Path) -> None:
    from web_ui import create_app
    client = create_app(app, {"TESTING": True, "WALL_CLOCK": clock.wall}, instance_path=tmp_path / "web").test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/dev").get_data(as_text=True))
    assert token is not None
    app.open_polls()
    for name, (values, check) in effects(station_dir, pins).items():
        if BY_NAME[name].params and name != "scan":
            assert client.post(f"/dev/{name}", data={"csrf_token": token.group(1)}).status_code == 404
            continue
        url = "/dev/scan" if name == "scan" else f"/dev/{name}"
        reply = client.post(url, data={"csrf_token": token.group(1), **values})
        assert reply.status_code == 303 and check(app), name


def test_the_camera_reaches_the_desk_through_post_scan(app: Any, station_dir: Path) -> None:
    class Desk:
        def __init__(self) -> None:
            self.reads: list[ScanRead] = []

        def post_scan(self, read: ScanRead) -> None:
            self.reads.append(read)

    desk = Desk()
    controls = SimControls(box=app.sim.box, scanner=app.sim.scanner, camera=app.sim.camera)
    controls.attach(desk)
    assert controls.feed_image(station_dir / "documents" / "pin.png") == ["code128"]
    assert [r.symbology for r in desk.reads] == ["code128"]
    assert app.status()["counters"]["identified"] == 0, "the read went to the desk it was attached to"


def test_a_sim_action_with_a_bad_value_is_a_sentence(app: Any, station_dir: Path) -> None:
    assert handle(app, {"cmd": "image", "path": str(station_dir / "no-such.png")})["error"].startswith(
        "there is no image file at")
    assert handle(app, {"cmd": "type", "text": "1", "layout": "dvorak"})["error"].startswith(
        "unknown keyboard layout 'dvorak'")
    assert handle(app, {"cmd": "scan"})["error"] == "'scan' needs " + BY_NAME["scan"].params[0].what + " (scan TEXT)"


@pytest.mark.parametrize("name", [a.name for a in ACTIONS])
def test_simulator_actions_are_refused_in_production(app: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "sim", None)
    assert "refused in production mode" in handle(app, {"cmd": name})["error"]
