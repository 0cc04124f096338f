"""The record key's enrollment on the journal (``device/core/enrollment.py``): a certificate taken or refused is
recorded once, whatever the order and however often the unit starts with it; in the pure session, and through
the appliance's own reading of the data folder (``device/keystate.py``'s ``KeyWatch``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as hs

from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core.catalogue import CATALOGUE
from device.core.delays import Delays
from device.core.enrollment import EnrollmentFound, EnrollmentRefusalFound, EnrollmentStepFailed
from device.core.errors import InvalidEvent
from device.demo import make_demo_station
from device.keystate import REFUSAL, KeyWatch, certificate_hash, found, key_state
from device.signing import load_signer
from protocol.keys import public_b64
from provisioning.enrollment import enroll, make_request, write_json
from provisioning.seal import create_seal_key

CTX = ss.Context.of({}, Delays())
TAKEN = EnrollmentFound(ev.DeviceKeyEnrolled("0123456789abcdef", "p256", "tpm", "c1" * 32, "KG-0001", "SN-1",
                                             "2027-01-01T00:00:00+00:00"))
REFUSED = EnrollmentRefusalFound("0123456789abcdef", "c2" * 32, "stick", "not signed by this election's CEC key")
FAILED = EnrollmentStepFailed("0123456789abcdef", "a1" * 32, "the USB stick at /run/x cannot be read (I/O error)",
                              "2027-01-01T07:00:00+00:00")


class Unit:
    """The session fed input by input, each step's events folded as the appliance does after a commit."""

    def __init__(self) -> None:
        self.state = st.StationState()
        self.session = ss.Session.new(Delays())
        self.events: list[ev.Event] = []

    def feed(self, inp: ss.Input) -> list[ev.Event]:
        done = ss.step(self.state, self.session, inp, CTX, ss.Now(1.0, 1.7e9))
        for e in done.events:
            st.apply(self.state, ev.Recorded(self.state.last_seq + 1, 1.7e9, e))
        self.session = done.session
        self.events += done.events
        return list(done.events)


def test_a_certificate_is_journaled_once_taken_and_once_refused() -> None:
    unit = Unit()
    unit.feed(ss.StartUp("t", "KG-0001"))
    [taken] = unit.feed(TAKEN)
    assert isinstance(taken, ev.DeviceKeyEnrolled)
    assert taken == TAKEN.enrolled
    assert unit.feed(TAKEN) == []  # the same certificate at the next start: already on the journal
    [refused] = unit.feed(REFUSED)
    assert isinstance(refused, ev.DeviceKeyEnrollmentRefused) and refused.source == "stick"
    assert unit.feed(REFUSED) == []
    assert len(unit.feed(EnrollmentFound(replace(TAKEN.enrolled, certificate="c3" * 32)))) == 1  # another certificate for the key
    for kind in ("device_key_enrolled", "device_key_enrollment_refused"):
        assert kind in CATALOGUE and not CATALOGUE[kind].upstream


def test_an_unknown_refusal_source_is_refused_and_nothing_recorded() -> None:
    unit = Unit()
    before = unit.state.last_seq
    with pytest.raises(InvalidEvent, match="unknown refusal source 'floppy'"):
        unit.feed(EnrollmentRefusalFound("k", "c4" * 32, "floppy", "why"))
    assert unit.state.last_seq == before and unit.state.key_certificates == set()


def test_a_long_reason_is_cut_to_the_journal_s_bound() -> None:
    [event] = Unit().feed(EnrollmentRefusalFound("k", "c5" * 32, "card", "x" * 5000))
    assert isinstance(event, ev.DeviceKeyEnrollmentRefused) and len(event.reason) == 400


def test_a_failed_take_is_journaled_once_per_attempt() -> None:
    unit = Unit()
    [failed] = unit.feed(FAILED)
    assert failed == ev.DeviceKeyEnrollmentFailed(FAILED.key_id, FAILED.attempt, FAILED.reason, FAILED.failed_at)
    assert unit.feed(FAILED) == []  # the same note at the next start
    assert len(unit.feed(replace(FAILED, attempt="a2" * 32))) == 1  # the same reason, another attempt
    assert unit.feed(REFUSED) != [], "a failed take and a refused certificate are different outcomes"
    entry = CATALOGUE["device_key_enrollment_failed"]
    assert (entry.code, entry.upstream) == ("PB-092", False)


@pytest.mark.parametrize("bad", [replace(FAILED, attempt=""), replace(FAILED, reason="")])
def test_a_failed_take_without_its_attempt_or_reason_is_refused_and_nothing_recorded(
        bad: EnrollmentStepFailed) -> None:
    unit = Unit()
    with pytest.raises(InvalidEvent, match="needs its attempt and its reason"):
        unit.feed(bad)
    assert unit.state.last_seq == 0 and unit.state.key_certificates == set()


