"""s21 red team of s20 (inputs): a publisher cannot send the hub's dedupe header.

After a restart, the ingest dedupe windows are rebuilt from the topic's tail by reading the
``hub-natural-key`` header the hub stamps on each record (``<rule id>\\x1f<key>``), scoped by
the record's tenant (``ingest.dedupe``). The reserved-header check covers ``ce_*``, ``hub_*``,
``content-type`` and ``__hub.*`` but not this name: a publisher's own ``hub-natural-key`` was
stored, and after the next restart its keys counted as seen in its tenant's window, so another
publisher of the tenant had those business keys answered as duplicates (never stored) with no
such record on the log. Now the header is the hub's, refused like the others.
"""

from __future__ import annotations

from ingest.dedupe import NK_HEADER
from ingest.publish import reserved_header
from tests.adversarial._api import Api


def test_the_natural_key_header_is_reserved(api: Api) -> None:
    value = {"trade_id": "H-1", "account_id": "ACC-1", "instrument": "AAPL", "side": "BUY"}
    value |= {"quantity": "1", "price": "1", "currency": "USD"}
    value |= {"executed_at": "2026-12-06T00:00:00Z"}
    for name in (NK_HEADER, "HUB-Natural-Key"):
        body = {"events": [{"value": value, "headers": {name: "trade.id\x1fT-999"}}]}
        r = api.client.post("/v1/topics/trades/events", json=body, headers=api.as_role("publisher"))
        assert r.status_code == 422, r.text  # before: 201, stored with the forged header
        assert r.json()["reason"] == "reserved_header", r.text
    assert reserved_header(NK_HEADER) and not reserved_header("hub-note")
