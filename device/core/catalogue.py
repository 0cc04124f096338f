"""The audit-event catalogue: every journal event kind, with a code and a sentence; and the named delays.

``docs/audit-events.md`` is generated from this table (``pollbox docs``), and a
test fails if an event kind has no entry or the document is out of date.
Alarm kinds also carry the instruction shown to the chair.
"""

from __future__ import annotations

from dataclasses import dataclass

from .delays import Delays
from .events import EVENT_TYPES, AlarmKind


@dataclass(frozen=True)
class Entry:
    code: str
    title: str
    sentence: str
    upstream: bool
    """True if the event produces an upstream record for the CEC."""


CATALOGUE: dict[str, Entry] = {
    "device_started": Entry("PB-001", "Device started", "The appliance started; the slot was locked before anything else.", False),
    "polls_opened": Entry("PB-010", "Polls opened", "The chair opened the polls after the zero report: nothing identified, no ballot counted.", True),
    "polls_paused": Entry("PB-011", "Polls paused", "The chair paused the polls; identification is refused until resumed.", True),
    "polls_resumed": Entry("PB-012", "Polls resumed", "The chair resumed the polls.", True),
    "polls_closed": Entry("PB-013", "Polls closed", "The chair closed the polls; this event carries the close report.", True),
    "voter_admitted": Entry("PB-020", "Voter admitted", "A voter on this station's list was identified for the first time; the slot was armed for one ballot.", False),
    "checkin_refused": Entry("PB-021", "Check-in refused", "An identification was refused: already voted, not on this list, invalid document, or polls not open.", False),
    "checkin_undone": Entry("PB-022", "Check-in undone", "A clerk undid a standing check-in and gave a reason; the voter may be identified again.", True),
    "ballot_counted": Entry("PB-030", "Ballot counted", "The drop sensor saw a ballot go in, or the box unit's own counter showed one the station did not hear (then with an alarm); it consumed an admission's token if one was open.", False),
    "arm_expired": Entry("PB-031", "Slot relocked", "An admitted voter did not drop a ballot in time; the slot locked again.", False),
    "arm_cancelled": Entry("PB-032", "Arm cancelled", "An open admission was cancelled (restart, undo or close, or the ballot box unit counted drops the station did not hear while it was not answering) and the slot locked.", False),
    "arm_resumed": Entry("PB-034", "Slot reopened", "The ballot box unit was heard again while an admitted voter's token was still open: the slot, locked while the unit did not answer, opened again for that voter's one ballot.", False),
    "box_counter_noted": Entry("PB-033", "Box counter noted", "The ballot box unit's own drop counter became the reference for drops it counts while the station is not listening: the first time the station heard the unit (or its identity), when another unit answers (a replaced unit, told by its identity), or when the unit reported less than the journal holds (an erased unit). No ballot was added or removed.", False),
    "alarm_raised": Entry("PB-040", "Alarm raised", "An incident needs the chair: a drop without identification, a second ballot, the lid opened, a jam, a lost or replaced part.", True),
    "alarm_acknowledged": Entry("PB-041", "Alarm acknowledged", "The chair acknowledged an alarm, with an optional note.", True),
    "lid_closed": Entry("PB-042", "Lid closed", "The ballot box lid was closed again.", False),
    "jam_cleared": Entry("PB-043", "Jam cleared", "The drop sensor is clear again after a jam.", False),
    "device_status_changed": Entry("PB-050", "Part status changed", "A part of the unit (scanner, box unit, link to the CEC) was connected or lost.", False),
    "turnout_snapshot": Entry("PB-055", "Turnout snapshot", "The hourly figure of voters identified and ballots counted, sent to the CEC.", True),
    "annotation": Entry("PB-060", "Note of record", "A technician or system note: readiness, enrollment, zeroize.", True),
    "peer_checkin_applied": Entry("PB-070", "Other unit's admission applied", "Another unit of the station admitted a voter (or undid its admission); its signed record was verified and applied to this unit's replica, which then refuses that voter (or admits them again).", False),
    "peer_record_refused": Entry("PB-071", "Other unit's record refused", "A record received from the station LAN was not applied, with the reason: another station's unit, an unenrolled key, a forged or altered record, a replay, a gap, a message too large.", False),
    "peer_closed": Entry("PB-073", "Other unit closed", "Another unit of the station closed its polls; its signed close record (admissions, voters identified, ballots) was applied once this unit held all its admissions.", False),
    "unit_absent_at_close": Entry("PB-074", "Closed without a unit", "The chair closed the polls without another unit's final records, and gave a reason.", True),
    "units_reconciled": Entry("PB-075", "Units reconciled", "The main unit's close over all units of the station: the desks' part, the mobile box's part (identified against its ballots), the combined total, the conflicts and the units closed without.", True),
    "unit_conflict": Entry("PB-072", "Admitted at two units", "The same voter was admitted by two units of the station (while they could not reach each other); both admissions stand on the record, with an alarm. Sent to the CEC without the voter's hash or line.", True),
    "update_refused": Entry("PB-080", "Update refused", "A software update was refused before anything was written to the other root slot, with the reason: polls open or paused, over the size budget, truncated, not signed by the CEC's update key, for other hardware, unreadable.", True),
    "update_started": Entry("PB-081", "Update started", "A bundle signed by the CEC's update key, for this hardware, is being written into the root slot the unit is not running from.", True),
    "update_installed": Entry("PB-082", "Update installed", "The bundle was written into the other root slot; it boots once on trial at the next start and is kept only once the appliance is ready.", True),
    "update_failed": Entry("PB-083", "Update failed", "Writing the bundle into the other root slot did not finish; that slot is left marked bad and the unit keeps running the software it runs now.", True),
    "polls_held_for_update": Entry("PB-084", "Polls held for an update", "The chair asked to open or resume the polls while a software update was being written into the other root slot; refused, with the bundle's version, until the install ends.", True),
    "update_booted": Entry("PB-085", "Update booted", "The unit started from the root slot the last install wrote: the new software runs, on trial until the appliance is ready, then kept.", True),
    "update_rolled_back": Entry("PB-086", "Update rolled back", "The unit started from another root slot than the one the last install wrote or last ran: the new slot never booted, or its trial boot ended before the appliance was ready, and the boot loader went back to the slot it trusted.", True),
    "device_key_enrolled": Entry("PB-090", "Device key enrolled", "The unit holds the CEC's enrollment certificate for its record key (taken from the technician's USB stick after a first boot that made the key in the unit's TPM, or installed with the station): the key's id, algorithm and store, the certificate's SHA-256, and the station, unit and time the CEC enrolled it. Recorded once per certificate, at the appliance's first start with it or as soon as it appears.", False),
    "device_key_enrollment_refused": Entry("PB-091", "Enrollment certificate refused", "An enrollment certificate was not taken for the unit's record key, with the reason: not signed by this election's CEC key, for another unit's key, or not stored; or the certificate on the unit's card does not hold. Nothing was stored from it; the technician brings the CEC's certificate for this key. Recorded once per certificate.", False),
    "device_key_enrollment_failed": Entry("PB-092", "Enrollment step failed", "The step that takes the CEC's enrollment certificate from the technician's USB stick failed before it read any certificate, with the reason: the station config has no usable CEC key, the stick could not be read, or a file of the unit could not be read or written. Nothing was stored; the technician puts the cause right and plugs the stick in again. Recorded once per failed attempt, at the appliance's first start after it or as soon as it happens while it runs.", False),
}


