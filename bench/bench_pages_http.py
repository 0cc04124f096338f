"""The receiver's overview and station pages as a CEC operator gets them: full HTTP requests through waitress.

``pollbox-receiver serve`` runs in its own process on a database of 1,000,
100,000 and 1,000,000 stations (quick: 1,000 and 20,000), filled straight
into the stations table the way ``bench_receiver``'s overview benchmark does
(the status of every station an hour after close of polls). One kept-alive
client asks each page in turn; the figure is the median wall time of the
whole request (routing, queries, template, response). The baseline, in the
same server and the same run, is the signed tree head (``/api/v1/tree/head``),
the cheapest route that reads the database: what any request costs before
the page's own work.

Pages: the overview's first page by station, the overview's rarest filter in
another order (stations with open alarms by turnout), a page halfway down
(reached with the page token the overview hands out), and one station's page.
"""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench.bench_ingest_http import Served, _files
from bench.bench_receiver import _fleet, fill

REQUESTS = 25
"""Requests per page; the median is reported."""
SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 20_000)
NEXT_LINK = re.compile(r'href="(/\?[^"]*after=[^"]+)"')


def run(quick: bool = False) -> list[dict[str, Any]]:
    keys, _ = _fleet(2, 1)
    results: list[dict[str, Any]] = []
    for count in QUICK_SIZES if quick else SIZES:
        directory = Path(tempfile.mkdtemp(prefix="pollbox-bench-pages-"))
        try:
            storage, seconds = fill(str(directory / "pages.db"), count)
            storage.close()
            print(f"   pages_http: {count} stations written in {seconds:.1f} s", flush=True)
            with Served([*_files(directory, keys), "--db", str(directory / "pages.db")]) as url:
                results.extend(_pages(url, count))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return results


def _label(count: int) -> str:
    return f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"


def _pages(url: str, count: int) -> list[dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        baseline = _median(conn, "/api/v1/tree/head")
        middle = _halfway(conn, count)
        pages = {
            "overview first page by station": "/",
            "overview stations with open alarms by turnout": "/?status=alarms&sort=turnout",
            "overview a page halfway down": middle,
            "station page": f"/stations/KG-{count // 2:07d}",
        }
        rows = []
        for what, path in pages.items():
            value = _median(conn, path)
            rows.append({"name": f"receiver page over HTTP, {_label(count)} stations: {what} "
                                 "(vs signed tree head over HTTP)",
                         "value": round(value, 2), "unit": "ms", "baseline": round(baseline, 2),
                         "ratio": round(value / baseline, 3)})
        return rows
    finally:
        conn.close()


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    reply = conn.getresponse()
    body = reply.read()
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {reply.status}: {body[:200]!r}")
    return body


def _median(conn: http.client.HTTPConnection, path: str) -> float:
    _get(conn, path)  # templates compiled, caches warm
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        _get(conn, path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _halfway(conn: http.client.HTTPConnection, count: int) -> str:
    """The overview page about halfway down, followed by its 'next' links (not timed) at large strides.

    The overview hands out keyset page tokens only through its links, so the
    benchmark follows them like an operator would, but jumps: it asks the
    first page by station with a station id prefix that starts halfway down,
    then takes the token of that page's 'next' link and asks the unfiltered
    overview from there: a page halfway down the whole list.
    """
    body = _get(conn, f"/?q=KG-{count // 2 // 1000:04d}").decode()
    found = NEXT_LINK.search(body)
    if found is None:
        raise RuntimeError("the overview page has no 'next' link")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(found.group(1).replace("&amp;", "&")).query)
    return "/?" + urllib.parse.urlencode({"status": "all", "sort": "station", "after": query["after"][0]})


if __name__ == "__main__":
    for entry in run(quick=True):
        print(entry)
