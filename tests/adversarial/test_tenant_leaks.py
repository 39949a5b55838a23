"""Cross-tenant reads found in session 13, each closed at its root.

1. A record carrying ``ce_tenant`` twice (written past the gate: planted in the store, or by
   another Kafka producer) belongs to no tenant. The ledger's side index MUST NOT store it as a
   null tenant (null means hub-wide, seen by every tenant): a tenant-limited reader (``ledger.read``
   with ``row_filter {"tenant": X}``) MUST NOT list it, fetch it by index or look it up; an admin
   (``tenant.all``) sees it, its tenant shown as ``AMBIGUOUS_TENANT``.
2. ``GET /v1/quality/stats`` and the console's health page (``/ui/api/health``) count accepted and
   rejected records per topic and rule: a tenant-limited reader MUST get its own tenant's counts
   only (``ingest.stats`` keeps them per tenant), never another tenant's rejects or volumes.
3. The hub's audit actions are recorded under the acting person's tenant: an acme officer's
   ``ledger.verify`` run is acme's (its auditor sees it in the ledger and in its evidence pack),
   never visible to globex's officer; an acme key's issue and revocation (``hub.principals``)
   are acme's.
4. Lineage (``/v1/lineage/events``, ``/v1/lineage/graph``, ``hub lineage``) was hub-wide: runs
   done for a person carry that person's tenant; a reader without ``tenant.all`` gets its own
   tenant's run events only, and a graph whose last runs and exported files are its own.
5. ``GET /v1/projections/{name}/rows/{key}/sources`` ignored the ``event.read`` row filter: acme's
   analyst read tenant default's account row and the events behind it by naming its key; and
   ``hub projection sources`` asked no ``event.read`` at all (PII unmasked, every tenant). Another
   tenant's row now answers 404 as a missing one; the CLI decides and applies ``event.read``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.ports.eventlog import Record
from core.ports.ledgerstore import AMBIGUOUS_TENANT, LeafQuery
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import Api, basic, serve_hub
from tests.adversarial.test_console_keys import as_


@pytest.fixture(params=["tiles", "sqlite"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A fresh hub on each file ledger store (tiles is the default)."""
    yield from serve_hub(
        bootstrap(
            load_settings(
                environ={"HUB_PROJECTION_AUTOSTART": "false"},
                data_dir=tmp_path / "data",
                ledger_store=request.param,
            )
        )
    )


def _officer(api: Api, tenant: str) -> dict[str, str]:
    token = api.hub.keys.create(["compliance_officer"], principal=f"co-{tenant}", tenant=tenant)
    return basic(token.token)


