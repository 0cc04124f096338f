"""AAMVA driver's licence and ID card data, as read from the PDF417 on the back.

The file starts with the compliance indicator ``@``, the separators LF, RS
and CR, then ``ANSI `` (``AAMVA`` in old cards), the issuer identification
number (IIN, 6 digits), the AAMVA version, the jurisdiction version (version
2 and later), the number of entries and one 10-character designator per
subfile (``DL``/``ID``, offset, length). A subfile is its type followed by
data elements, each a 3-letter id and a value, separated by LF.

Only what the desk needs is taken: the IIN and the customer id number
(``DAQ``). The voter number is ``<IIN>:<DAQ>``.

Real scanners in keyboard mode change the file on the way, and each change
is read, not refused:

- a byte-order mark, blanks or a noise line (a symbology prefix such as
  ``]L2``, a scanner's banner) before the ``@``: the file starts at the
  header, if it is found within ``NOISE_MAX`` characters;
- separators sent as CR, dropped, or typed as ``|`` (a scanner cannot type
  RS): the subfile is found by its offset when that fits and by its type
  otherwise, and elements are split on CR, LF, RS and ``|``;
- a version 1 header that carries a jurisdiction version anyway (some
  issuers wrote one before version 2 made it standard), or a later header
  without one: the layout the version names is tried first, then the other.

Every count and offset is read from ASCII digits only, so any other
character is a typed refusal, never an exception.
"""

from __future__ import annotations

import re

from .result import Identified, RefusalCode, Unreadable
from .rules import DocumentRules, is_digits

SCHEME = "aamva"
NOISE_MAX = 80
"""The longest noise a scanner may send before the ``@`` of the header."""

_SEPARATORS = r"[\x00-\x20\x1c-\x1f|\ufeff]"
_START = re.compile(rf"@{_SEPARATORS}{{0,8}}(?:ANSI |AAMVA)")
_HEADER = re.compile(rf"@{_SEPARATORS}{{0,8}}(ANSI |AAMVA)([0-9]{{6}})([0-9]{{2}})")
_DESIGNATOR = re.compile(r"(DL|ID|Z[A-Z])([0-9]{4})([0-9]{4})")
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9]{1,25}")
_ELEMENT_BREAK = re.compile(r"[\r\n\x1c-\x1e|]+")
_LEAD = "\ufeff\r\n \t"


def claims(text: str) -> bool:
    return text.lstrip(_LEAD).startswith("@") or _noisy_start(text) is not None


def parse(text: str, rules: DocumentRules) -> Identified | Unreadable:
    body = _body(text)
    header = _HEADER.match(body)
    if header is None:
        return _short_or_bad(body)
    iin, version = header.group(2), int(header.group(3))
    found: Unreadable | None = None
    for at in _layouts(header.end(), version):
        subfile = _subfile_list(body, header.end(), at)
        if isinstance(subfile, str):
            return _identified(subfile, iin)
        found = found or subfile
    assert found is not None
    return found


def _body(text: str) -> str:
    """The file from its compliance indicator on (BOM, blanks or a noise line before it dropped)."""
    stripped = text.lstrip(_LEAD)
    start = None if _HEADER.match(stripped) else _noisy_start(text)
    return stripped if start is None else text[start:]


def _noisy_start(text: str) -> int | None:
    found = _START.search(text, 0, NOISE_MAX + 20)
    return found.start() if found is not None and found.start() <= NOISE_MAX else None


def _layouts(end: int, version: int) -> tuple[int, int]:
    """Where the number of entries may start: the version's own layout first."""
    with_jurisdiction, without = end + 2, end
    return (with_jurisdiction, without) if version >= 2 else (without, with_jurisdiction)


def _subfile_list(body: str, end: int, at: int) -> str | Unreadable:
    """The DL or ID subfile, reading the header's jurisdiction version (if any) from ``end`` and the
    number of entries from ``at``."""
    entries = body[at:at + 2]
    if len(entries) < 2:
        return Unreadable(RefusalCode.TRUNCATED, "the licence data ends inside its header")
    if at > end and not is_digits(body[end:at]):
        return Unreadable(RefusalCode.MALFORMED, "the licence header has no valid jurisdiction version")
    if not is_digits(entries) or int(entries) < 1:
        return Unreadable(RefusalCode.MALFORMED, "the licence header has no valid number of entries")
    return _subfile(body, at + 2, int(entries))


def _identified(subfile: str, iin: str) -> Identified | Unreadable:
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
    for item in _ELEMENT_BREAK.split(subfile):
        if item.startswith(element):
            return item[3:].strip()
    return None
