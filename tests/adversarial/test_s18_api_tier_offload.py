"""``POST /v1/tier/offload`` (and ``hub tier offload``) act on every tenant's records (session 18).

Topics are shared by tenants: the offload copies every tenant's closed segments, its answer
counts them, and ``trim_hot=true`` deletes them from the hot log. It was decided as the caller's
own tenant's ``retention.write``, so acme's compliance officer cut globex's records out of the
hot log and learned its volume. It is now decided as the hub's own tenant's, as
``POST /v1/retention/run`` is: a tenant's key needs ``tenant.all``.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.ports.eventlog import Record
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings

from ._api import basic


def test_a_tenants_officer_cannot_offload_or_trim_every_tenants_records(tmp_path: Path) -> None:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_TIER_SEGMENT_RECORDS": "2"}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    try:
        acme = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
        r = client.post(
            "/v1/topics",
            headers=basic(hub.keys.create(["admin"]).token),
            json={"name": "moves", "partitions": 1},
        )
        assert r.status_code == 201, r.text
        # globex's records (their content does not matter: offload and trim take every one)
        hub.log.append("moves", [Record(value=b"{}", key=b"g%d" % i) for i in range(6)])
        r = client.post(
            "/v1/tier/offload", params={"topic": "moves", "trim_hot": "true"}, headers=basic(acme)
        )
        # before: 200, records_offloaded 6 (globex's), and the hot log starting at offset 6
        assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
        assert hub.log.beginning_offsets("moves") == {0: 0}
        officer = hub.keys.create(["compliance_officer"], principal="hub-officer").token
        r = client.post("/v1/tier/offload", params={"topic": "moves"}, headers=basic(officer))
        assert r.status_code == 200 and r.json()[0]["records_offloaded"] == 6, r.text
    finally:
        client.close()
        hub.close()
    got = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path / "data"), "--key", acme, "tier", "offload", "--trim-hot"],
    )
    assert got.exit_code != 0 and "tenant isolation" in str(got.stderr), got.output
