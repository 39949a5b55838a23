"""A publisher's own header named like the Kafka log's (``__hub.tmac``, ``__hub.mac``, ...).

Left open by session 18's tenant-MAC work: the publish check reserved the envelope names
(``ce_*``, ``hub_*``, ``content-type``) but not the log's ``__hub.*`` headers. A caller's
``__hub.tmac`` is stored before the hub's own tenant MAC; Flink hands a job the headers as a
map, so which copy a job reads depends on the connector, and a log without a tenant key keeps
the caller's as the only one. Every such name is now refused on publish, naming it, whatever its
case; nothing is stored. (Only the HTTP publish carries caller headers: file, CLI and Kafka
ingest records are built by the pipeline, which writes no caller header.)
"""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from ingest.publish import reserved_header
from tests.service.accounts import account_opened

from ._api import Api

NOW = "2026-11-25T10:00:00Z"
TRADE = {
    "trade_id": "T1",
    "account_id": "A1",
    "instrument": "XS0001",
    "side": "BUY",
    "quantity": "100",
    "price": "101.25",
    "currency": "EUR",
    "executed_at": NOW,
}
LOG_NAMES = ("__hub.tmac", "__hub.mac", "__HUB.Idem", "__hub.next")


def test_a_publisher_cannot_set_the_logs_own_headers(api: Api) -> None:
    publisher = api.as_role("publisher")
    end = dict(api.hub.log.end_offsets("trades"))
    for name in LOG_NAMES:
        r = api.client.post(
            "/v1/topics/trades/events",
            json={"events": [{"value": TRADE, "key": "A1", "headers": {name: "x" * 64}}]},
            headers=publisher,
        )
        assert r.status_code == 422, (name, r.text)
        assert r.json()["reason"] == "reserved_header", r.text
        assert repr(name) in r.json()["message"]
    assert dict(api.hub.log.end_offsets("trades")) == end  # nothing stored
    # the publisher itself, for every external caller
    event = account_opened(
        "A-1",
        name="Ada",
        email="ada@acme.example",
        opened_at=NOW,
        key="A-1",
        headers={"__hub.tmac": "00"},
    )
    with pytest.raises(InvalidInput, match=r"__hub\.tmac") as err:
        api.hub.publisher.publish("accounts", [event], "app", origin="external")
    assert err.value.code == "reserved_header"
    # names that only look alike stay the caller's
    ok = api.client.post(
        "/v1/topics/trades/events",
        json={
            "events": [{"value": TRADE, "key": "A1", "headers": {"hub.tmac": "1", "_hub.x": "2"}}]
        },
        headers=publisher,
    )
    assert ok.status_code in (200, 201), ok.text


def test_reserved_header_names() -> None:
    assert all(reserved_header(n) for n in (*LOG_NAMES, "ce_tenant", "HUB_action"))
    assert not any(reserved_header(n) for n in ("hub.tmac", "_hub.mac", "x-hub.tmac", "__hubx"))
