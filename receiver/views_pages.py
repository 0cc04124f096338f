"""The station overview (``GET /``) and the per-station drill-down (``GET /stations/<station>``).

Server-rendered HTML with no external assets (one stylesheet from ``static/``).
The overview shows a summary, filters (reporting, silent, not reported,
closed, with open alarms), a station-id prefix search, sorting and keyset
pagination (``?after=`` / ``?before=`` page tokens made by ``Storage.overview``):
one index range per page and no count of the rows, however many stations
are enrolled. The totals come from ``Storage.summary`` (kept counts) or, with
a prefix, from a count bounded by ``COUNT_CAP`` rows.
A station of several units shows each unit's own chain (docs/units.md) and, once its main unit closed,
the combined totals it signed; the overview counts the conflicts between its units once each.
Revoked keys come from the registry in force: the overview marks their
stations, the station page says when, why, by whom and up to which seq.
Stations whose zero or close report names software the CEC has not certified
are marked too (``receiver/software_list.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Flask, abort, current_app, render_template, request

from receiver.current import receiver
from receiver.registry import AnyRegistry, DeviceEntry, Revocation
from receiver.software_list import software_flags
from receiver.status import StationStatus
from receiver.store.overview import SORTS, STATUS_FILTERS, OverviewQuery, PageTokenError
from receiver.store.tallies import SILENT_RECOUNT_SECONDS

PER_PAGE = 100
COUNT_CAP = 10_000  # with a prefix, matches are counted only when the prefix holds at most this many

bp = Blueprint("pages", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["ago"] = ago


def when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(seconds: float | None) -> str:
    """How long ago ``seconds`` was, against the receiver's clock."""
    if seconds is None:
        return "never"
    minutes = max(0, int(receiver().clock() - seconds) // 60)
    return f"{minutes // 60} h {minutes % 60} min ago" if minutes >= 60 else f"{minutes} min ago"


def condition(status: StationStatus, silent_before: float) -> str:
    """One word for a station's state on the overview."""
    if status.highest_seq == 0:
        return "not_reported"
    if status.phase == "closed":
        return "closed"
    if status.last_received is not None and status.last_received < silent_before:
        return "silent"
    return "reporting"


@bp.get("/")
def overview() -> str:
    rx = receiver()
    registry = rx.registry()
    query = _overview_query()
    silent_before, now = rx.silent_before(), rx.clock()
    try:
        page = rx.storage.overview(query, silent_before)
    except PageTokenError as exc:
        abort(400, str(exc))
    summary = rx.storage.summary(silent_before, now)
    total = rx.storage.count_matching(query, silent_before, COUNT_CAP) if query.prefix \
        else summary.matching(query.status)
    unlisted_software, software_problem = software_flags(current_app, rx.storage, [s.station for s in page.rows])
    return render_template("overview.html", unlisted_software=unlisted_software, software_problem=software_problem,
                           page=page, rows=page.rows, total=total, count_cap=COUNT_CAP,
                           query=query, summary=summary, filters=STATUS_FILTERS, sorts=tuple(SORTS),
                           silent_minutes=int(rx.silent_after // 60), silent_before=silent_before,
                           recount_seconds=int(SILENT_RECOUNT_SECONDS), condition=condition, now=now,
                           revoked_stations=registry.revoked_stations(), revoked_keys=len(registry.revoked()),
                           unit_conflicts=rx.storage.unit_conflicts([s.station for s in page.rows]))


def _overview_query() -> OverviewQuery:
    """The overview's filters from the query string; a prefix with control characters is refused (400)."""
    prefix = request.args.get("q", "")[:64]
    if any(not c.isprintable() for c in prefix):
        abort(400, "the station id prefix must not contain control characters")
    return OverviewQuery(status=_choice("status", STATUS_FILTERS, "all"), prefix=prefix,
                         sort=_choice("sort", tuple(SORTS), "station"), after=request.args.get("after", ""),
                         before=request.args.get("before", ""), per_page=PER_PAGE)


@bp.get("/stations/<path:station>")
def station(station: str) -> str:
    rx = receiver()
    status = rx.storage.status(station)
    if status is None:
        abort(404, f"station {station} is neither enrolled nor has it reported")
    registry = rx.registry()
    units = rx.storage.units_of(station)
    return render_template("station.html", status=status, devices=_devices(registry, station), units=units,
                           units_report=json.loads(status.units_report) if status.units_report else None,
                           alarms=rx.storage.alarms(station), records=rx.storage.records_of(station),
                           conflicts=rx.storage.conflicts_of(station), rejections=rx.storage.rejections(station),
                           condition=condition(status, rx.silent_before()), now=rx.clock())


@dataclass(frozen=True)
class DeviceRow:
    """A device on the station page: its entry, its revocation and the stored records it signed beyond it."""

    entry: DeviceEntry
    revocation: Revocation | None
    beyond: list[int]


def _devices(registry: AnyRegistry, station: str) -> list[DeviceRow]:
    storage = receiver().storage
    rows = []
    for entry in registry.devices_of(station):
        revocation = registry.revocation_of(entry.key_id)
        beyond = storage.seqs_signed_by(station, entry.key_id, after=revocation.last_seq) if revocation else []
        rows.append(DeviceRow(entry, revocation, beyond))
    return rows


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    return value if value in allowed else default
