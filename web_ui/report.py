"""The zero report (``/report/zero``) and the printable close report (``/report/close``).

The zero report is shown to the commission before opening; when the chair
views it, the session remembers that, and only then does ``/chair/open``
proceed. The close report shows the counts and every alarm of the day, and a
QR code (segno, inline SVG) holding the signed ``polls_closed`` record line,
which an observer verifies offline with ``pollbox verify-report``.
"""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, render_template, session
from markupsafe import Markup

from . import chair, view

bp = Blueprint("report", __name__, url_prefix="/report")


@bp.get("/zero")
def zero_report() -> Any:
    report = view.appliance().zero_report()
    if chair.is_chair() and report.get("holds"):
        session["zero_shown"] = True
    return render_template("zero_report.html", r=report, s=view.snapshot(), chair=chair.is_chair())


def qr_svg(text: str) -> Markup:
    """The QR code of ``text`` as inline SVG (error correction M: survives a phone photo)."""
    qr = segno.make(text, error="m", micro=False)
    return Markup(qr.svg_inline(scale=3, border=4, dark="#000", light="#fff", omitsize=True))


@bp.get("/close")
def close_report() -> Any:
    report = view.appliance().close_report()
    if report is None:
        return render_template("close_report.html", r=None, s=view.snapshot(), qr=None), 404
    signed = report.get("signed")
    return render_template("close_report.html", r=report, s=view.snapshot(), qr=qr_svg(signed) if signed else None)
