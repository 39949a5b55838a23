"""A request body with a ``Content-Encoding`` the hub does not undo is refused whole (s20).

The hub never decoded ``Content-Encoding``; it read the bytes as sent. A gzip NDJSON body to
``POST /v1/ingest/<topic>`` was split at every 0x0a byte of the compressed stream and each piece
quarantined as ``not_utf8`` (200, 0 accepted): the client's records were shredded into pieces no
replay can put together. A plain body labelled ``gzip`` was ingested, so the hub and anything
between it and the client (a proxy, a capture) read different contents. Now any encoding but
``identity`` is answered 415 ``unsupported_encoding`` before a route reads the body; nothing is
stored or quarantined.
"""

from __future__ import annotations

import gzip
import json

import pytest

from ingest import quarantine
from tests.adversarial._api import Api

SCHEMA = {"type": "record", "name": "G", "fields": [{"name": "s", "type": "string"}]}
LINES = b"".join(json.dumps({"s": f"v{i}"}).encode() + b"\n" for i in range(50))


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", gzip.compress(LINES)), ("gzip", LINES), ("br", LINES), ("identity, gzip", LINES)],
)
def test_an_encoded_body_is_refused_whole(api: Api, encoding: str, body: bytes) -> None:
    api.topic("enc", SCHEMA)
    headers = {**api.admin, "Content-Type": "application/x-ndjson", "Content-Encoding": encoding}
    r = api.client.post("/v1/ingest/enc", content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["reason"] == "unsupported_encoding" and encoding in r.json()["message"]
    assert sum(api.hub.log.end_offsets("enc").values()) == 0
    assert quarantine.entries(api.hub.ingest) == []


def test_identity_is_read_as_before(api: Api) -> None:
    api.topic("enc.id", SCHEMA)
    headers = {**api.admin, "Content-Type": "application/x-ndjson", "Content-Encoding": "identity"}
    r = api.client.post("/v1/ingest/enc.id", content=LINES, headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == 50, r.text
