"""Record bodies: every upstream event has one, and none carries a voter or typed free text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.core import events as ev
from device.core.catalogue import CATALOGUE
from device.upstream.records import (
    REMOVED,
    NotUpstream,
    Tally,
    body_for,
    scrub,
    upstream_kinds_without_builder,
)
from protocol.canonical import canonical

VOTER = "ab" * 32


def test_every_upstream_kind_has_a_body_builder() -> None:
    assert upstream_kinds_without_builder() == []


@pytest.mark.parametrize("event", [
    ev.VoterAdmitted(VOTER, 3, "scan", 1), ev.CheckinRefused("not_on_list", VOTER), ev.BallotCounted(1),
    ev.DeviceStarted("0.1", "KG-0001"), ev.LidClosed(),
])
def test_events_not_for_the_cec_are_refused(event: ev.Event) -> None:
    assert not CATALOGUE[event.kind].upstream
    with pytest.raises(NotUpstream, match=event.kind):
        body_for(event)


def test_close_report_carries_all_counts() -> None:
    body = body_for(ev.PollsClosed(120, 119, -1, 2, 1))
    assert body == {"identified": 120, "ballots": 119, "difference": -1, "alarms_total": 2, "alarms_open": 1}


def test_undo_carries_counts_and_no_voter_or_reason() -> None:
    body = body_for(ev.CheckinUndone(VOTER, "wrong person, Aibek Usenov"), Tally(admitted=10, undone=2, ballots=7))
    assert body == {"undone_total": 2, "identified": 8, "ballots": 7}
    with pytest.raises(ValueError, match="counts"):
        body_for(ev.CheckinUndone(VOTER, "x"))


typed_text = st.text(min_size=1, max_size=80).filter(lambda t: t.strip() != "")


@given(typed_text)
def test_typed_text_never_reaches_a_record(text: str) -> None:
    bodies = [body_for(ev.PollsPaused(text)), body_for(ev.AlarmAcknowledged(1, text)),
              body_for(ev.CheckinUndone(VOTER, text), Tally(1, 1, 0))]
    for body in bodies:
        assert text not in set(body.values())
        assert VOTER.encode() not in canonical(body)
    assert bodies[1]["note_given"] is True


@given(st.text(alphabet="0123456789", min_size=6, max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_scrub_removes_every_personal_number_shape(number: str, before: str, after: str) -> None:
    text = f"{before} {number} {after}"
    cleaned = scrub(text)
    assert number not in cleaned
    assert len(cleaned) <= 200


def test_scrub_removes_separated_numbers_and_mrz_lines_and_keeps_ordinary_text() -> None:
    assert scrub("PIN 2 150 7199 000 12 seen") == f"PIN {REMOVED} seen"
    assert REMOVED in scrub("IDKGZAN1234567<<<<<<<<<<<<<<<")
    assert scrub("beam blocked for 3.5 s at 08:14") == "beam blocked for 3.5 s at 08:14"


def test_alarm_and_annotation_text_is_scrubbed() -> None:
    alarm = body_for(ev.AlarmRaised(2, "drop_without_token", "read 21507199900012 at desk"))
    note = body_for(ev.Annotation("readiness", "unit serial ok; voter 21507199900012"))
    assert "21507199900012" not in canonical(alarm).decode() + canonical(note).decode()
    assert alarm["alarm_kind"] == "drop_without_token" and note["topic"] == "readiness"