ALARM_ADVICE: dict[AlarmKind, str] = {
    AlarmKind.DROP_WITHOUT_TOKEN: "A ballot went in without an identification. Note who dropped it, tell the observers, record it in the protocol, then acknowledge.",
    AlarmKind.SECOND_BALLOT: "A second ballot went in on one identification. Stop the voter, note the incident in the protocol, then acknowledge.",
    AlarmKind.LID_OPENED: "The ballot box lid is open. Pause the polls, close and seal the lid in front of the observers, then acknowledge.",
    AlarmKind.JAM: "The ballot slot is jammed. Pause the polls, clear the slot without opening the lid, then acknowledge.",
    AlarmKind.BOX_UNIT_LOST: "The ballot box unit does not answer. Check its cable, pause the polls if it does not come back, then acknowledge.",
    AlarmKind.BOX_UNIT_REPLACED: "Another ballot box unit answers, or the unit's memory was erased: the unit was replaced or reset. No ballot was added to the count or removed from it. Check the unit and its seals with the observers, note it in the protocol, then acknowledge.",
    AlarmKind.SCANNER_LOST: "The document scanner is disconnected. Re-plug it or type numbers by hand, then acknowledge.",
    AlarmKind.STORAGE_LOW: "The unit's card is almost full. The unit still records and nothing is lost; call the technician to free space today, then acknowledge.",
    AlarmKind.STORAGE_FAILED: "The unit cannot write its journal (card full, read-only or failing): nobody is admitted and the slot stays locked. If the card is full, free space and recording resumes by itself; otherwise call the technician. Then acknowledge.",
    AlarmKind.UNIT_CONFLICT: "The same voter was admitted by two units of this station while they could not reach each other. Both admissions stay on the record and nothing was removed. Compare the two units' records with the observers, note the incident in the protocol, then acknowledge.",
    AlarmKind.UNIT_CLOCK_DRIFT: "Another unit's clock differs from this unit's beyond the allowed bound. Records still merge in order; check the time on both units, call the technician if it stays wrong, then acknowledge.",
}


def missing_entries() -> list[str]:
    """Event kinds that have no catalogue entry (must be empty)."""
    return sorted(set(EVENT_TYPES) - set(CATALOGUE))


def render_markdown() -> str:
    """The catalogue as the Markdown document ``docs/audit-events.md``."""
    lines = [
        "# Audit-event catalogue",
        "",
        "Generated from `device/core/catalogue.py` by `pollbox docs`; do not edit by hand.",
        "",
        "| code | kind | title | upstream | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, e in sorted(CATALOGUE.items(), key=lambda kv: kv[1].code):
        lines.append(f"| {e.code} | `{kind}` | {e.title} | {'yes' if e.upstream else 'no'} | {e.sentence} |")
    lines += ["", "## Alarms and what the chair does", "", "| alarm | what to do now |", "| --- | --- |"]
    lines += [f"| `{k.value}` | {advice} |" for k, advice in ALARM_ADVICE.items()]
    lines += ["", "## Named delays", "", "Every delay the station logic waits for (`device/core/delays.py`); "
              "each can be overridden in the `[delays]` table of the station config.", "",
              "| delay | default | what it waits for |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {seconds:g} s | {doc} |" for name, seconds, doc in Delays.documented()]
    return "\n".join(lines) + "\n"
