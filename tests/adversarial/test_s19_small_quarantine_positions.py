"""A tenant's quarantine reader is not told other tenants' quarantine volume by offsets (s19).

``GET /v1/quarantine`` gave acme's officer its entries at offsets 0 and 31 (globex's 30
quarantined records between them) and a ``next_offset`` of 32: the gaps and the end counted
every tenant's rejected records. A reader the decision limits to a tenant now gets positions
(``hub.api.positions``, as the event reads give) that page and fetch as offsets did.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.adversarial._api import Api, basic

NDJSON = {"Content-Type": "application/x-ndjson"}


def _bad(api: Api, tenant: str, n: int, tag: str) -> None:
    token = api.hub.keys.create(["publisher"], principal=f"pub-{tenant}", tenant=tenant).token
    body = "".join(f"not json {tag}-{i}\n" for i in range(n)).encode()
    r = api.client.post("/v1/ingest/trades", content=body, headers={**basic(token), **NDJSON})
    assert r.status_code == 200 and r.json()["rejected"] == n, r.text


def _page(api: Api, who: dict[str, str], **params: Any) -> dict[str, Any]:
    r = api.client.get("/v1/quarantine", params=params, headers=who)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def test_a_tenant_officer_gets_quarantine_positions_not_offsets(api: Api) -> None:
    keys = api.hub.keys
    ann = basic(keys.create(["compliance_officer"], principal="ann", tenant="acme").token)
    gus = basic(keys.create(["compliance_officer"], principal="gus", tenant="globex").token)
    _bad(api, "acme", 1, "a")
    _bad(api, "globex", 30, "g")
    _bad(api, "acme", 1, "b")

    page = _page(api, ann, limit=100)
    assert len(page["records"]) == 2
    offsets = [e["offset"] for e in page["records"]]
    # before: [0, 31] and 32; no number is near the quarantine's range now
    assert all(not 0 <= o < 1000 for o in [*offsets, page["next_offset"]]), page
    assert _page(api, ann, offset=page["next_offset"])["records"] == []
    # paging one at a time with next_offset gives acme's two entries, in order
    first = _page(api, ann, limit=1)
    second = _page(api, ann, limit=1, offset=first["next_offset"])
    assert [first["records"][0]["offset"], second["records"][0]["offset"]] == offsets
    # a position fetches its entry, and says the same position
    one = api.client.get(f"/v1/quarantine/{offsets[1]}", headers=ann)
    assert one.status_code == 200 and one.json()["offset"] == offsets[1], one.text
    assert b"not json b-0" in base64.b64decode(one.json()["original_base64"])
    # acme's positions mean nothing to globex's officer (404, naming the number asked)
    other = api.client.get(f"/v1/quarantine/{offsets[1]}", headers=gus)
    assert other.status_code == 404 and str(offsets[1]) in other.text, other.text
    assert len(_page(api, gus, limit=100)["records"]) == 30
    # an every-tenant reader keeps the offsets
    wide = _page(api, api.admin, limit=100)
    raw = [e["offset"] for e in wide["records"]]
    assert len(raw) == 32 and raw == sorted(raw) and raw[-1] < 100
    assert wide["next_offset"] == raw[-1] + 1
