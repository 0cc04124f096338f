"""The batch route answered in front of Flask (``receiver/batch_route.py``): the same answers as the JSON API."""

from __future__ import annotations

import http.client
import json

from flask import Flask
from flask.testing import FlaskClient
from rx_kit import BATCH, Setup, post, stored

from device.webserver import ServerThread
from protocol.batch import MAX_BYTES, encode_batch
from protocol.receipts import verify_receipt


def test_another_content_type_is_malformed_and_stores_nothing(app: Flask, client: FlaskClient, setup: Setup) -> None:
    reply = client.post("/api/v1/records", data=encode_batch(setup.units["KG-0001"].records(2)),
                        headers={"Content-Type": "text/plain; charset=utf-8"})
    assert reply.status_code == 400 and reply.mimetype == "application/json"
    assert reply.get_json() == {"error": "malformed", "receipt": None, "seq": None,
                                "reason": f"Content-Type must be {BATCH}, not text/plain"}
    assert stored(app) == (0, 0)


def test_a_content_type_with_parameters_is_still_a_batch(app: Flask, client: FlaskClient, setup: Setup) -> None:
    reply = post(client, setup.units["KG-0001"].records(2), **{"Content-Type": f"{BATCH.upper()}; v=1"})
    assert reply.status_code == 200 and reply.get_json()["accepted"] == 2


def test_a_body_beyond_the_request_limit_is_oversized_unread(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    reply = post(client, b"x" * (limit + 1))
    assert reply.status_code == 413
    assert reply.get_json()["error"] == "oversized" and str(MAX_BYTES) in reply.get_json()["reason"]
    assert stored(app) == (0, 0)


def test_another_method_is_refused_in_json(client: FlaskClient) -> None:
    reply = client.get("/api/v1/records")
    assert reply.status_code == 405 and reply.get_json()["error"] == "malformed"


def test_the_other_routes_still_go_to_flask(client: FlaskClient, setup: Setup) -> None:
    post(client, setup.units["KG-0001"].records(3))
    reply = client.get("/api/v1/records/KG-0001/2")
    assert reply.status_code == 200 and reply.get_json()["line"]
    assert client.get("/api/v1/records/KG-0001/9").status_code == 404


def test_a_chunked_batch_through_waitress_is_stored_and_receipted(app: Flask, setup: Setup) -> None:
    """Without a Content-Length (chunked transfer), the route reads to the end waitress marks."""
    import waitress.server

    body = encode_batch(setup.units["KG-0002"].records(4))
    with ServerThread(waitress.server.create_server(app, host="127.0.0.1", port=0, threads=2)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("POST", "/api/v1/records", body=iter([body[:100], body[100:]]),
                     headers={"Content-Type": BATCH}, encode_chunked=True)
        reply = conn.getresponse()
        doc = json.loads(reply.read())
        conn.close()
    assert reply.status == 200 and reply.getheader("Content-Type") == "application/json"
    assert doc["accepted"] == 4
    assert verify_receipt(doc["receipt"], setup.receiver_key.public_key(), "KG-0002") == 4
    assert stored(app) == (4, 4)
