"""Generators of valid demonstration documents: a PIN, TD1 and TD3 MRZ, an AAMVA licence.

Not part of the station's logic (so not in the core): used by the demo station,
tests, benchmarks and the demo images (``device/hardware/scanners/samples.py``).
Every generator computes real check digits, so its output passes the
parsers; tests change single characters to make the failures. Slips are
made with ``slip.issue_slip``. Names in these documents are invented.
"""

from __future__ import annotations

from device.core.documents.mrz import check_digit
from device.core.documents.pin import kz_iin_check_digit


def make_pin(sex: int = 2, day: int = 15, month: int = 3, year: int = 1985, serial: int = 12345) -> str:
    """A Kyrgyz personal number: sex digit, DDMMYYYY, 5-digit serial."""
    return f"{sex}{day:02d}{month:02d}{year:04d}{serial:05d}"


def make_iin(yymmdd: str = "850315", century_sex: int = 3, serial: int = 1234) -> str:
    """A Kazakh IIN with its check digit (tries serials upward until one is issuable)."""
    for s in range(serial, serial + 20):
        first = f"{yymmdd}{century_sex}{s % 10000:04d}"
        digit = kz_iin_check_digit(first)
        if digit is not None:
            return f"{first}{digit}"
    raise ValueError("no issuable IIN near that serial")


def _pad(text: str, width: int) -> str:
    return (text + "<" * width)[:width]


def make_td1(pin: str = "", document: str = "ID1234567", state: str = "KGZ", birth: str = "850315",
             expiry: str = "300101", sex: str = "F", surname: str = "ASANOVA", given: str = "AIDA") -> str:
    """A TD1 MRZ (three lines of 30, joined by newlines) carrying ``pin`` in its optional data."""
    if len(document) > 9:  # the long form: overflow and its check digit go into the optional data
        number = f"{document[:9]}<{document[9:]}{check_digit(document)}<{pin}"
    else:
        number = f"{_pad(document, 9)}{check_digit(_pad(document, 9))}{pin}"
    l1 = _pad(f"ID{_pad(state, 3)}{number}", 30)
    b, e = f"{birth}{check_digit(birth)}", f"{expiry}{check_digit(expiry)}"
    l2_head = f"{b}{sex}{e}{_pad(state, 3)}{'<' * 11}"
    composite = check_digit(l1[5:30] + l2_head[0:7] + l2_head[8:15] + l2_head[18:29])
    l3 = _pad(f"{surname}<<{given.replace(' ', '<')}", 30)
    return "\n".join((l1, f"{l2_head}{composite}", l3))


def make_td3(pin: str = "", document: str = "AC1234567", state: str = "KGZ", birth: str = "850315",
             expiry: str = "300101", sex: str = "F", surname: str = "ASANOVA", given: str = "AIDA") -> str:
    """A TD3 MRZ (two lines of 44, joined by a newline) with ``pin`` as personal number."""
    l1 = _pad(f"P<{_pad(state, 3)}{surname}<<{given.replace(' ', '<')}", 44)
    doc, personal = _pad(document, 9), _pad(pin, 14)
    personal_digit = check_digit(personal) if pin else "<"
    head = (f"{doc}{check_digit(doc)}{_pad(state, 3)}{birth}{check_digit(birth)}{sex}"
            f"{expiry}{check_digit(expiry)}{personal}{personal_digit}")
    composite = check_digit(head[0:10] + head[13:20] + head[21:43])
    return f"{l1}\n{head}{composite}"


def make_aamva(number: str = "D12345678", iin: str = "636000", version: int = 10, separators: bool = True,
               jurisdiction: bool | None = None) -> str:
    """An AAMVA card file with one DL subfile.

    ``separators=False`` mimics a keyboard scanner: RS dropped, LF sent as CR.
    ``jurisdiction`` writes the jurisdiction version field (default: from
    version 2 on, as the standard says; some version 1 cards have it too).
    """
    elements = ["DAQ" + number, "DCSPUBLIC", "DACJOHN", "DBB01151985", "DBA01152030", "DAJVA", "DCGUSA"]
    subfile = "DL" + "\n".join(elements) + "\r"
    with_jurisdiction = version >= 2 if jurisdiction is None else jurisdiction
    head_len = 21 if with_jurisdiction else 19
    start = head_len + 10
    header = f"@\n\x1e\rANSI {iin}{version:02d}" + ("00" if with_jurisdiction else "") + "01"
    text = f"{header}DL{start:04d}{len(subfile):04d}{subfile}"
    return text if separators else text.replace("\x1e", "").replace("\n", "\r")
