"""``GET /v1/projections`` and every tenant's volume (session 18).

A projection's status gave its ``positions`` (the next offset of each topic partition it
follows: every tenant's record count once caught up) and its views' ``digests`` (rows of every
tenant), to any ``projection.read`` holder: the volume ``GET /v1/topics`` stopped giving a
tenant's reader in session 15 (test_tenant_volume). A reader limited to its tenant now gets
``{}`` for both; an admin (``tenant.all``) still gets everything. Session 21: the lag and batch
number count every tenant's records too (another tenant's publishing moves them): null for such
a reader.
"""

from __future__ import annotations

from core.ports.eventlog import Record

from ._api import Api, basic


def test_a_tenant_reader_does_not_see_the_projections_positions(api: Api) -> None:
    hub = api.hub
    # globex's trades (their content does not matter: a position counts every record)
    hub.log.append("trades", [Record(value=b"{}", key=b"g%d" % i) for i in range(5)])
    for s in hub.projections.status():
        hub.projections.runner(s["projection"]).catch_up()
    acme = hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    r = api.client.get("/v1/projections", headers=basic(acme))
    assert r.status_code == 200, r.text
    assert r.json(), r.text
    for s in r.json():
        # before: positions {"trades/0": 3, "trades/2": 4, ...}, globex's records too
        assert s["positions"] == {} and s["digests"] == {}, s
        assert s["lag"] is None and s["batch_seq"] is None, s  # before: hub-wide numbers
    wide = api.client.get("/v1/projections", headers=api.admin).json()
    assert any(s["positions"] for s in wide), wide
    assert all(isinstance(s["batch_seq"], int) for s in wide), wide
