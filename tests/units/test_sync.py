"""Three appliances of one station in this process, syncing over loopback HTTP with a fake clock.

Each unit is built by the composition root from its own config (``device/sync/demo.py``); the sync
servers run, and each test drives the clients round by round (``run_once``), so nothing waits on time.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from device.compose import build_appliance
from device.config import load_config
from device.core import events as ev
from device.sync import wire

from .stations import HOME_PIN, PINS, Station


def test_a_voter_admitted_at_one_desk_is_refused_at_the_other_after_sync(station: Station) -> None:
    assert station.apps["desk-1"].identify_manual(PINS[0]).outcome == "admitted"
    station.sync("desk-2")
    refused = station.apps["desk-2"].identify_manual(PINS[0])
    assert refused.outcome == "admitted_elsewhere" and "desk-1" in refused.reason
    status = station.apps["desk-2"].unit_sync.status()  # type: ignore[union-attr]
    assert status["held"]["desk-1"] == 1 and status["peers"]["desk-1"]["up_to_date"]


def test_home_voting_only_at_the_mobile_unit(station: Station) -> None:
    assert station.apps["desk-1"].identify_manual(HOME_PIN).outcome == "home_voting"
    assert station.apps["mobile"].identify_manual(HOME_PIN).outcome == "admitted"
    assert station.apps["mobile"].identify_manual(PINS[1]).outcome == "not_home_voting"


def test_a_double_admission_while_cut_off_is_a_conflict_on_every_unit(station: Station) -> None:
    for uid in ("desk-1", "desk-2"):
        assert station.apps[uid].identify_manual(PINS[2]).outcome == "admitted"
    station.sync()
    station.sync()
    for uid, app in station.apps.items():
        [conflict] = station.events(uid, ev.UnitConflict)
        assert {conflict.first_unit, conflict.second_unit} == {"desk-1", "desk-2"}
        kinds = [a["kind"] for a in app.status()["alarms"]]
        assert "unit_conflict" in kinds
        assert app.verify().ok


def test_records_reach_a_unit_through_a_third(station: Station) -> None:
    station.apps["desk-1"].identify_manual(PINS[3])
    station.apps["mobile"].unit_sync.links.set("desk-1", False)  # type: ignore[union-attr]
    station.sync("desk-2")
    station.sync("mobile")
    assert station.apps["mobile"].unit_sync.log.held("desk-1") == 1  # type: ignore[union-attr]


def _tamper(station: Station, uid: str, change: Any) -> None:
    """Make ``uid``'s client see every answer through ``change``(message dict) -> message dict."""
    client = station.apps[uid].unit_sync.client  # type: ignore[union-attr]
    real = client._fetch
    client._fetch = lambda url, timeout, headers: json.dumps(change(json.loads(real(url, timeout, headers)))).encode()


def test_an_altered_record_is_refused_with_a_reason_and_nothing_applied(station: Station) -> None:
    station.apps["desk-1"].identify_manual(PINS[4])

    def alter(msg: dict[str, Any]) -> dict[str, Any]:
        for r in msg["records"]:
            r["body"]["line"] += 1
        return msg
    _tamper(station, "desk-2", alter)
    station.sync("desk-2")
    [refused] = station.events("desk-2", ev.PeerRecordRefused)
    assert "signature does not verify" in refused.reason and refused.unit == "desk-1"
    assert not station.events("desk-2", ev.PeerCheckinApplied)
    assert station.apps["desk-2"].identify_manual(PINS[4]).outcome == "admitted"  # nothing was applied


def test_a_record_signed_by_an_unenrolled_key_is_refused(station: Station) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.core.units import PeerCheckin
    impostor = Ed25519PrivateKey.generate()
    station_id = station.apps["desk-1"].package.station_id
    voter = next(iter(station.apps["desk-1"].package.voters))
    forged = wire.sign(PeerCheckin(station_id, "desk-1", 1, voter, 1, 1_800_000_000.0, 5), impostor)
    other = wire.sign(PeerCheckin("KG-OTHER-9", "desk-9", 1, voter, 1, 1_800_000_000.0, 5), impostor)
    _tamper(station, "desk-2", lambda msg: {**msg, "records": [forged, other]})
    station.sync("desk-2")
    reasons = [e.reason for e in station.events("desk-2", ev.PeerRecordRefused)]
    assert any("signature does not verify" in r for r in reasons)
    assert any("another station" in r for r in reasons)
    assert station.apps["desk-2"].unit_sync.log.held("desk-1") == 0  # type: ignore[union-attr]


def test_an_oversized_message_is_refused_once_and_nothing_applied(station: Station) -> None:
    station.apps["desk-1"].identify_manual(PINS[5])
    client = station.apps["desk-2"].unit_sync.client  # type: ignore[union-attr]
    client._fetch = lambda url, timeout, headers: b" " * (wire.MAX_MESSAGE + 1)
    station.sync("desk-2")
    station.sync("desk-2")  # the same refusal from the same peer is journaled once
    refused = station.events("desk-2", ev.PeerRecordRefused)
    assert sorted(r.unit for r in refused) == ["desk-1", "mobile"]
    assert all("more than" in r.reason for r in refused)
    assert not station.events("desk-2", ev.PeerCheckinApplied)


