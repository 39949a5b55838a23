"""SSRF attacks on the HTTP pull connector (``ingest/httppull.py``).

A pull source is configured by whoever holds ``ingest.connector`` and writes the connector YAML.
The rule under test: only ``http``/``https`` URLs; every address the host resolves to, and the
address actually connected to, must be public unless the config sets
``allow_private_network: true`` (loopback and private ranges only: link-local, which holds the
cloud metadata service, stays refused); redirects are never followed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from hub.bootstrap import Hub
from ingest.httppull import HttpPullConfig, HttpPullConnector, UnsafeSource
from tests.adversarial._api import serve_local


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = json.dumps({"data": [{"secret": "internal"}], "next_cursor": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local() -> Iterator[int]:
    yield from serve_local(_Api)


def _run(hub: Hub, url: str, **kw: Any) -> Any:
    cfg = HttpPullConfig(name="ssrf", url=url, topic="trades", max_retries=0, **kw)
    return HttpPullConnector(hub.ingest, cfg, sleep=lambda s: None).run()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://127.0.0.1:6379/_x",
        "http:///nohost",
    ],
)
def test_non_http_urls_are_refused_before_any_fetch(hub: Hub, url: str) -> None:
    with pytest.raises(UnsafeSource, match="http or https"):
        _run(hub, url)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",
    ],
)
def test_internal_addresses_are_refused_by_default(hub: Hub, host: str) -> None:
    with pytest.raises(UnsafeSource, match=r"allow_private_network|never may be"):
        _run(hub, f"http://{host}:1/x")


def test_local_source_needs_the_explicit_opt_in(hub: Hub, local: int) -> None:
    with pytest.raises(UnsafeSource, match=r"127\.0\.0\.1"):
        _run(hub, f"http://127.0.0.1:{local}/x")
    result = _run(hub, f"http://127.0.0.1:{local}/x", allow_private_network=True)
    assert result.accepted + result.rejected == 1  # fetched (the record is no valid trade)


def test_metadata_service_stays_refused_even_with_the_opt_in(hub: Hub) -> None:
    with pytest.raises(UnsafeSource, match="link-local"):
        _run(hub, "http://169.254.169.254/latest/meta-data/", allow_private_network=True)


def test_redirects_are_not_followed(hub: Hub, local: int) -> None:
    with pytest.raises(UnsafeSource, match="redirect"):
        _run(hub, f"http://127.0.0.1:{local}/redirect", allow_private_network=True)


def test_dns_rebinding_is_caught_at_the_connected_address(
    hub: Hub, local: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's lookup says public, the connection lands on loopback: refused, nothing kept."""
    real = socket.getaddrinfo
    calls = {"n": 0}

    def rebinding(host: Any, *args: Any, **kw: Any) -> Any:
        if host == "rebind.example":
            calls["n"] += 1
            if calls["n"] == 1:  # the hub's own check
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]
            return real("127.0.0.1", *args, **kw)  # the connection
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(UnsafeSource, match=r"connected to 127\.0\.0\.1"):
        _run(hub, f"http://rebind.example:{local}/x")
    assert hub.ingest.positions.get("http:ssrf") is None
