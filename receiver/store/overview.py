"""The overview's pages: filters, sorts, a station-id prefix, and keyset paging with signed page tokens.

Every filter shows live stations only, but ``training``, which shows the
training stations (``protocol/training.py``) and nothing else.

Every sort is (rank, station) ascending over a rank column kept in the
station's row (``ranks``), so one index serves both the order and the keyset
condition ``(rank, station) > (?, ?)``: a page is one index range however deep,
never an ``OFFSET``. A page token names the position a page ends (or starts)
at, authenticated with HMAC-SHA256 under a key kept in the database
(``PageTokens``), so a link made by one receiver process works on another and
nobody can forge a position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol.errors import UserError
from receiver.status import StationStatus
from receiver.store.db import POSTGRES, SQLITE, Database
from receiver.store.schema import STATUS_COLUMNS
from receiver.store.tallies import SILENT

LAST = 1e300  # the rank of a station with no value to sort by (never reported; turnout unknown): after all others


@dataclass(frozen=True)
class OverviewQuery:
    """Filters of the overview page; ``status`` is one of ``STATUS_FILTERS``, ``sort`` one of ``SORTS``.

    ``after`` (or ``before``) is a page token from an earlier page: the rows strictly after (before) that
    position in the sort order; neither means the first page.
    """

    status: str = "all"
    prefix: str = ""
    sort: str = "station"
    after: str = ""
    before: str = ""
    per_page: int = 100


@dataclass(frozen=True)
class Sort:
    """An overview order: by ``rank`` (a column of ``stations``, ascending) then station id, or by station id."""

    rank: str | None = None

    @property
    def key(self) -> str:
        return f"({self.rank}, station)" if self.rank else "station"

    @property
    def placeholder(self) -> str:
        return "(?, ?)" if self.rank else "?"

    def order(self, backward: bool) -> str:
        way = " DESC" if backward else ""
        return f"{self.rank}{way}, station{way}" if self.rank else f"station{way}"


STATUS_FILTERS = ("all", "reporting", "silent", "not_reported", "closed", "alarms", "training")
LIVE = "training = 0"  # every filter but ``training`` shows live stations only
SORTS = {"station": Sort(), "silent": Sort("silent_rank"), "alarms": Sort("alarms_rank"),
         "turnout": Sort("turnout_rank")}
MAX_TOKEN = 512


class PageTokenError(UserError, ValueError):
    """A page token that this receiver did not make, was altered, or belongs to another sort."""


@dataclass(frozen=True)
class Position:
    """Where a page starts or ends: the sort, the row's rank (None when sorting by station) and its station id."""

    sort: str
    rank: float | int | None
    station: str

    @property
    def values(self) -> list[Any]:
        return [self.station] if self.rank is None else [self.rank, self.station]


class PageTokens:
    """Opaque page tokens: a position, authenticated with HMAC-SHA256 under a key kept in the database.

    Every receiver process sharing the database shares the key, so a link made by one works on another.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"pollbox overview page\0" + payload, hashlib.sha256).digest()[:16]

    def make(self, position: Position) -> str:
        payload = json.dumps([position.sort, position.rank, position.station], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, token: str, sort: str) -> Position:
        """The position in ``token``; ``PageTokenError`` (one sentence) when it is malformed, altered or foreign."""
        if len(token) > MAX_TOKEN or token.count(".") != 1:
            raise PageTokenError("the page link is malformed (not a page token of this receiver)")
        body, mac = token.split(".")
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
            raise PageTokenError("the page link was altered or made by another receiver database")
        try:
            found_sort, rank, station = json.loads(payload)
        except (ValueError, TypeError):
            raise PageTokenError("the page link is malformed (not a page token of this receiver)") from None
        if found_sort != sort:
            raise PageTokenError(f"the page link belongs to the sort by {found_sort}, not by {sort}")
        return Position(sort, rank, station)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii() or not all(c.isalnum() or c in "-_" for c in text):
        raise PageTokenError("the page link is malformed (not a page token of this receiver)")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        data = None
    if data is None or _b64(data) != text:  # one spelling only: unused low bits must be zero
        raise PageTokenError("the page link is malformed (not a page token of this receiver)")
    return data



@dataclass(frozen=True)
class OverviewPage:
    """One page of the overview and the tokens of its neighbours (None when there is nothing that way)."""

    rows: list[StationStatus]
    next: str | None = None
    previous: str | None = None



def ranks(status: StationStatus) -> tuple[float, float, int]:
    """The station's sort keys (``RANK_COLUMNS``): all ascending, unknown values last."""
    turnout = status.turnout
    return (status.last_received if status.last_received is not None else LAST,
            -turnout if turnout is not None else LAST, -status.alarms_open)


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[low, high) holding exactly the strings starting with ``prefix`` in code point order (high None: no bound)."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return prefix, None
    following = ord(stem[-1]) + 1
    return prefix, stem[:-1] + chr(0xE000 if 0xD800 <= following <= 0xDFFF else following)


