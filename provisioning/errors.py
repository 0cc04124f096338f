"""Numbered technician errors: every failure a provisioning command can report.

Each error has a stable code (``E012``) so a technician on the phone can name
it and the guide (``docs/technician-guide.md``) can say what to do. The CLI
prints ``E012 voters.csv line 17: personal number has 13 digits, expected 14``
and exits with the error's exit code; no traceback reaches the technician.
``ProvisionErrors`` carries several such failures found at once (one numbered
line each), for commands that check everything before doing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from protocol.errors import UserError


class Code(NamedTuple):
    code: str
    title: str
    exit_status: int


CODES: dict[str, Code] = {c.code: c for c in (
    Code("E001", "file not found or not readable", 2),
    Code("E002", "file already exists; refusing to overwrite", 2),
    Code("E003", "bad command-line value", 2),
    Code("E010", "voter list header is not the documented one", 3),
    Code("E011", "voter list row is not UTF-8 text", 3),
    Code("E012", "personal number is not valid", 3),
    Code("E013", "personal number appears twice", 3),
    Code("E014", "row belongs to another station", 3),
    Code("E015", "list line number missing, malformed or repeated", 3),
    Code("E016", "row has the wrong number of columns", 3),
    Code("E017", "voter name is empty or too long", 3),
    Code("E018", "voter list is empty", 3),
    Code("E020", "key file is missing, malformed or has unsafe permissions", 4),
    Code("E021", "station description is incomplete or invalid", 4),
    Code("E022", "station package refused by the unit", 4),
    Code("E023", "list key does not belong to this package", 4),
    Code("E024", "live and training data cannot share a unit: zeroize it first", 4),
    Code("E030", "enrollment request is malformed or its signature does not verify", 5),
    Code("E031", "enrollment does not match this unit", 5),
    Code("E032", "device registry cannot be read or written", 5),
    Code("E040", "readiness self-test failed", 6),
    Code("E041", "unit config or appliance cannot be started", 6),
    Code("E050", "records not yet acknowledged by the receiver: zeroize refused", 7),
    Code("E051", "zeroize confirmation does not match", 7),
    Code("E052", "the receiver did not acknowledge the zeroize note: nothing wiped", 7),
    Code("E060", "image build impossible on this host", 8),
    Code("E070", "a station in the election plan has no voter list file", 9),
    Code("E071", "a voter list file names no station of the election plan", 9),
    Code("E072", "--stations names a station that is not in the election plan", 9),
    Code("E073", "an enrollment request is for an unknown station or filed under another station's name", 9),
    Code("E074", "the output folder cannot be used for this election", 9),
    Code("E075", "the voter list changed after this station's package was built", 9),
    Code("E076", "one or more stations could not be packaged", 9),
    Code("E077", "the software list cannot be read, or is not signed by this CEC key", 5),
    Code("E078", "the units of a station of several units are not valid", 3),
    Code("E079", "a unit's key cannot be enrolled for that unit in the device registry", 5),
)}


class ProvisionError(UserError):
    """A failure the technician must see: a code from ``CODES`` and a specific sentence."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}")

    @property
    def exit_status(self) -> int:
        return CODES[self.code].exit_status


class ProvisionErrors(ProvisionError):
    """Several failures found at once: printed one numbered line each, then ``summary``; exits as the first."""

    def __init__(self, problems: Sequence[ProvisionError], summary: str) -> None:
        if not problems:
            raise ValueError("ProvisionErrors needs at least one problem")
        super().__init__(problems[0].code, problems[0].message)
        self.problems = list(problems)
        self.summary = summary
        self.args = ("\n".join([*(str(p) for p in self.problems), summary]),)
