"""Ask the kiosk's Chromium, inside a test copy of the image, to evaluate a JavaScript expression.

Copied into the guest by ``test_kiosk`` and run with the guest's own ``python3`` (the standard library
only: the image has no WebSocket client). It speaks the DevTools protocol on 127.0.0.1:9222, a port
the kiosk's browser opens only in the test (a runtime drop-in adds ``--remote-debugging-port`` through
``CHROMIUM_FLAGS``, which Debian's ``/usr/bin/chromium`` passes on); the image itself never opens it.

    python3 cdp_guest.py EXPRESSION     prints {"url": the page's address, "value": the result}
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import sys
import urllib.request

PORT = 9222
TIMEOUT = 60.0


def page_socket() -> tuple[str, str]:
    """(the page's address, its DevTools WebSocket path) of the kiosk's one page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/json/list", timeout=TIMEOUT) as answer:
        targets = json.load(answer)
    pages = [t for t in targets if t.get("type") == "page"]
    if len(pages) != 1:
        raise SystemExit(f"expected the kiosk's one page, found {[t.get('url') for t in pages]}")
    url = pages[0]["webSocketDebuggerUrl"]
    return pages[0]["url"], url.split(f":{PORT}", 1)[1]


def frame(payload: bytes) -> bytes:
    """One masked text frame (a client's frames are masked, RFC 6455 section 5.3)."""
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise SystemExit("the browser closed the DevTools connection")
        data += chunk
    return data


def read_message(conn: socket.socket) -> bytes:
    """The next whole message (continuation frames joined; the server's frames are not masked)."""
    message = b""
    while True:
        first, second = read_exact(conn, 2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack(">H", read_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read_exact(conn, 8))[0]
        message += read_exact(conn, n)
        if first & 0x80:
            return message


def evaluate(expression: str) -> dict[str, object]:
    url, path = page_socket()
    with socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT) as conn:
        key = base64.b64encode(os.urandom(16)).decode()
        conn.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += read_exact(conn, 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"the browser refused the DevTools connection: {head.decode(errors='replace')}")
        request = {"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}}
        conn.sendall(frame(json.dumps(request).encode()))
        while True:
            answer = json.loads(read_message(conn))
            if answer.get("id") == 1:
                break
    if "error" in answer or "exceptionDetails" in answer.get("result", {}):
        raise SystemExit(f"the page could not evaluate {expression!r}: {answer}")
    return {"url": url, "value": answer["result"]["result"].get("value")}


if __name__ == "__main__":
    print(json.dumps(evaluate(sys.argv[1])))
