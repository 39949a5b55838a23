"""Registry subjects are tenants' own (session 19; a leftover since session 16).

Subjects were hub-wide: globex's publisher added a compatible version to a subject acme
registered (acme's consumers then decoded, and acme's records were validated, against globex's
schema), and read or probed acme's subjects (versions, ids, lookups, compatibility checks,
references). Now a subject belongs to the tenant that first registered it
(``hub.registry_scope``); shared (hub-owned) subjects are read by all and changed by the hub's
own keys and ``tenant.all`` only; subjects registered before ownership get one from the ledger
(``registry.owners``)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.ports.eventlog import Record
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from registry.service import SCHEMAS_TOPIC
from tests.adversarial._api import basic, issue_key, quiet_api, quiet_settings

SUBJECT = "moves-value"


def _schema(*extra: str) -> str:
    fields: list[dict[str, Any]] = [{"name": "id", "type": "string"}]
    fields += [{"name": n, "type": ["null", "string"], "default": None} for n in extra]
    return json.dumps({"type": "record", "name": "Move", "namespace": "com.acme", "fields": fields})


class World:
    def __init__(self, hub: Hub, client: TestClient) -> None:
        self.hub, self.c = hub, client
        self.admin = basic(issue_key(hub, "admin", "root"))
        self.acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        self.acme_reader = basic(issue_key(hub, "analyst", "amy", "acme"))
        self.globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        self.globex_reader = basic(issue_key(hub, "analyst", "gil", "globex"))
        self.hub_publisher = basic(issue_key(hub, "publisher", "hal"))

    def register(self, subject: str, schema: str, who: dict[str, str], **body: Any) -> Any:
        return self.c.post(
            f"/subjects/{subject}/versions", json={"schema": schema, **body}, headers=who
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with quiet_api(tmp_path / "d") as (hub, c):
        yield World(hub, c)


def _acme_subject(w: World) -> int:
    # a topic's subjects are its owner's (test_s20_registry_squat): acme's topic first
    topic = {"name": SUBJECT.removesuffix("-value"), "partitions": 1, "tenant": "acme"}
    if topic["name"] not in {t.name for t in w.hub.log.topics()}:
        assert w.c.post("/v1/topics", json=topic, headers=w.admin).status_code == 201
    r = w.register(SUBJECT, _schema(), w.acme)
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def test_another_tenant_cannot_add_a_version_to_a_subject(world: World) -> None:
    w = world
    _acme_subject(w)
    r = w.register(SUBJECT, _schema("note"), w.globex)  # compatible under BACKWARD
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "subject_owned" and "acme" not in r.text
    # the schema acme already holds: no idempotent answer either (it would confirm it)
    r = w.register(SUBJECT, _schema(), w.globex)
    assert r.status_code == 403, r.text
    assert w.hub.registry.versions(SUBJECT) == [1]
    # the CLI's path is the registry's: a registration naming globex is refused there too
    from registry.service import SubjectOwned

    with pytest.raises(SubjectOwned):
        w.hub.registry.register(SUBJECT, _schema("note"), tenant="globex")
    # the owner evolves it; an admin (tenant.all) may too, and the subject stays acme's
    assert w.register(SUBJECT, _schema("note"), w.acme).status_code == 200
    assert w.register(SUBJECT, _schema("note", "x"), w.admin).status_code == 200
    assert w.hub.registry.owner(SUBJECT) == "acme"
    assert w.hub.registry.versions(SUBJECT) == [1, 2, 3]


def test_another_tenants_subject_reads_as_not_found(world: World) -> None:
    w = world
    sid = _acme_subject(w)
    body = {"schema": _schema()}
    for who in (w.globex, w.globex_reader):
        for path in (
            f"/subjects/{SUBJECT}/versions",
            f"/subjects/{SUBJECT}/versions/1",
            f"/subjects/{SUBJECT}/versions/99",  # not 40402: that would tell it exists
            f"/subjects/{SUBJECT}/versions/99?deleted=true",
            f"/subjects/{SUBJECT}/versions/latest",
            f"/subjects/{SUBJECT}/versions/latest/schema",
            f"/subjects/{SUBJECT}/versions/1/referencedby",
            f"/config/{SUBJECT}?defaultToGlobal=true",
            f"/mode/{SUBJECT}",
        ):
            r = w.c.get(path, headers=who)
            assert r.status_code == 404 and r.json()["error_code"] == 40401, (path, r.text)
        for path in (f"/schemas/ids/{sid}", f"/schemas/ids/{sid}/schema"):
            r = w.c.get(path, headers=who)
            assert r.status_code == 404 and r.json()["error_code"] == 40403, (path, r.text)
        r = w.c.get(f"/schemas/ids/{sid}/subjects", headers=who)
        assert r.status_code == 404, r.text
        r = w.c.post(f"/subjects/{SUBJECT}", json=body, headers=who)
        assert r.status_code == 404 and r.json()["error_code"] == 40401, r.text
        for path in (  # checked as a missing subject is (test_s20_registry_squat)
            "/compatibility/subjects/{}/versions",
            "/compatibility/subjects/{}/versions/latest",
        ):
            r = w.c.post(path.format(SUBJECT), json=body, headers=who)
            missing = w.c.post(path.format("nope-value"), json=body, headers=who)
            assert (r.status_code, r.text) == (missing.status_code, missing.text), path
        assert SUBJECT not in w.c.get("/subjects", headers=who).json()
        assert SUBJECT not in w.c.get("/subjects?deleted=true", headers=who).json()
        assert all(s["subject"] != SUBJECT for s in w.c.get("/schemas", headers=who).json())
    # its own tenant's reader and an admin read it; shared subjects read for everyone
    for who in (w.acme, w.acme_reader, w.admin):
        assert w.c.get(f"/subjects/{SUBJECT}/versions/1", headers=who).status_code == 200
        assert w.c.get(f"/schemas/ids/{sid}", headers=who).status_code == 200
        assert SUBJECT in w.c.get("/subjects", headers=who).json()
    assert w.c.get("/subjects/trades-value/versions/latest", headers=w.globex).status_code == 200
    # nor does the dataset catalog name it to globex (acme's analyst sees it)
    w.c.post("/v1/topics", json={"name": "moves", "partitions": 1}, headers=w.admin)

    def catalogued(who: dict[str, str]) -> set[str]:
        r = w.c.get("/v1/catalog?kind=topic", headers=who)
        assert r.status_code == 200, r.text
        return {s["subject"] for d in r.json()["datasets"] for s in d["schemas"]}

    assert SUBJECT in catalogued(w.acme_reader) and SUBJECT in catalogued(w.admin)
    assert SUBJECT not in catalogued(w.globex_reader) and "trades-value" in catalogued(
        w.globex_reader
    )


def test_a_reference_to_another_tenants_subject_is_refused_as_missing(world: World) -> None:
    w = world
    _acme_subject(w)
    ref = {"name": "com.acme.Move", "subject": SUBJECT, "version": 1}
    schema = json.dumps(
        {
            "type": "record",
            "name": "Wrap",
            "namespace": "com.globex",
            "fields": [{"name": "m", "type": "com.acme.Move"}],
        }
    )
    r = w.register("com.globex.Wrap", schema, w.globex, references=[ref])
    missing = w.register(
        "com.globex.Wrap", schema, w.globex, references=[{**ref, "subject": "nope-value"}]
    )
    assert r.status_code == 422 and missing.status_code == 422, r.text
    assert r.json()["message"] == missing.json()["message"].replace("nope-value", SUBJECT)


def test_shared_subjects_change_only_by_the_hubs_own_keys(world: World) -> None:
    w = world
    latest = w.c.get("/subjects/trades-value/versions/latest", headers=w.admin).json()
    text = json.loads(latest["schema"])
    text["fields"].append({"name": "globex_note", "type": ["null", "string"], "default": None})
    r = w.register("trades-value", json.dumps(text), w.globex)
    assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
    assert w.hub.registry.get_version("trades-value", "latest").version == latest["version"]
    # a subject the hub's own publisher creates is shared: every tenant reads it
    assert w.register("shared.x-value", _schema(), w.hub_publisher).status_code == 200
    assert w.c.get("/subjects/shared.x-value/versions/1", headers=w.globex).status_code == 200
    assert w.register("shared.x-value", _schema("n"), w.acme).status_code == 403


def test_deleting_another_tenants_subject_is_refused(world: World) -> None:
    w = world
    _acme_subject(w)
    globex_admin = basic(issue_key(w.hub, "publisher", "gwen", "globex"))
    # schema.delete is the admin's; a tenant-limited holder of it is what the check guards
    from core.ports.policy import Principal
    from hub.registry_scope import RegistryScope

    denied: list[tuple[str, str]] = []

    def decide(action: str, tenant: str) -> bool:
        denied.append((action, tenant))
        return False

    gwen = Principal("gwen", frozenset({"admin"}), "globex")
    scope = RegistryScope(w.hub.registry, gwen, decide, w.hub.log)
    from core.errors import SubjectNotFound

    with pytest.raises(SubjectNotFound):
        scope.claim(SUBJECT, "schema.delete")
    # asked naming no tenant (the owner's name would be on the ledger: test_s20_registry_squat)
    assert denied == [("schema.delete", "*"), ("schema.read", "*")]
    r = w.c.delete(f"/subjects/{SUBJECT}", headers=globex_admin)
    assert r.status_code == 403, r.text  # no schema.delete at all
    assert w.hub.registry.versions(SUBJECT) == [1]


def _wire(schema_id: int, avro: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + avro


def test_ingest_does_not_validate_against_another_tenants_subject(world: World) -> None:
    w = world
    sid = _acme_subject(w)
    ok = w.c.post("/v1/ingest/moves", json={"events": [{"id": "a1"}]}, headers=w.acme)
    assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text
    r = w.c.post("/v1/ingest/moves", json={"events": [{"id": "g1"}]}, headers=w.globex)
    assert r.status_code == 200 and r.json()["accepted"] == 0, r.text
    assert "not one of tenant 'globex'" in r.json()["rejections"][0]["reason"], r.text
    # nor through the publish route (the publisher's own path, not the ingest pipeline)
    r = w.c.post(
        "/v1/topics/moves/events", json={"events": [{"value": {"id": "g1"}}]}, headers=w.globex
    )
    assert r.status_code == 404 and r.json()["reason"] == "subject_not_found", r.text
    r = w.c.post(
        "/v1/topics/moves/events", json={"events": [{"value": {"id": "a2"}}]}, headers=w.acme
    )
    assert r.status_code == 201, r.text
    # a wire-format value naming acme's private schema id reads as an unknown id for globex,
    # even on a topic whose subject is globex's own (the same value from acme is read)
    topic = {"name": "globex.moves", "partitions": 1, "tenant": "globex"}
    assert w.c.post("/v1/topics", json=topic, headers=w.admin).status_code == 201
    assert w.register("globex.moves-value", _schema("g"), w.globex).status_code == 200
    from ingest.pipeline import RawRecord

    foreign = RawRecord(_wire(sid, b"\x04g2"), kind="wire")
    res = w.hub.ingest.ingest("globex.moves", [foreign], source="t", tenant="globex")
    assert res.accepted == 0 and res.rejections[0].reason_code == "unknown_schema_id", res
    res = w.hub.ingest.ingest("globex.moves", [foreign], source="t", tenant="default")
    assert res.accepted == 0  # the hub's own tenant does not read acme's either


def _legacy(hub: Hub, subject: str, schema_id: int, text: str) -> None:
    """A ``_schemas`` record as the registry wrote it before owners were recorded."""
    key = json.dumps(
        {"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1}, separators=(",", ":")
    )
    value = {"subject": subject, "version": 1, "id": schema_id, "schema": text, "deleted": False}
    hub.log.append(SCHEMAS_TOPIC, [Record(value=json.dumps(value).encode(), key=key.encode())])


def test_subjects_registered_before_owners_get_one_from_the_ledger(tmp_path: Path) -> None:
    """The upgrade rule: the one tenant whose allowed ``schema.write`` decisions the ledger
    holds on the subject owns it; none, or several, and it is the hub's own."""
    data = tmp_path / "d"
    hub = bootstrap(quiet_settings(data))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            w = World(hub, c)
            base = max(hub.registry.schema_ids()) + 10
            for i, subject in enumerate(("old.acme-value", "old.both-value", "old.none-value")):
                _legacy(hub, subject, base + i, _schema(*(f"f{j}" for j in range(i))))
            hub.registry.refresh()
            assert hub.registry.owner("old.acme-value") == "default"  # until adopted
            # before the upgrade these were allowed and recorded; now they are refused, but
            # their allowed decisions are on the ledger as the old ones were
            w.register("old.acme-value", _schema("z"), w.acme)
            w.register("old.both-value", _schema("z"), w.acme)
            w.register("old.both-value", _schema("y"), w.globex)
            assert hub.registry.unowned() == ["old.acme-value", "old.both-value", "old.none-value"]
    finally:
        hub.close()
    hub = bootstrap(quiet_settings(data))
    try:
        reg = hub.registry
        assert reg.unowned() == []
        assert reg.owner("old.acme-value") == "acme"
        assert reg.owner("old.both-value") == "default"
        assert reg.owner("old.none-value") == "default"
        # the owner is written into the records: the ledger is read once
        stored = [json.loads(r.value) for r in hub.log.scan(SCHEMAS_TOPIC, 0) if r.value]
        assert any(
            v.get("subject") == "old.acme-value" and v.get("tenant") == "acme" for v in stored
        )
        # the versions, ids and schemas are the ones registered
        assert reg.get_version("old.acme-value", 1).id == base
        with pytest.raises(Exception, match="belongs to another tenant"):
            reg.register("old.acme-value", _schema("q"), tenant="globex")
    finally:
        hub.close()