def _entries(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = api.client.get("/v1/ledger/entries", params={"limit": 10_000}, headers=headers)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def test_a_record_carrying_two_tenants_is_seen_by_no_tenant(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    globex = _officer(api, "globex")
    api.hub.log.create_topic("raw.planted", 1, {})
    two = (("ce_tenant", b"acme"), ("ce_tenant", b"globex"), ("ce_type", b"x.Planted"))
    with monkeypatch.context() as m:  # past the gate: as a foreign Kafka producer would write
        m.setattr("adapters.sqlite_log.batch.repeats_envelope", lambda *a: False)
        api.hub.log.append("raw.planted", [Record(b"secret-ish", b"acct-9", two)])
    api.hub.log.append("raw.planted", [Record(b"v", b"hub-wide")])  # no tenant: seen by all
    api.hub.ledger.sync(force_checkpoint=True)
    every = [e for e in _entries(api, api.admin) if e["topic"] == "raw.planted"]
    assert [e["tenant"] for e in every] == [AMBIGUOUS_TENANT, None], every
    theirs = [e for e in _entries(api, globex) if e["topic"] == "raw.planted"]
    assert [e["resource"] for e in theirs] == ["hub-wide"], theirs
    index = every[0]["index"]
    hidden = api.client.get(f"/v1/ledger/entries/{index}", headers=globex)
    assert hidden.status_code == 404 and "acct-9" not in hidden.text, hidden.text
    where = {"topic": "raw.planted", "partition": 0, "offset": 0}
    r = api.client.get("/v1/ledger/lookup", params=where, headers=globex)
    assert r.status_code == 404 and "acct-9" not in r.text, r.text
    assert api.client.get(f"/v1/ledger/entries/{index}", headers=api.admin).status_code == 200
    store = api.hub.ledger.store
    assert all(r[8] != AMBIGUOUS_TENANT for r in store.find(LeafQuery(tenant_scope="acme")))
    # verify still names the record (it was written past the gate)
    problems = api.client.post("/v1/ledger/verify", headers=api.admin)
    assert "more than once" in problems.text, problems.text


def _publish_bad(api: Api, tenant: str) -> None:
    """``tenant``'s publisher sends one line that is not JSON (one quarantined record)."""
    token = api.hub.keys.create(["publisher"], principal=f"pub-{tenant}", tenant=tenant).token
    r = api.client.post(
        "/v1/ingest/trades",
        content=b"not json\n",
        headers={**basic(token), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text


def test_quality_stats_and_the_health_page_count_the_readers_tenant_only(api: Api) -> None:
    globex = api.hub.keys.create(["compliance_officer"], principal="gus", tenant="globex").token
    acme = api.hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    _publish_bad(api, "acme")
    api.hub.log.create_topic("raw.volumes", 1, {})
    acme_records = [Record(b"v", b"k", (("ce_tenant", b"acme"),)) for _ in range(5)]
    api.hub.log.append("raw.volumes", acme_records)
    api.hub.log.append("raw.volumes", [Record(b"v", b"k", (("ce_tenant", b"globex"),))])

    def stats(token: dict[str, str]) -> dict[str, Any]:
        r = api.client.get("/v1/quality/stats", headers=token)
        assert r.status_code == 200, r.text
        got: dict[str, Any] = r.json()
        return got

    theirs = stats(basic(globex))
    assert theirs["totals"]["rejected"] == 0 and theirs["by_rule"] == [], theirs
    assert theirs["tenant_scope"] == "globex" and theirs["since_start"]["by_source"] == []
    assert {t["topic"]: t["accepted"] for t in theirs["by_topic"]} == {"raw.volumes": 1}
    mine = stats(basic(acme))
    assert mine["totals"]["rejected"] == 1 and len(mine["by_rule"]) == 1, mine
    assert {t["topic"]: t["accepted"] for t in mine["by_topic"]}["raw.volumes"] == 5
    every = stats(api.admin)
    assert every["tenant_scope"] is None and every["totals"]["rejected"] == 1
    assert {t["topic"]: t["accepted"] for t in every["by_topic"]}["raw.volumes"] == 6
    as_(api.client, globex, "/ui/health")
    health = api.client.get("/ui/api/health")
    assert health.status_code == 200, health.text
    page = health.json()
    assert page["rejected"] == 0 and page["by_rule"] == [], page
    assert page["records"] == {"raw.volumes": 1}, page
    api.client.cookies.clear()


def test_an_officers_audit_action_is_its_tenants(api: Api) -> None:
    import io
    import json
    import zipfile

    acme, globex = _officer(api, "acme"), _officer(api, "globex")
    # the first (full) verification is a hub-wide key's (test_s20_lows): then acme's officer's
    assert api.client.post("/v1/ledger/verify", headers=api.admin).status_code == 200
    assert api.client.post("/v1/ledger/verify", headers=acme).status_code == 200
    api.hub.ledger.sync(force_checkpoint=True)

    def verifies(headers: dict[str, str]) -> list[dict[str, Any]]:
        got = _entries(api, headers)  # the audit action (its decision is on hub.decisions)
        return [e for e in got if e["action"] == "ledger.verify" and e["topic"] == "hub.audit"]

    assert [(e["actor"], e["tenant"]) for e in verifies(acme)] == [("co-acme", "acme")]
    assert verifies(globex) == []
    assert len(verifies(api.admin)) == 2  # the admin's own and acme's (the admin sees all)
    r = api.client.post("/v1/evidence?from=2000-01-01&to=2100-01-01", headers=acme)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        packed = [json.loads(line) for line in zf.read("entries.jsonl").splitlines()]
    assert any(e["action"] == "ledger.verify" and e["actor"] == "co-acme" for e in packed)


def test_a_keys_issue_and_revocation_are_its_tenants(api: Api) -> None:
    """``hub.principals`` records carry the key's tenant (they said default): acme's auditor
    sees who was given and lost access to acme; globex's officer sees neither."""
    acme, globex = _officer(api, "acme"), _officer(api, "globex")
    issued = api.hub.keys.create(["analyst"], principal="amy", tenant="acme")
    api.hub.keys.revoke(issued.key_id, revoked_by="root")
    api.hub.ledger.sync(force_checkpoint=True)

    def keys(headers: dict[str, str]) -> list[tuple[str, str | None]]:
        got = _entries(api, headers)
        return [(e["action"], e["tenant"]) for e in got if e["topic"] == "hub.principals"]

    mine = keys(acme)
    assert ("hub.ApiKeyIssued", "acme") in mine and ("hub.ApiKeyRevoked", "acme") in mine
    assert all(t != "acme" for _, t in keys(globex)), keys(globex)


def test_lineage_runs_keep_to_the_readers_tenant(api: Api) -> None:
    acme, globex = _officer(api, "acme"), _officer(api, "globex")
    r = api.client.post("/v1/evidence?from=2000-01-01&to=2100-01-01", headers=acme)
    assert r.status_code == 200, r.text
    q = {"job": "export.evidence"}

    def events(headers: dict[str, str]) -> list[dict[str, Any]]:
        got = api.client.get("/v1/lineage/events", params=q, headers=headers)
        assert got.status_code == 200, got.text
        out: list[dict[str, Any]] = got.json()["events"]
        return out

    assert events(globex) == []
    assert [e["event_type"] for e in events(acme)] == ["START", "COMPLETE"]
    assert len(events(api.admin)) == 2

    def graph(headers: dict[str, str]) -> dict[str, Any]:
        got = api.client.get("/v1/lineage/graph", headers=headers)
        assert got.status_code == 200, got.text
        return {n["id"]: n for n in got.json()["nodes"]}

    theirs, mine = graph(globex), graph(acme)
    job = "job:hub/export.evidence"
    assert "last_run" not in theirs[job] and "last_run" in mine[job]
    assert not [n for n in theirs if n.startswith("dataset:hub://exports")], theirs
    assert [n for n in mine if n.startswith("dataset:hub://exports")]
    assert set(theirs) <= set(graph(api.admin))


@pytest.fixture
def tiles_api(tmp_path: Path) -> Iterator[Api]:
    """A fresh hub on the default stores (one footprint: the fix is above the view store)."""
    yield from serve_hub(
        bootstrap(
            load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
        )
    )


def test_a_rows_sources_keep_to_the_readers_tenant(tiles_api: Api) -> None:
    from click.testing import CliRunner

    from core.events import OutgoingEvent
    from hub.cli import main

    api = tiles_api
    value = {
        "account_id": "ACC-D",
        "customer_name": "Dee Default",
        "email": "dee@example.org",
        "date_of_birth": "1980-02-03",
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-11-25T10:00:00Z",
    }
    event = OutgoingEvent(event_type="hub.accounts.AccountOpened", value=value)
    api.hub.publisher.publish("accounts", [event], producer="t")
    api.hub.projections.run(["accounts"])
    acme = api.hub.keys.create(["analyst"], principal="ann", tenant="acme").token
    own = api.hub.keys.create(["analyst"], principal="dan", tenant="default").token
    path = "/v1/projections/accounts/rows/default|ACC-D/sources"
    q = {"table": "accounts_current"}
    theirs = api.client.get(path, params=q, headers=basic(acme))
    missing = api.client.get(path.replace("ACC-D", "ACC-X"), params=q, headers=basic(acme))
    assert theirs.status_code == missing.status_code == 404, theirs.text
    assert "Dee" not in theirs.text and "ACC-D" in theirs.text  # the key asked for, echoed
    mine = api.client.get(path, params=q, headers=basic(own))
    assert mine.status_code == 200 and mine.json()["events"], mine.text
    data = str(api.hub.settings.data_dir)
    api.hub.close()
    api.hub.close = lambda: None  # type: ignore[method-assign]
    args = ["--data-dir", data, "--key", acme, "projection", "sources", "accounts"]
    r = CliRunner().invoke(main, [*args, "default|ACC-D", "--table", "accounts_current"])
    assert r.exit_code != 0 and "dee@example.org" not in r.output, r.output
