"""The receiver serves the verifier page (``/verify/``) with its own trust snapshot, its assets and a poster."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup

from protocol.keys import public_b64
from receiver import verifier_page
from receiver.verifier_page import TRUST_OPEN, election_window, with_trust
from verifier.build import BUDGET, BuildError, _inline_script, build

PAGE = '<html><script id="pollbox-trust" type="application/json">null</script><script>x</script></html>'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verifier-page")
    sizes = build(out)
    assert sizes["verify.html"] <= BUDGET
    return out


@pytest.fixture
def served(built: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(verifier_page, "STATIC", built)
    return built


def trust_of(html: str) -> dict[str, object]:
    start = html.index(TRUST_OPEN) + len(TRUST_OPEN)
    return dict(json.loads(html[start:html.index("</script>", start)]))


def test_page_carries_this_receivers_registry_and_keys(served: Path, app: Flask, client: FlaskClient,
                                                       setup: Setup) -> None:
    assert client.get("/verify").status_code == 308
    response = client.get("/verify/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    trust = trust_of(response.get_data(as_text=True))
    assert trust["registry"] == client.get("/api/v1/registry").get_data(as_text=True)
    assert trust["cec_key"] == public_b64(setup.cec.public_key())
    assert trust["receiver_key"] == public_b64(setup.receiver_key.public_key())
    assert trust["election"] is None
    html = response.get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must load nothing from elsewhere"
    sw = client.get("/verify/verify-sw.js")
    assert sw.status_code == 200 and sw.mimetype == "text/javascript" and "/api/" in sw.get_data(as_text=True)
    manifest = client.get("/verify/verify.webmanifest")
    assert manifest.mimetype == "application/manifest+json" and json.loads(manifest.get_data())["scope"] == "./"
    assert client.get("/verify/verify-icon.svg").mimetype == "image/svg+xml"
    assert client.get("/verify/receiver.css").status_code == 404


def test_election_day_in_the_snapshot(served: Path, setup: Setup, db_url: str, clock: object) -> None:
    from receiver.app import create_app
    config = setup.config(db_url, clock) | {"ELECTION_DATE": "2027-01-15", "ELECTION_NAME": "Жогорку Кеңеш"}
    app = create_app(config)
    try:
        trust = trust_of(app.test_client().get("/verify/").get_data(as_text=True))
        assert trust["election"] == {"name": "Жогорку Кеңеш", "date": "2027-01-15", "timezone": "Asia/Bishkek",
                                     "from": "2027-01-14T18:00:00.000000Z", "to": "2027-01-16T18:00:00.000000Z"}
    finally:
        app.extensions["pollbox_receiver"].storage.close()


def test_not_built_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: Flask, client: FlaskClient) -> None:
    monkeypatch.setattr(verifier_page, "STATIC", tmp_path)
    response = client.get("/verify/")
    assert response.status_code == 404 and "python -m verifier.build" in response.get_data(as_text=True)
    assert client.get("/verify/verify-sw.js").status_code == 404


def test_poster_points_at_the_page(app: Flask, client: FlaskClient) -> None:
    import io

    import zxingcpp
    from PIL import Image
    html = client.get("/verify/poster").get_data(as_text=True)
    assert "http://localhost/verify/" in html and "<svg" in html
    for sentence in ("Санакты телефон менен текшериңиз", "Проверьте подсчёт телефоном", "Check the count"):
        assert sentence in html
    import segno
    matrix = segno.make("http://localhost/verify/", error="m")
    buffer = io.BytesIO()
    matrix.save(buffer, kind="png", scale=4)
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(buffer.getvalue())))
    assert [r.text for r in found] == ["http://localhost/verify/"]
    assert matrix.svg_inline(scale=10, border=4, omitsize=True) in html


def test_trust_cannot_close_the_script() -> None:
    html = with_trust(PAGE, {"registry": "</script><script>alert(1)</script>"})
    assert html.count("</script>") == 2 and trust_of(html)["registry"] == "</script><script>alert(1)</script>"
    with pytest.raises(BuildError):
        _inline_script("var a = '</SCRIPT>';")


def test_election_window_follows_the_zone() -> None:
    window = election_window("x", "2027-07-01", "Europe/Moscow")
    assert (window["from"], window["to"]) == ("2027-06-30T21:00:00.000000Z", "2027-07-02T21:00:00.000000Z")


def test_a_bad_election_day_or_zone_stops_the_start(setup: Setup, db_url: str, clock: object) -> None:
    from receiver.app import create_app
    from receiver.service import ReceiverConfigError
    for extra, words in (({"ELECTION_DATE": "2027-13-01"}, "YYYY-MM-DD"),
                         ({"ELECTION_DATE": "2027-01-15", "ELECTION_TIMEZONE": "Mars/Olympus"}, "IANA zone")):
        with pytest.raises(ReceiverConfigError, match=words):
            create_app(setup.config(db_url, clock) | extra)


def test_public_reads_are_open_to_a_page_opened_from_a_file(app: Flask, client: FlaskClient) -> None:
    for path in ("/api/v1/registry", "/api/v1/tree/head", "/api/v1/results", "/api/v1/records/KG-0001/1"):
        assert client.get(path).headers.get("Access-Control-Allow-Origin") == "*", path
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/stations/KG-0001/receipt").headers
    assert "Access-Control-Allow-Origin" not in client.post("/api/v1/records", data=b"").headers
