"""AAMVA driver's licence and ID card data, as read from the PDF417 on the back.

The file starts with the compliance indicator ``@``, the separators LF, RS
and CR, then ``ANSI `` (``AAMVA`` in old cards), the issuer identification
number (IIN, 6 digits), the AAMVA version, the jurisdiction version (version
2 and later), the number of entries and one 10-character designator per
subfile (``DL``/``ID``, offset, length). A subfile is its type followed by
data elements, each a 3-letter id and a value, separated by LF.

Only what the desk needs is taken: the IIN and the customer id number
(``DAQ``). Keyboard-mode scanners often turn the separators into CR or drop
them, so the parser finds the subfile by its offset when that fits and by
its type otherwise, and splits elements on CR or LF. The voter number is
``<IIN>:<DAQ>``.
"""

from __future__ import annotations

import re

from .result import Identified, RefusalCode, Unreadable
from .rules import DocumentRules

SCHEME = "aamva"
_HEADER = re.compile(r"@[\x00-\x20\x1c-\x1f]{0,4}(ANSI |AAMVA)(\d{6})(\d{2})")
_DESIGNATOR = re.compile(r"(DL|ID|Z[A-Z])(\d{4})(\d{4})")
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9]{1,25}")


def claims(text: str) -> bool:
    return text.lstrip("\r\n ").startswith("@")


def parse(text: str, rules: DocumentRules) -> Identified | Unreadable:
    body = text.lstrip("\r\n ")
    header = _HEADER.match(body)
    if header is None:
        return _short_or_bad(body)
    iin, version = header.group(2), int(header.group(3))
    at = header.end() + (2 if version >= 2 else 0)
    entries = body[at:at + 2]
    if len(entries) < 2:
        return Unreadable(RefusalCode.TRUNCATED, "the licence data ends inside its header")
    if not entries.isdigit() or int(entries) < 1:
        return Unreadable(RefusalCode.MALFORMED, "the licence header has no valid number of entries")
    subfile = _subfile(body, at + 2, int(entries))
    if isinstance(subfile, Unreadable):
        return subfile
    number = _element(subfile, "DAQ")
    if number is None:
        return Unreadable(RefusalCode.MALFORMED, "the licence data has no customer id number (DAQ)")
    if not _DOCUMENT_NUMBER.fullmatch(number):
        return Unreadable(RefusalCode.MALFORMED, "the licence customer id number has characters out of range")
    return Identified(SCHEME, f"{iin}:{number}", None, f"driver's licence (AAMVA), issuer {iin}")


def _short_or_bad(body: str) -> Unreadable:
    if len(body) < 20:
        return Unreadable(RefusalCode.TRUNCATED, "the licence data ends inside its header")
    return Unreadable(RefusalCode.MALFORMED, "the licence data lacks the AAMVA header")


def _subfile(body: str, at: int, count: int) -> str | Unreadable:
    designators = []
    for i in range(count):
        d = _DESIGNATOR.fullmatch(body[at + 10 * i:at + 10 * i + 10])
        if d is None:
            if len(body) < at + 10 * (i + 1):
                return Unreadable(RefusalCode.TRUNCATED, "the licence data ends inside its subfile list")
            return Unreadable(RefusalCode.MALFORMED, "a subfile designator of the licence data is malformed")
        designators.append((d.group(1), int(d.group(2)), int(d.group(3))))
    for kind, offset, length in designators:
        if kind in ("DL", "ID"):
            return _locate(body, kind, offset, length, at + 10 * count)
    return Unreadable(RefusalCode.MALFORMED, "the licence data has no DL or ID subfile")


def _locate(body: str, kind: str, offset: int, length: int, after: int) -> str | Unreadable:
    if body[offset:offset + 2] == kind:
        return body[offset + 2:offset + length]
    found = body.find(kind, after)
    if found < 0:
        return Unreadable(RefusalCode.TRUNCATED, f"the licence data ends before its {kind} subfile")
    return body[found + 2:]


def _element(subfile: str, element: str) -> str | None:
    for item in re.split(r"[\r\n]+", subfile):
        if item.startswith(element):
            return item[3:].strip()
    return None
