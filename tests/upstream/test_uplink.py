"""The HTTPS uplink: CA pinning, host name checks, plain HTTP rules, and how answers are classified."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from upstream_tls import make_ca, server_context

from device.upstream.switchable import SwitchableUplink
from device.upstream.uplink import (
    HttpUplink,
    LinkDown,
    ReceiverTrouble,
    UplinkConfigError,
    check_url,
    pinned_context,
)


class Canned(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: list[tuple[int, str, bytes]] = []
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers), body))
        status, ctype, payload = self.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def canned_server(tmp_path: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Iterator[tuple[str, int]]:
    """An HTTPS server with canned answers; yields (its CA as PEM, its port)."""
    ca = make_ca()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    server.socket = server_context(ca, tmp_path / "tls", names).wrap_socket(server.socket, server_side=True)
    Canned.answers, Canned.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ca.pem, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ca_and_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    with canned_server(tmp_path) as found:
        yield found


def answer(status: int, doc: object, ctype: str = "application/json") -> None:
    Canned.answers.append((status, ctype, json.dumps(doc).encode() if not isinstance(doc, bytes) else doc))


def test_pinned_https_posts_a_gzip_batch_and_reuses_the_connection(ca_and_server: tuple[str, int]) -> None:
    pem, port = ca_and_server
    uplink = HttpUplink(url=f"https://localhost:{port}/cec", station="KG 1/2", mode="production", ca_pem=pem)
    answer(200, {"receipt": "r", "accepted": 2, "duplicates": 1})
    answer(200, {"receipt": None})
    reply = uplink.send(b"line one\nline two")
    probe = uplink.probe()
    uplink.close()
    assert (reply.ok, reply.receipt, reply.accepted, reply.duplicates) == (True, "r", 2, 1)
    assert probe.receipt is None
    (method, path, headers, body), (gmethod, gpath, _, _) = Canned.seen
    assert (method, path, gmethod, gpath) == ("POST", "/cec/api/v1/records", "GET",
                                              "/cec/api/v1/stations/KG%201%2F2/receipt")
    assert headers["Content-Type"] == "application/x-pollbox-batch" and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"line one\nline two"


def test_a_certificate_from_another_ca_is_not_trusted(ca_and_server: tuple[str, int]) -> None:
    _, port = ca_and_server
    uplink = HttpUplink(url=f"https://localhost:{port}", station="S", mode="production", ca_pem=make_ca().pem)
    with pytest.raises(LinkDown, match="not trusted"):
        uplink.send(b"x")
    assert Canned.seen == []


def test_the_host_name_must_match_the_certificate(tmp_path: Path) -> None:
    with canned_server(tmp_path, names=("receiver.cec.example",)) as (pem, port):
        uplink = HttpUplink(url=f"https://localhost:{port}", station="S", mode="production", ca_pem=pem)
        with pytest.raises(LinkDown, match="not trusted: Hostname mismatch"):
            uplink.send(b"x")
        assert Canned.seen == []


def test_refusals_come_back_as_replies_and_server_trouble_as_errors(ca_and_server: tuple[str, int]) -> None:
    pem, port = ca_and_server
    uplink = HttpUplink(url=f"https://localhost:{port}", station="S", mode="production", ca_pem=pem)
    answer(409, {"error": "gap", "reason": "first record 9 follows 4", "seq": 9, "receipt": "r4"})
    answer(503, {"error": "unavailable", "reason": "db"})
    answer(200, b"<html>proxy page</html>", "text/html")
    answer(404, [1, 2])
    refused = uplink.send(b"x")
    assert (refused.ok, refused.error, refused.seq, refused.receipt) == (False, "gap", 9, "r4")
    with pytest.raises(ReceiverTrouble, match="HTTP 503"):
        uplink.send(b"x")
    with pytest.raises(ReceiverTrouble, match="without the protocol's JSON"):
        uplink.send(b"x")
    with pytest.raises(ReceiverTrouble, match="not an object"):
        uplink.send(b"x")
    uplink.close()


def test_nobody_listening_is_a_dead_link() -> None:
    uplink = HttpUplink(url="http://127.0.0.1:9", station="S", mode="simulation", timeout=2.0)
    with pytest.raises(LinkDown, match="no answer from the receiver"):
        uplink.probe()


@pytest.mark.parametrize("url, mode, message", [
    ("http://127.0.0.1:8080", "production", "plain HTTP"),
    ("http://receiver.cec.kg", "simulation", "plain HTTP"),
    ("ftp://127.0.0.1", "simulation", "must be https"),
    ("https://", "production", "must be https"),
    ("https://cec.kg:99999", "production", "invalid port"),
])
def test_receiver_urls_that_are_not_allowed(url: str, mode: str, message: str) -> None:
    with pytest.raises(UplinkConfigError, match=message):
        check_url(url, mode)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.3.4.5"])
def test_plain_http_on_loopback_is_fine_in_simulation(host: str) -> None:
    assert check_url(f"http://{host}:8000/x/", "simulation").base_path == "/x"


def test_https_needs_a_usable_ca_from_the_package() -> None:
    with pytest.raises(UplinkConfigError, match="no receiver CA"):
        HttpUplink(url="https://cec.kg", station="S", mode="production", ca_pem=None)
    with pytest.raises(UplinkConfigError, match="unusable"):
        pinned_context("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    context = pinned_context(make_ca().pem)
    assert context.check_hostname and len(context.get_ca_certs()) == 1


def test_from_package_reads_the_receiver_section() -> None:
    pem = make_ca().pem
    uplink = HttpUplink.from_package({"receiver": {"url": "https://cec.kg/in", "ca_pem": pem}}, station="S",
                                     mode="production")
    assert (uplink.target.host, uplink.target.base_path) == ("cec.kg", "/in")
    with pytest.raises(UplinkConfigError, match="no receiver.url"):
        HttpUplink.from_package({}, station="S", mode="production")


def test_switchable_link_cuts_and_restores_and_exists_only_in_simulation() -> None:
    inner = HttpUplink(url="http://127.0.0.1:9", station="S", mode="simulation", timeout=1.0)
    switch = SwitchableUplink(inner, mode="simulation")
    switch.cut_link()
    with pytest.raises(LinkDown, match="cut"):
        switch.send(b"x")
    switch.restore_link()
    with pytest.raises(LinkDown, match="no answer"):
        switch.probe()
    with pytest.raises(ValueError, match="simulation"):
        SwitchableUplink(inner, mode="production")