@given(hs.lists(hs.sampled_from([TAKEN, REFUSED, EnrollmentRefusalFound("k", "c1" * 32, "card", "wrong"), FAILED,
                                 replace(FAILED, attempt="c1" * 32)]), max_size=12))
def test_whatever_the_order_each_outcome_of_each_certificate_is_journaled_once(seen: list[ss.Input]) -> None:
    unit = Unit()
    for inp in seen:
        unit.feed(inp)
    marks = [(e.kind, e.attempt if isinstance(e, ev.DeviceKeyEnrollmentFailed) else e.certificate)
             for e in unit.events
             if isinstance(e, ev.DeviceKeyEnrolled | ev.DeviceKeyEnrollmentRefused | ev.DeviceKeyEnrollmentFailed)]
    assert len(marks) == len(unit.events)
    assert len(marks) == len(set(marks)) == len(set(seen))
    replayed = st.StationState()  # the fold at the next start holds the same marks
    for i, e in enumerate(unit.events, 1):
        st.apply(replayed, ev.Recorded(i, 1.7e9, e))
    assert replayed.key_certificates == unit.state.key_certificates


def test_the_watch_reads_the_data_folder_again_only_when_a_certificate_file_changes(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=5)
    data = config.parent / "data"
    cec = Ed25519PrivateKey.from_private_bytes((config.parent / "cec.key").read_bytes())
    cec_b64 = public_b64(cec.public_key())
    signer = load_signer(data)
    watch = KeyWatch(data, signer, "file", cec_b64)
    assert watch.state.enrollment == "requested" and found(watch.state) is None
    assert watch.changed() is None
    # the take step refused a certificate from the stick
    (data / REFUSAL).write_text(json.dumps({"certificate": "c6" * 32, "reason": "for another unit's key",
                                            "refused_at": "2027-01-01T07:00:00+00:00"}))
    now = watch.changed()
    assert now is not None and now.enrollment == "invalid" and now.refused_from == "stick"
    assert found(now) == EnrollmentRefusalFound(now.key_id, "c6" * 32, "stick", "for another unit's key",
                                                "2027-01-01T07:00:00+00:00")
    assert watch.changed() is None
    # a take that failed before it read any certificate: no certificate, an attempt; read as a failed step
    failure = {"certificate": "", "reason": "the station config has no usable CEC key: bad base64",
               "refused_at": "2027-01-01T06:00:00+00:00", "attempt": "0f" * 16}
    (data / REFUSAL).write_text(json.dumps(failure))
    failed = watch.changed()
    assert failed is not None and failed.enrollment == "invalid" and failed.certificate == ""
    assert failed.problem == failure["reason"] and failed.attempt == certificate_hash(json.dumps(failure).encode())
    assert found(failed) == EnrollmentStepFailed(failed.key_id, failed.attempt, failure["reason"],
                                                 "2027-01-01T06:00:00+00:00")
    (data / REFUSAL).write_text(json.dumps({**failure, "attempt": "1e" * 16}))  # the next failed take
    again = watch.changed()
    assert again is not None and again.attempt not in ("", failed.attempt)
    (data / REFUSAL).write_text(json.dumps({"certificate": "c6" * 32, "reason": "for another unit's key",
                                            "refused_at": "2027-01-01T07:00:00+00:00"}))
    assert watch.changed() is not None
    (data / REFUSAL).chmod(0o640)  # as the take step's chown after its rename: read again (it may not have been
    assert watch.changed() is not None  # readable by the appliance's user before)
    # then the CEC's certificate for this key, stored as enrollment.json
    if not (data / "seal.pub").exists():
        create_seal_key(data)
    write_json(tmp_path / "request.json", make_request(data, "KG-DEMO-0001", "SN-1", 1.8e9))
    [cert] = enroll([tmp_path / "request.json"], tmp_path / "registry.json", cec, tmp_path, 1.8e9)
    (data / "enrollment.json").write_bytes(cert.read_bytes())
    now = watch.changed()
    assert now is not None and now.enrollment == "enrolled"
    said = found(now)
    assert isinstance(said, EnrollmentFound) and (said.enrolled.station, said.enrolled.serial) == ("KG-DEMO-0001", "SN-1")
    # the hash names the certificate, not its file's spacing: the stick's copy and the stored one agree
    doc = json.loads(cert.read_text())
    assert said.enrolled.certificate == certificate_hash(json.dumps(doc, indent=4).encode()) == certificate_hash(
        cert.read_bytes())
    # a stored certificate that does not hold is a refusal from the card
    doc["device"]["serial"] = "SN-ALTERED"
    (data / "enrollment.json").write_text(json.dumps(doc))
    altered = key_state(data, signer, "file", cec_b64)
    refused = found(altered)
    assert isinstance(refused, EnrollmentRefusalFound) and refused.source == "card"
