"""The cross-site form of ``test_s22_rtweb_api_csrf`` in a real Chromium against ``hub serve``.

The browser opens an API path with the admin's key (it keeps the Basic credentials, as after the
docs page's prompt), then a page of another origin submits a ``text/plain`` form whose body is
JSON to ``/v1/ingest/quotes``. Before session 22 the quote was accepted and ledger-covered in the
admin's name (the browser did send the credentials); now the answer is 403 ``csrf`` and the
topic's offsets do not move. Skips without chromium (``make browser-deps``), as tests/browser.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.browser.conftest import Server, chromium, console_server

__all__ = ["chromium", "console_server"]

QUOTE = {
    "instrument": "AAPL",
    "venue": "XNAS",
    "bid": "1",
    "ask": "2",
    "bid_size": "1",
    "ask_size": "1",
    "currency": "USD",
    "quoted_at": "2026-12-05T21:00:00Z",
}


@pytest.fixture
def attacker(console_server: Server) -> Iterator[str]:
    """A page on another origin (localhost, not 127.0.0.1) that submits the forged form."""
    name = json.dumps({"events": [QUOTE]})[:-1] + ',"pad":"'  # + "=" + value: valid JSON
    page = (
        "<!doctype html><form id=f method=post enctype=text/plain "
        f'action="{console_server.url}/v1/ingest/quotes">'
        f"<input name='{html.escape(name)}' value='\"}}'></form>"
        "<script>document.getElementById('f').submit()</script>"
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()


def _offsets(server: Server) -> dict[str, int]:
    topics = server.api("GET", "/v1/topics").json()
    return next(t["end_offsets"] for t in topics if t["name"] == "quotes")


def test_a_cross_site_form_with_the_browsers_basic_credentials_is_refused(
    console_server: Server, chromium: Any, attacker: str
) -> None:
    key_id, secret = console_server.admin_key.split(":", 1)
    host = console_server.url.removeprefix("http://")
    chromium.get(f"http://{key_id}:{secret}@{host}/v1/whoami")  # the browser keeps the key
    assert '"principal"' in chromium.find_element("tag name", "body").text
    before = _offsets(console_server)
    chromium.get(attacker)
    deadline = time.monotonic() + 20
    while "/v1/ingest/quotes" not in chromium.current_url and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = chromium.find_element("tag name", "body").text
    assert '"csrf"' in answer, answer  # the credentials were sent: not a 401
    assert _offsets(console_server) == before
