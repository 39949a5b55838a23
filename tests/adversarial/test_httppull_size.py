"""A hostile or broken API answering the HTTP pull connector (``ingest/httppull.py``) with a
huge body, or a small compressed one that expands (a decompression bomb).

Before: the connector read the whole body (``resp.read()``; httpx undoes ``Content-Encoding:
gzip`` on the way) and parsed it, so 80 KB on the wire became 80 MiB in memory, and more
without bound. Now the body is counted as it is decoded and the run fails past
``max_response_bytes`` (64 MiB by default) with nothing ingested.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from hub.bootstrap import Hub
from ingest.httppull import ConnectorFailed, HttpPullConfig, HttpPullConnector
from tests.adversarial._api import JsonAnswer, serve_local

PAD = 80 * 1024 * 1024  # decoded size of the bomb: more than the 64 MiB default


@cache
def _bomb() -> bytes:
    """A gzip body of well-formed JSON (an empty page and 80 MiB of padding), about 80 KB."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = [z.compress(b'{"data": [], "next_cursor": null, "pad": "')]
    block = b"0" * (1024 * 1024)
    out += [z.compress(block) for _ in range(PAD // len(block))]
    out += [z.compress(b'"}'), z.flush()]
    return b"".join(out)


class _Api(JsonAnswer):
    def do_GET(self) -> None:
        if self.path.startswith("/bomb"):
            self.answer(_bomb(), ("Content-Encoding", "gzip"))
        else:
            self.answer(json.dumps({"data": [{"n": 1}], "next_cursor": None}).encode())


@pytest.fixture
def local() -> Iterator[int]:
    yield from serve_local(_Api)


def _run(hub: Hub, url: str, **kw: Any) -> Any:
    cfg = HttpPullConfig(
        name="big", url=url, topic="trades", max_retries=0, allow_private_network=True, **kw
    )
    return HttpPullConnector(hub.ingest, cfg, sleep=lambda s: None).run()


def test_a_decompression_bomb_is_refused_at_the_limit(hub: Hub, local: int) -> None:
    assert len(_bomb()) < 200_000  # what travels: under 200 KB
    before = hub.log.end_offsets("trades")
    with pytest.raises(ConnectorFailed, match=r"more than 67108864 bytes.*decompression"):
        _run(hub, f"http://127.0.0.1:{local}/bomb")
    assert hub.log.end_offsets("trades") == before


def test_a_plain_body_over_a_configured_limit_is_refused(hub: Hub, local: int) -> None:
    with pytest.raises(ConnectorFailed, match="more than 10 bytes"):
        _run(hub, f"http://127.0.0.1:{local}/page", max_response_bytes=10)
