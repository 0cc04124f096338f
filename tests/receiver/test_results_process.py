"""Open results and the verifier page from a real ``pollbox-receiver serve`` process (waitress), over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rx_kit import BATCH, Setup

from protocol.batch import encode_batch
from receiver.verifier_page import STATIC, TRUST_OPEN
from tests.process_station import free_port
from verifier.build import build

START_DEADLINE_S = 60.0  # how long the receiver process may take to answer its first request
POLL_S = 0.05


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.read(), dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            get(url)
            return
        except OSError:
            time.sleep(POLL_S)
    raise AssertionError(f"the receiver did not answer {url} within {START_DEADLINE_S} s")


def test_served_results_and_page(setup: Setup, tmp_path: Path) -> None:
    build(STATIC)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", *setup.cli_args(str(tmp_path / "rx.db")),
                             "--port", str(port), "--threads", "2", "--election-date", "2027-01-15",
                             "--election-name", "test election"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(base + "/api/v1/tree/head", proc)
        unit = setup.units["KG-0001"]
        records = [unit.record("polls_opened", {"identified": 0, "ballots": 0}),
                   unit.record("polls_closed", {"identified": 9, "ballots": 9, "difference": 0, "alarms_total": 0,
                                                "alarms_open": 0})]
        request = urllib.request.Request(base + "/api/v1/records", data=encode_batch(records),
                                         headers={"Content-Type": BATCH})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert json.loads(reply.read())["accepted"] == 2
        status, body, headers = get(base + "/api/v1/results")
        assert status == 200 and headers["Pollbox-Tree-Head"]
        rows = {r["station"]: r for r in json.loads(body)["stations"]}
        assert rows["KG-0001"]["ballots"] == 9 and rows["KG-0001"]["close_hash"] == records[1].hash
        status, proof, _ = get(rows["KG-0001"]["proof_url"])
        assert status == 200 and json.loads(proof)["leaf_index"] == 1
        status, csv_body, _ = get(base + "/api/v1/results.csv")
        assert status == 200 and csv_body.decode("utf-8").splitlines()[1].startswith("KG-0001,closed,")
        status, body, _ = get(base + "/api/v1/results/KG-0404")
        assert status == 404 and json.loads(body)["error"] == "not_found"
        status, page, _ = get(base + "/verify/")
        html = page.decode("utf-8")
        trust = json.loads(html[html.index(TRUST_OPEN) + len(TRUST_OPEN):].split("</script>", 1)[0])
        assert status == 200 and trust["election"]["date"] == "2027-01-15"
        status, cdf, _ = get(base + "/api/v1/results.cdf.json")
        assert json.loads(cdf)["Election"][0]["Name"]["Text"][0]["Content"] == "test election"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
