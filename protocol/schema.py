"""The body of each record type: which fields, of which kind (docs/protocol.md, section 3).

One table, ``BODIES``, is the schema: both ends read it (the device's bodies
are tested against it, the receiver refuses a record whose body breaks it with
``invalid_body``) and ``docs/protocol.md`` shows it as rendered by
``schema_table``. It is plain typed Python rather than JSON Schema or
pydantic: bodies are flat objects of integers, short strings and booleans, so
seven field kinds say everything, the station unit gains no dependency, and the
check is a dictionary walk that cannot run away on hostile input.

Every body of a known type holds exactly its fields, no more and no fewer,
except the optional groups (``OPTIONAL_GROUPS``), which the bodies of
``SOFTWARE_TYPES`` may carry, each group whole or not at all: the two
``SOFTWARE`` fields (the pollbox version and code hash) and the three ``SYSTEM``
fields (the booted root slot, its bundle version and root file system hash):
which software the unit runs (``device/software.py``).
A body of a type the receiver does not know (a newer unit) needs only the
fields every body carries, ``journal_seq`` and ``journal_hash``: it is stored
and shown generically.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.envelope import HEX64_RE, MAX_INT, is_int

MAX_TEXT = 200
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Kind:
    """A kind of field value: how ``docs/protocol.md`` names it, and its check."""

    doc: str
    check: Callable[[Any], bool]


COUNT = Kind("integer 0 to 2^53-1", lambda v: is_int(v))
POSITIVE = Kind("integer 1 to 2^53-1", lambda v: is_int(v, 1))
SIGNED = Kind("integer -(2^53-1) to 2^53-1", lambda v: is_int(v, -MAX_INT))
HASH = Kind("64 lowercase hex digits", lambda v: isinstance(v, str) and HEX64_RE.match(v) is not None)
TEXT = Kind(f"string of at most {MAX_TEXT} characters", lambda v: isinstance(v, str) and len(v) <= MAX_TEXT)
NAME = Kind("name: a-z, 0-9, _ (at most 64, starting with a letter)",
            lambda v: isinstance(v, str) and NAME_RE.match(v) is not None)
BOOLEAN = Kind("true or false", lambda v: isinstance(v, bool))

COMMON: dict[str, Kind] = {"journal_seq": POSITIVE, "journal_hash": HASH}
MAX_VERSION = 64
VERSION_TEXT = Kind(f"string of 1 to {MAX_VERSION} printable characters",
                    lambda v: isinstance(v, str) and 0 < len(v) <= MAX_VERSION and v.isprintable())
SOFTWARE: dict[str, Kind] = {"software_version": VERSION_TEXT, "software_hash": HASH}
"""Optional, both or neither: the unit's software version and the SHA-256 of its installed code."""
SOME_VERSION = Kind(f"string of at most {MAX_VERSION} printable characters",
                    lambda v: isinstance(v, str) and len(v) <= MAX_VERSION and v.isprintable())
"""A version that may be unknown (""): a refused bundle's, a slot's the updater did not write."""
SLOT = Kind("one capital letter A to Z", lambda v: isinstance(v, str) and len(v) == 1 and "A" <= v <= "Z")
SYSTEM: dict[str, Kind] = {"system_slot": SLOT, "system_version": VERSION_TEXT, "system_hash": HASH}
"""Optional, all or none: the root slot the unit booted, the version of the bundle written into it and the
SHA-256 of that root file system image (``device/software.py``)."""
OPTIONAL_GROUPS: tuple[dict[str, Kind], ...] = (SOFTWARE, SYSTEM)
SOFTWARE_TYPES = ("polls_opened", "polls_closed", "annotation")
"""The bodies that may say which software runs: the zero report, the close report, the readiness note."""

