"""A tenant's reader of a shared topic is not told other tenants' volume by offsets (s19).

Offsets count every tenant's records. acme's analyst read its two records at offsets 0 and 51
(globex wrote 50 between them), a ``next_offset`` of 52 (paging on: the partition's volume),
and pages whose size dropped with every other tenant's record scanned. It now reads positions
(``hub.api.positions``: a keyed permutation per tenant, topic and partition) that page the
same way, and pages filled with its own records.
"""

from __future__ import annotations

import json

from tests.adversarial._api import Api, basic, issue_key

TOPIC = "acct.flow"
SCHEMA = {
    "type": "record",
    "name": "Flow",
    "namespace": "com.x",
    "fields": [{"name": "id", "type": "string"}],
}


def _publish(api: Api, who: dict[str, str], n: int, tag: str) -> None:
    events = [{"value": {"id": f"{tag}-{i}"}} for i in range(n)]
    r = api.client.post(f"/v1/topics/{TOPIC}/events", json={"events": events}, headers=who)
    assert r.status_code == 201, r.text


def _read(api: Api, who: dict[str, str], **query: int) -> dict:
    q = "&".join(f"{k}={v}" for k, v in {"partition": 0, **query}.items())
    r = api.client.get(f"/v1/topics/{TOPIC}/events?{q}", headers=who)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_tenant_reader_gets_positions_not_offsets(api: Api) -> None:
    c, admin = api.client, api.admin
    assert c.post("/v1/topics", json={"name": TOPIC, "partitions": 1}, headers=admin).is_success
    hub_pub = basic(issue_key(api.hub, "publisher", "hal"))
    body = {"schema": json.dumps(SCHEMA)}
    assert c.post(f"/subjects/{TOPIC}-value/versions", json=body, headers=hub_pub).is_success
    acme_pub = basic(issue_key(api.hub, "publisher", "ann", "acme"))
    globex_pub = basic(issue_key(api.hub, "publisher", "gus", "globex"))
    amy = basic(issue_key(api.hub, "analyst", "amy", "acme"))
    gil = basic(issue_key(api.hub, "analyst", "gil", "globex"))
    _publish(api, acme_pub, 1, "a")
    _publish(api, globex_pub, 50, "g")
    _publish(api, acme_pub, 1, "b")

    page = _read(api, amy, limit=10)
    assert [r["value"]["id"] for r in page["records"]] == ["a-0", "b-0"]
    offsets = [r["offset"] for r in page["records"]]
    # before: [0, 51] and 52; no position is an offset near the partition's range now
    assert all(not 0 <= o < 1000 for o in [*offsets, page["next_offset"]]), page
    # positions page as offsets did: from the next one, nothing; from a record's, it again
    assert _read(api, amy, offset=page["next_offset"])["records"] == []
    again = _read(api, amy, offset=offsets[1])["records"]
    assert [r["value"]["id"] for r in again] == ["b-0"]
    # a page of one is acme's next record, not a page emptied by globex's fifty
    first = _read(api, amy, limit=1)
    assert [r["value"]["id"] for r in first["records"]] == ["a-0"]
    second = _read(api, amy, limit=1, offset=first["next_offset"])
    assert [r["value"]["id"] for r in second["records"]] == ["b-0"]
    # acme's positions mean nothing to globex's reader
    assert _read(api, gil, offset=offsets[1])["records"] == []
    assert len(_read(api, gil, limit=100)["records"]) == 50
    # a reader of every tenant (tenant.all) keeps the offsets
    wide = _read(api, admin, limit=100)
    assert [r["offset"] for r in wide["records"]] == list(range(52))
    assert wide["next_offset"] == 52
