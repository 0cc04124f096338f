"""The open results as a NIST SP 1500-100 (version 2) Election Results Common Data Format report, in JSON.

What maps (docs/results.md says it in full): each station is a ``ReportingUnit`` of type ``polling-place``
with ``VotersRegistered`` (from its turnout snapshots) and ``VotersParticipated`` (voters identified, from
its close report); the election carries one ``BallotCounts`` of type ``total`` per closed station with
``BallotsCast`` (ballots the box counted). What does not: pollbox counts ballots, never votes, so there is no
``Contest``, ``Candidate`` or ``VoteCounts``; alarms, record hashes and proofs have no place in the format
and stay in the pollbox export. The whole country is one ``ReportingUnit`` of type ``country`` (the
election's scope). The election's name and date come from the receiver config (``ELECTION_NAME``,
``ELECTION_DATE``), otherwise they say they are not configured.

Streamed in two passes over the stations (reporting units, then ballot counts), each in keyset pages,
both cut at the same signed tree head as every other export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from receiver.result_rows import Cut, ResultsReader, result_row

SCOPE_ID = "gpu-all"


def _unit_id(station: str) -> str:
    return f"gpu-{station}"


def cdf_document(reader: ResultsReader, cut: Cut, now: float) -> Iterator[str]:
    name = str(current_app.config.get("ELECTION_NAME") or "election (name not configured on the receiver)")
    day = str(current_app.config.get("ELECTION_DATE") or datetime.fromtimestamp(now, UTC).date().isoformat())
    generated = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head: dict[str, Any] = {
        "@type": "ElectionResults.ElectionReport", "Format": "precinct-level", "GeneratedDate": generated,
        "Issuer": "Central Election Commission (pollbox receiver)", "IssuerAbbreviation": "CEC",
        "SequenceStart": 1, "SequenceEnd": 1, "Status": "unofficial-partial", "VendorApplicationId": "pollbox",
        "Notes": f"cut at the receiver's signed tree head of size {cut.size}: {cut.head['tree_head']}"}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',"GpUnit":[\n'
    yield json.dumps({"@type": "ElectionResults.ReportingUnit", "@id": SCOPE_ID, "Name": "all polling stations",
                      "Type": "country"})
    for page in reader.rows():
        units = []
        for row in page:
            result = result_row(row, cut)
            unit: dict[str, Any] = {"@type": "ElectionResults.ReportingUnit", "@id": _unit_id(result["station"]),
                                    "Name": result["station"], "Type": "polling-place"}
            if result["registered"] is not None:
                unit["VotersRegistered"] = result["registered"]
            if result["identified"] is not None:
                unit["VotersParticipated"] = result["identified"]
            units.append(json.dumps(unit, ensure_ascii=False))
        yield ",\n" + ",\n".join(units)
    text = {"@type": "ElectionResults.LanguageString", "Content": name, "Language": "en"}
    election = {"@type": "ElectionResults.Election", "ElectionScopeId": SCOPE_ID,
                "Name": {"@type": "ElectionResults.InternationalizedText", "Text": [text]},
                "StartDate": day, "EndDate": day, "Type": "general"}
    yield '\n],"Election":[' + json.dumps(election, ensure_ascii=False)[:-1] + ',"BallotCounts":['
    first = True
    for page in reader.rows():
        counts = []
        for row in page:
            result = result_row(row, cut)
            if result["ballots"] is None:
                continue
            counts.append(json.dumps({"@type": "ElectionResults.BallotCounts", "GpUnitId": _unit_id(result["station"]),
                                      "Type": "total", "BallotsCast": result["ballots"]}, ensure_ascii=False))
        if counts:
            yield ("\n" if first else ",\n") + ",\n".join(counts)
            first = False
    yield "\n]}]}\n"