BODIES: dict[str, dict[str, Kind]] = {
    "polls_opened": {"identified": COUNT, "ballots": COUNT},
    "polls_paused": {},
    "polls_resumed": {},
    "polls_closed": {"identified": COUNT, "ballots": COUNT, "difference": SIGNED, "alarms_total": COUNT,
                     "alarms_open": COUNT},
    "checkin_undone": {"undone_total": COUNT, "identified": COUNT, "ballots": COUNT},
    "alarm_raised": {"alarm": POSITIVE, "alarm_kind": NAME, "detail": TEXT},
    "alarm_acknowledged": {"alarm": POSITIVE, "note_given": BOOLEAN},
    "turnout_snapshot": {"identified": COUNT, "ballots": COUNT, "registered": COUNT},
    "annotation": {"topic": TEXT, "text": TEXT},
    "unit_conflict": {"first_unit": TEXT, "first_seq": POSITIVE, "first_at": COUNT, "second_unit": TEXT,
                      "second_seq": POSITIVE, "second_at": COUNT},
    "unit_absent_at_close": {"unit": TEXT, "reason_given": BOOLEAN},
    "units_reconciled": {"desks_identified": COUNT, "desks_ballots": COUNT, "mobile_identified": COUNT,
                         "mobile_ballots": COUNT, "identified": COUNT, "ballots": COUNT, "conflicts": COUNT,
                         "absent": TEXT, "parts": TEXT},
    "update_refused": {"reason": NAME, "detail": TEXT, "version": SOME_VERSION, "size": COUNT},
    "update_started": {"version": SOME_VERSION, "compatible": TEXT, "size": COUNT, "signer": TEXT},
    "update_installed": {"version": SOME_VERSION, "slot": TEXT},
    "update_failed": {"version": SOME_VERSION, "detail": TEXT},
    "polls_held_for_update": {"action": NAME, "version": SOME_VERSION},
    "update_booted": {"version": SOME_VERSION, "slot": TEXT},
    "update_rolled_back": {"version": SOME_VERSION, "slot": TEXT, "booted": TEXT, "booted_version": SOME_VERSION},
}


_ALL_FIELDS = {type_: {**COMMON, **own} for type_, own in BODIES.items()}


def fields_of(type_: str) -> dict[str, Kind] | None:
    """Every field of a body of ``type_`` (common ones first); None for a type this schema does not know."""
    return _ALL_FIELDS.get(type_)


def body_problem(type_: str, body: Any) -> str | None:
    """What is wrong with a record body of ``type_``, in one sentence; None when it fits the schema."""
    if not isinstance(body, dict):
        return f"the body of a record of type {type_} must be a JSON object"
    for group in OPTIONAL_GROUPS if type_ in SOFTWARE_TYPES else ():
        if not any(name in body for name in group):
            continue
        for name, kind in group.items():
            if name not in body:
                return f"the body of a record of type {type_} has {', '.join(group)} together or neither"
            if not kind.check(body[name]):
                return f"{type_} body field {name} must be {kind.doc}, not {_shown(body[name])}"
        body = {k: v for k, v in body.items() if k not in group}
    expected = fields_of(type_)
    required = expected if expected is not None else COMMON
    if expected is None or body.keys() != expected.keys():
        missing = [name for name in required if name not in body]
        if missing:
            return f"the body of a record of type {type_} lacks {', '.join(missing)}"
        extra = sorted(set(body) - set(required)) if expected is not None else []
        if extra:
            return f"the body of a record of type {type_} has unknown field(s) {', '.join(extra)[:100]}"
    for name, kind in required.items():
        if not kind.check(body[name]):
            return f"{type_} body field {name} must be {kind.doc}, not {_shown(body[name])}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_table() -> str:
    """The schema as the Markdown table of docs/protocol.md (a test keeps the two identical)."""
    rows = ["| `type` | body fields (besides `journal_seq`: integer 1 to 2^53-1, `journal_hash`: 64 lowercase hex "
            "digits) |", "| --- | --- |"]
    for type_, fields in BODIES.items():
        listed = "; ".join(f"`{name}`: {kind.doc}" for name, kind in fields.items()) or "none"
        if type_ in SOFTWARE_TYPES:
            listed += "; optional, both or neither: " + "; ".join(f"`{name}`: {kind.doc}"
                                                                   for name, kind in SOFTWARE.items())
            listed += "; optional, all or none: " + "; ".join(f"`{name}`: {kind.doc}" for name, kind in SYSTEM.items())
        rows.append(f"| `{type_}` | {listed} |")
    return "\n".join(rows)
