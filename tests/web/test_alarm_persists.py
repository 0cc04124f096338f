"""An alarm whose cause is still there (lid open, slot jammed) cannot be acknowledged away."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from device.core import events as ev
from device.core import station as st
from device.core.errors import IllegalTransition, RefusalCode
from device.core.events import AlarmKind

from .conftest import open_polls, post


@pytest.mark.parametrize(("kind", "flag"), [(AlarmKind.LID_OPENED, "lid_open"), (AlarmKind.JAM, "jammed"),
                                            (AlarmKind.BOX_UNIT_LOST, "box_lost")])
def test_the_core_refuses_while_the_cause_persists(kind: AlarmKind, flag: str) -> None:
    state = st.StationState()
    state.alarms[7] = st.OpenAlarm(7, kind, "sensor", 1, 0.0)
    setattr(state, flag, True)
    with pytest.raises(IllegalTransition) as refused:
        st.decide_acknowledge(state, 7, "closed it")
    assert refused.value.code is RefusalCode.CONDITION_PERSISTS
    assert refused.value.params == {"alarm": 7, "kind": kind.value}
    setattr(state, flag, False)
    assert st.decide_acknowledge(state, 7, " closed it ") == ev.AlarmAcknowledged(7, "closed it")


def test_other_alarms_are_acknowledged_whatever_the_box_says() -> None:
    state = st.StationState(lid_open=True, jammed=True)
    state.alarms[3] = st.OpenAlarm(3, AlarmKind.DROP_WITHOUT_TOKEN, "drop", 1, 0.0)
    assert st.decide_acknowledge(state, 3) == ev.AlarmAcknowledged(3, "")


def test_the_lid_alarm_stays_still_open_until_the_lid_is_shut(chair: FlaskClient, app: Any) -> None:
    open_polls(chair)
    post(chair, "/lang/ru")
    app.sim.box.open_lid()
    alarm = app.status()["alarms"][0]
    status = chair.get("/").get_data(as_text=True)
    assert "data-still-open" in status and f"/chair/alarms/{alarm['id']}" not in status
    response = post(chair, f"/chair/alarms/{alarm['id']}/acknowledge", {"note": "sealed"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "причина не устранена" in page and "cause" not in page
    assert [a["id"] for a in app.status()["alarms"]] == [alarm["id"]]
    app.sim.box.close_lid()
    assert "data-still-open" not in chair.get("/").get_data(as_text=True)
    assert post(chair, f"/chair/alarms/{alarm['id']}/acknowledge", {"note": "sealed"}).status_code == 303
    assert app.status()["alarms"] == []


def test_the_box_lost_alarm_stays_open_until_the_unit_answers_again(app: Any) -> None:
    from device.decision import ActionRefused
    app.open_polls()
    app.sim.box.unplug()
    (alarm,) = [a for a in app.status()["alarms"] if a["kind"] == "box_unit_lost"]
    with pytest.raises(ActionRefused) as refused:
        app.acknowledge_alarm(alarm["id"], "checked the cable")
    assert refused.value.code is RefusalCode.CONDITION_PERSISTS
    app.sim.box.replug()
    app.acknowledge_alarm(alarm["id"], "checked the cable")
    assert not [a for a in app.status()["alarms"] if a["kind"] == "box_unit_lost"]
