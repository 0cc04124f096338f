"""The station overview (``GET /``) and the per-station drill-down (``GET /stations/<station>``).

Server-rendered HTML with no external assets (one stylesheet from ``static/``).
The overview shows a summary, filters (reporting, silent, not reported,
closed, with open alarms), a station-id prefix search, sorting and
pagination: one page of rows at a time, however many stations are enrolled.
Revoked keys come from the registry in force: the overview marks their
stations, the station page says when, why, by whom and up to which seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Flask, abort, render_template, request

from receiver.app import receiver
from receiver.registry import DeviceEntry, Registry, Revocation
from receiver.status import StationStatus
from receiver.storage import SORTS, STATUS_FILTERS, OverviewQuery

PER_PAGE = 100

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
    query = OverviewQuery(status=_choice("status", STATUS_FILTERS, "all"), prefix=request.args.get("q", "")[:64],
                          sort=_choice("sort", tuple(SORTS), "station"),
                          page=max(1, request.args.get("page", 1, type=int) or 1), per_page=PER_PAGE)
    silent_before = rx.silent_before()
    rows, total = rx.storage.overview(query, silent_before)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("overview.html", rows=rows, total=total, pages=pages, query=query,
                           summary=rx.storage.summary(silent_before), filters=STATUS_FILTERS, sorts=tuple(SORTS),
                           silent_minutes=int(rx.silent_after // 60), silent_before=silent_before,
                           condition=condition, now=rx.clock(), revoked_stations=registry.revoked_stations(),
                           revoked_keys=len(registry.revoked()))


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    return value if value in allowed else default


@bp.get("/stations/<path:station>")
def station(station: str) -> str:
    rx = receiver()
    status = rx.storage.status(station)
    if status is None:
        abort(404, f"station {station} is neither enrolled nor has it reported")
    registry = rx.registry()
    return render_template("station.html", status=status, devices=_devices(registry, station),
                           alarms=rx.storage.alarms(station), records=rx.storage.records_of(station),
                           conflicts=rx.storage.conflicts_of(station), rejections=rx.storage.rejections(station),
                           condition=condition(status, rx.silent_before()), now=rx.clock())


@dataclass(frozen=True)
class DeviceRow:
    """A device on the station page: its entry, its revocation and the stored records it signed beyond it."""

    entry: DeviceEntry
    revocation: Revocation | None
    beyond: list[int]


def _devices(registry: Registry, station: str) -> list[DeviceRow]:
    storage = receiver().storage
    rows = []
    for entry in registry.devices_of(station):
        revocation = registry.revocation_of(entry.key_id)
        beyond = storage.seqs_signed_by(station, entry.key_id, after=revocation.last_seq) if revocation else []
        rows.append(DeviceRow(entry, revocation, beyond))
    return rows