def test_a_replayed_record_is_refused_and_applied_once(station: Station) -> None:
    station.apps["desk-1"].identify_manual(PINS[6])
    station.sync("desk-2")
    first = station.apps["desk-1"].unit_sync.log.records_after("desk-1", 0, 10)  # type: ignore[union-attr]
    _tamper(station, "desk-2", lambda msg: {**msg, "records": first + msg["records"]})
    station.apps["desk-1"].identify_manual(PINS[7])
    station.sync("desk-2")
    assert len(station.events("desk-2", ev.PeerCheckinApplied)) == 2
    replayed = station.events("desk-2", ev.PeerRecordRefused)
    assert replayed and all("replayed: record 1 of unit desk-1" in r.reason for r in replayed)


def test_a_unit_an_hour_ahead_raises_a_drift_alarm(station: Station) -> None:
    def ahead(msg: dict[str, Any]) -> dict[str, Any]:
        return {**msg, "now": msg["now"] + 3600}
    _tamper(station, "desk-2", ahead)
    station.sync("desk-2")
    station.sync("desk-2")
    drift = [a for a in station.events("desk-2", ev.AlarmRaised) if a.alarm_kind == "unit_clock_drift"]
    assert len(drift) == 2 and {"desk-1" in drift[0].detail, "mobile" in drift[1].detail} == {True}


def test_a_restart_keeps_the_replica_and_serves_the_same_signed_records(station: Station, tmp_path: Path) -> None:
    station.apps["desk-1"].identify_manual(PINS[8])
    station.sync("desk-2")
    before = station.apps["desk-1"].unit_sync.log.records_after("desk-1", 0, 10)  # type: ignore[union-attr]
    app = station.apps["desk-2"]
    assert app.unit_sync is not None and app.unit_sync.server is not None
    app.unit_sync.server.close()
    app.stop()
    again = build_appliance(load_config(tmp_path / "units" / "desk-2" / "station.toml"), clock=station.clock)
    again.start(background=False)
    assert again.unit_sync is not None and again.unit_sync.server is not None
    again.unit_sync.server.start()
    station.apps["desk-2"] = again
    assert again.identify_manual(PINS[8]).outcome == "admitted_elsewhere"
    assert again.unit_sync.log.records_after("desk-1", 0, 10) == before
    assert base64.b64decode(before[0]["signature"])


def test_the_main_desk_closes_once_every_units_close_record_arrived(station: Station) -> None:
    from device.decision import ActionRefused
    station.apps["desk-1"].identify_manual(PINS[0])
    station.apps["desk-2"].identify_manual(PINS[1])
    station.apps["mobile"].identify_manual(HOME_PIN)
    with pytest.raises(ActionRefused, match="desk-2, mobile"):
        station.apps["desk-1"].close_polls()
    station.apps["desk-2"].close_polls()
    station.apps["mobile"].close_polls()
    station.sync("desk-1")
    station.sync("desk-1")
    assert station.apps["desk-1"].unit_sync.log.closed() == ["desk-2", "mobile"]  # type: ignore[union-attr]
    report = station.apps["desk-1"].close_polls()
    [r] = station.events("desk-1", ev.UnitsReconciled)
    assert (r.desks_identified, r.mobile_identified, r.identified, r.absent) == (2, 1, 3, "")
    assert report["units"]["mobile"] == {"identified": 1, "ballots": 0, "difference": -1}
    assert report["units"]["total"]["identified"] == 3 and report["units"]["signed"]
    assert station.apps["desk-2"].close_report()["units"] is None  # type: ignore[index]
    assert station.apps["desk-1"].verify().ok


def test_close_without_a_unit_out_of_reach(station: Station) -> None:
    station.apps["desk-2"].close_polls()
    station.sync("desk-1")
    station.sync("desk-1")
    station.apps["desk-1"].close_without("mobile", "out of reach in the mountains")
    station.apps["desk-1"].close_polls()
    [r] = station.events("desk-1", ev.UnitsReconciled)
    assert r.absent == "mobile"
    upstream = station.apps["desk-1"].upstream
    assert upstream is not None
    seqs = {type(rec.event): rec.seq for rec in station.apps["desk-1"].journal.recorded()}
    absent = upstream.signed_line_for(seqs[ev.UnitAbsentAtClose])
    reconciled = upstream.signed_line_for(seqs[ev.UnitsReconciled])
    assert absent is not None and '"reason_given":true' in absent and "mountains" not in absent  # typed text stays
    assert reconciled is not None and '"absent":"mobile"' in reconciled


def test_an_undo_travels_to_the_other_units(station: Station) -> None:
    station.apps["desk-1"].identify_manual(PINS[9])
    station.sync("desk-2")
    assert station.apps["desk-2"].identify_manual(PINS[9]).outcome == "admitted_elsewhere"
    station.apps["desk-1"].undo_checkin(10, "wrong card")
    station.sync("desk-2")
    station.clock.advance(10)  # past the desk's window for the same document read twice
    assert station.apps["desk-2"].identify_manual(PINS[9]).outcome == "admitted"
    applied = station.events("desk-2", ev.PeerCheckinApplied)
    assert [(e.unit_seq, e.undoes) for e in applied] == [(1, 0), (2, 1)]
