"""Per-topic volume across tenants (a session 14 leftover, fixed in session 15).

Tenants share topics, so a topic's end offset counts every tenant's records: ``GET /v1/topics``
answered them to any ``topic.read`` holder, and a tenant's reader polling it learned another
tenant's traffic. A reader limited to its tenant now gets no end offsets (``{}``); a reader
allowed ``tenant.all`` on ``topics`` (admin) still gets them."""

from __future__ import annotations

from core.ports.eventlog import Record

from ._api import Api, basic


def test_a_tenant_reader_does_not_see_shared_topics_volume(api: Api) -> None:
    hub = api.hub
    r = api.client.post(
        "/v1/topics", headers=api.admin, json={"name": "acct.moves", "partitions": 1}
    )
    assert r.status_code == 201, r.text
    # globex's traffic (its records' content does not matter: the end offset counts them)
    hub.log.append("acct.moves", [Record(value=b"{}", key=b"p%d" % i) for i in range(3)])
    acme = hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    r = api.client.get("/v1/topics", headers=basic(acme))
    assert r.status_code == 200, r.text
    seen = {t["name"]: t["end_offsets"] for t in r.json()}
    assert "acct.moves" in seen
    assert all(ends == {} for ends in seen.values()), seen  # before: {"0": 3} for the topic
    r = api.client.get("/v1/topics", headers=api.admin)
    wide = {t["name"]: t["end_offsets"] for t in r.json()}
    assert wide["acct.moves"] == {"0": 3}