class Overview(Database):
    """The overview's reads: one station's row, a page of stations, a bounded count."""

    tokens: PageTokens

    def status(self, station: str) -> StationStatus | None:
        row = self._q(f"SELECT {', '.join(STATUS_COLUMNS)} FROM stations WHERE station = ?", (station,)).fetchone()
        return StationStatus(*row) if row else None

    def overview(self, query: OverviewQuery, silent_before: float) -> OverviewPage:
        """One page of stations matching ``query``, in its sort order, from its position on.

        Keyset pagination: the page is the next ``per_page`` rows strictly after (before) the token's position,
        one index range however deep the page, and no row appears twice on a page. ``PageTokenError`` for a
        token this receiver did not make for this sort.
        """
        sort, position, backward = self._where_from(query)
        rows = list(self._q(*self._page_sql(query, silent_before, sort, position, backward)).fetchall())
        more = len(rows) > query.per_page
        rows = rows[:query.per_page][::-1] if backward else rows[:query.per_page]
        statuses = [StationStatus(*row[:len(STATUS_COLUMNS)]) for row in rows]
        first = self._position(query.sort, sort, rows[0]) if rows else position
        last = self._position(query.sort, sort, rows[-1]) if rows else position
        has_next = more if not backward else last is not None and self._beyond(query, silent_before, sort, last, False)
        has_previous = more if backward else first is not None and position is not None and self._beyond(
            query, silent_before, sort, first, True)
        return OverviewPage(statuses, self.tokens.make(last) if has_next and last else None,
                            self.tokens.make(first) if has_previous and first else None)

    def _where_from(self, query: OverviewQuery) -> tuple[Sort, Position | None, bool]:
        """The query's sort, the position its token names (None: the first page) and whether it pages backward."""
        token = query.after or query.before
        position = self.tokens.read(token, query.sort) if token else None
        return SORTS.get(query.sort, SORTS["station"]), position, bool(query.before) and not query.after

    def _page_sql(self, query: OverviewQuery, silent_before: float, sort: Sort, position: Position | None,
                  backward: bool) -> tuple[str, list[Any]]:
        where, params = self._where(query, silent_before, page=True)
        if position is not None:
            where += f" AND {sort.key} {'<' if backward else '>'} {sort.placeholder}"
            params += position.values
        return (f"SELECT {', '.join(STATUS_COLUMNS)}, {sort.rank or 'NULL'} FROM stations WHERE {where} "
                f"ORDER BY {sort.order(backward)} LIMIT ?", [*params, query.per_page + 1])

    def overview_plan(self, query: OverviewQuery, silent_before: float) -> str:
        """The database's plan for one overview page (``EXPLAIN``), to check that it is an index range."""
        sql, params = self._page_sql(query, silent_before, *self._where_from(query))
        explain = "EXPLAIN QUERY PLAN " if self.dialect is SQLITE else "EXPLAIN "
        return "\n".join(" ".join(str(c) for c in row) for row in self._q(explain + sql, params).fetchall())

    @staticmethod
    def _position(name: str, sort: Sort, row: Sequence[Any]) -> Position:
        return Position(name, row[-1] if sort.rank else None, str(row[0]))

    def _beyond(self, query: OverviewQuery, silent_before: float, sort: Sort, position: Position,
                backward: bool) -> bool:
        """Whether any matching station lies after (before) ``position``: one index probe."""
        where, params = self._where(query, silent_before, page=True)
        sql = (f"SELECT 1 FROM stations WHERE {where} AND {sort.key} {'<' if backward else '>'} {sort.placeholder} "
               f"ORDER BY {sort.order(backward)} LIMIT 1")
        return self._q(sql, [*params, *position.values]).fetchone() is not None

    def _where(self, query: OverviewQuery, silent_before: float, page: bool = False) -> tuple[str, list[Any]]:
        """The filter's condition; for a page on SQLite, ``+last_received`` keeps the planner on the sort's index
        (with statistics it would otherwise take the voting stations' index and sort every silent one)."""
        clauses = {"all": LIVE, "not_reported": f"highest_seq = 0 AND {LIVE}",
                   "closed": f"phase = 'closed' AND {LIVE}", "alarms": f"alarms_open > 0 AND {LIVE}", "silent": SILENT,
                   "reporting": f"highest_seq > 0 AND phase <> 'closed' AND last_received >= ? AND {LIVE}",
                   "training": "training = 1"}
        clause = clauses.get(query.status, LIVE)
        if page and self.dialect is SQLITE:
            clause = clause.replace("last_received", "+last_received")
        params: list[Any] = [silent_before] if "?" in clause else []
        if query.prefix:
            prefix_clause, prefix_params = self._prefix(query.prefix)
            clause, params = f"{clause} AND {prefix_clause}", params + prefix_params
        return clause, params

    def _prefix(self, prefix: str) -> tuple[str, list[Any]]:
        """Station ids starting with ``prefix`` (case-sensitive), as an index range on both databases."""
        if self.dialect is POSTGRES:  # LIKE 'p%' becomes a range of the text_pattern_ops index
            return "station LIKE ? ESCAPE '!'", [_like_prefix(prefix)]
        low, high = prefix_range(prefix)  # SQLite compares station ids by code point: a range of the primary key
        return ("station >= ?", [low]) if high is None else ("station >= ? AND station < ?", [low, high])

    def count_matching(self, query: OverviewQuery, silent_before: float, cap: int) -> int | None:
        """Stations matching ``query`` (prefix included), reading at most ``cap`` rows; None when there are more.

        The status filter is applied to the rows of the prefix's range only, so the work is bounded by ``cap``.
        """
        prefix_clause, params = self._prefix(query.prefix) if query.prefix else ("1 = 1", [])
        status_clause, status_params = self._where(replace(query, prefix=""), silent_before)
        row = self._q(f"SELECT COUNT(*), SUM(CASE WHEN {status_clause} THEN 1 ELSE 0 END) FROM "
                      f"(SELECT * FROM stations WHERE {prefix_clause} LIMIT ?) AS within",
                      [*status_params, *params, cap + 1]).fetchone()
        return None if int(row[0]) > cap else int(row[1] or 0)


def _like_escape(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _like_prefix(prefix: str) -> str:
    return _like_escape(prefix) + "%"
