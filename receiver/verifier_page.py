"""The observers' verifier page served by the receiver: ``GET /verify/`` and its service worker and manifest.

The page is one self-contained HTML file built by ``python -m verifier.build`` into ``receiver/static/``
(``verify.html``, ``verify-sw.js``, ``verify.webmanifest``, ``verify-icon.svg``; see docs/verifier.md).
The receiver hands it out with its own trust snapshot put in place of the one built in: the CEC public key,
the CEC-signed device registry in force (byte for byte), the receiver's public key (to check signed tree
heads) and, when configured (``ELECTION_NAME``, ``ELECTION_DATE``, ``ELECTION_TIMEZONE``), the election's
day. The page checks the registry's CEC signature itself, so a snapshot is only as good as that signature.
``GET /verify/poster`` is a printable poster with a QR code of the page's address, for the station's door.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from flask import Blueprint, Flask, Response, current_app, redirect, request
from markupsafe import Markup, escape

from protocol.keys import public_b64
from receiver.current import receiver
from receiver.service import ReceiverConfigError

STATIC = Path(__file__).parent / "static"
PAGE = "verify.html"
TRUST_OPEN = '<script id="pollbox-trust" type="application/json">'
TRUST_CLOSE = "</script>"
FILES = {"verify-sw.js": "text/javascript", "verify.webmanifest": "application/manifest+json",
         "verify-icon.svg": "image/svg+xml"}

bp = Blueprint("verifier", __name__)


PUBLIC_READS = ("/api/v1/registry", "/api/v1/tree/", "/api/v1/records/", "/api/v1/results")
"""Public GET answers any page may read, so the verifier opened from a file can refresh and fetch proofs."""


class ElectionConfigError(ReceiverConfigError):
    """The election's day or time zone in the receiver config cannot be used; the message says which."""


def init_app(app: Flask) -> None:
    """Register the routes; an unusable election day or zone stops the start (the database is closed first)."""
    problem = _election_problem(app.config.get("ELECTION_DATE"), app.config.get("ELECTION_TIMEZONE"))
    if problem:
        app.extensions["pollbox_receiver"].storage.close()
        raise ElectionConfigError(problem)
    app.register_blueprint(bp)
    app.after_request(_public_reads)


def _election_problem(day: object, zone: object) -> str | None:
    if not day:
        return None
    try:
        election_window("", str(day), str(zone or "Asia/Bishkek"))
    except ValueError:
        return f"the election date must be YYYY-MM-DD, not {day!r}"
    except ZoneInfoNotFoundError:
        return f"the election time zone must be an IANA zone such as Asia/Bishkek, not {zone!r}"
    return None


def _public_reads(response: Response) -> Response:
    if request.method == "GET" and request.path.startswith(PUBLIC_READS):
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def election_window(name: str, day: str, zone: str) -> dict[str, Any]:
    """The election's day as a UTC window: local midnight to local midnight two days later (counting runs late)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tz)
    end = start + timedelta(days=2)
    fmt, utc = "%Y-%m-%dT%H:%M:%S.000000Z", ZoneInfo("UTC")
    return {"name": name, "date": day, "timezone": zone,
            "from": start.astimezone(utc).strftime(fmt), "to": end.astimezone(utc).strftime(fmt)}


def trust_snapshot() -> dict[str, Any]:
    """What the page trusts, as this receiver knows it; the page verifies the registry against ``cec_key``."""
    rx, config = receiver(), current_app.config
    registry = rx.registry().signed_document or b""
    election = None
    if config.get("ELECTION_DATE"):
        election = election_window(str(config.get("ELECTION_NAME") or ""), str(config["ELECTION_DATE"]),
                                   str(config.get("ELECTION_TIMEZONE") or "Asia/Bishkek"))
    return {"cec_key": str(config["CEC_PUBLIC_KEY"]), "receiver_key": public_b64(rx.key.public_key()),
            "registry": registry.decode("utf-8"), "election": election, "source": "receiver"}


def with_trust(html: str, trust: dict[str, Any]) -> str:
    """The built page with ``trust`` in place of its built-in snapshot (``</`` escaped inside the script)."""
    start = html.index(TRUST_OPEN) + len(TRUST_OPEN)
    end = html.index(TRUST_CLOSE, start)
    return html[:start] + json.dumps(trust, ensure_ascii=False).replace("</", "<\\/") + html[end:]


def _not_built() -> Response:
    return Response("The verifier page is not built on this receiver: run python -m verifier.build\n",
                    status=404, mimetype="text/plain")


@bp.get("/verify")
def bare() -> Any:
    return redirect("/verify/", code=308)


@bp.get("/verify/")
def page() -> Response:
    path = STATIC / PAGE
    if not path.is_file():
        return _not_built()
    html = with_trust(path.read_text(encoding="utf-8"), trust_snapshot())
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-cache"})


@bp.get("/verify/<name>")
def asset(name: str) -> Response:
    if name == "poster":
        return poster()
    path = STATIC / name
    if name not in FILES or not path.is_file():
        return _not_built() if name in FILES else Response("not found\n", status=404, mimetype="text/plain")
    headers = {"Cache-Control": "no-cache", "Service-Worker-Allowed": "/verify/"}
    return Response(path.read_bytes(), mimetype=FILES[name], headers=headers)


def poster() -> Response:
    """A printable A4 poster: a QR code of the verifier page's address, in Kyrgyz, Russian and English."""
    url = request.url_root.rstrip("/") + "/verify/"
    svg = Markup(segno.make(url, error="m").svg_inline(scale=10, border=4, omitsize=True))
    html = f"""<!doctype html><html lang="ky"><meta charset="utf-8"><title>pollbox: check the count</title>
<style>body{{font-family:sans-serif;text-align:center;margin:2cm}}h1{{font-size:32pt;margin:.2em}}
p{{font-size:18pt;margin:.3em}}svg{{width:12cm;height:12cm}}</style>
<h1>Санакты телефон менен текшериңиз</h1><h1>Проверьте подсчёт телефоном</h1><h1>Check the count with your phone</h1>
{svg}<p><b>{escape(url)}</b></p>
<p>Бул кодду сканерлеп, баракчаны ачыңыз, анан жыйынтык протоколдун QR кодун сканерлеңиз.</p>
<p>Отсканируйте этот код, откройте страницу, затем отсканируйте QR-код итогового протокола.</p>
<p>Scan this code, open the page, then scan the QR code on the close report. It works without internet.</p>
</html>"""
    return Response(html, mimetype="text/html")
