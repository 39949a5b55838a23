"""Registry subject squatting and the foreign-vs-missing signal (session 20).

Left open by session 19 (subjects belong to the tenant that first registered them):
1. globex registered ``<topic>-value`` / ``<topic>-key`` for a topic nobody had registered a
   subject for yet (acme's topic, or one of the hub's), and so owned the schema that governs
   it: acme's publishes were then refused, or validated against globex's schema;
2. a read of another tenant's subject answered 404 as for a missing one, but asked (and
   recorded) one extra decision naming the owner ("may not act on tenant 'acme'"), which
   globex's officer reads back in its access review: an existence oracle, owner included.
Now a topic's subjects are created as its owner's (``hub.registry_scope``), and a subject the
principal neither owns nor shares is decided with a question that names no tenant, missing or
not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.avro import serde
from hub.bootstrap import Hub
from tests.adversarial._api import basic, issue_key, quiet_api


def _schema(name: str = "Move") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "com.acme",
            "fields": [{"name": "id", "type": "string"}],
        }
    )


class World:
    def __init__(self, hub: Hub, client: TestClient) -> None:
        self.hub, self.c = hub, client
        self.admin = basic(issue_key(hub, "admin", "root"))
        self.acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        self.globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        self.hub_publisher = basic(issue_key(hub, "publisher", "hal"))

    def register(self, subject: str, who: dict[str, str], schema: str | None = None) -> Any:
        return self.c.post(
            f"/subjects/{subject}/versions", json={"schema": schema or _schema()}, headers=who
        )

    def topic(self, name: str, tenant: str | None = None) -> None:
        body: dict[str, Any] = {"name": name, "partitions": 1}
        if tenant is not None:
            body["tenant"] = tenant
        r = self.c.post("/v1/topics", json=body, headers=self.admin)
        assert r.status_code == 201, r.text

    def decisions(self, principal: str) -> list[dict[str, Any]]:
        """``principal``'s recorded decisions, as its officer's access review reads them."""
        self.hub.policy.committer.flush()  # type: ignore[attr-defined]
        out = []
        for partition, end in self.hub.log.end_offsets("hub.decisions").items():
            for rec in self.hub.log.read("hub.decisions", partition, 0, end):
                if rec.value is None:
                    continue
                sid, _ = serde.split_wire(rec.value)
                value = serde.decode(rec.value, self.hub.registry.parsed(sid))
                if isinstance(value, dict) and value.get("principal") == principal:
                    out.append(value)
        return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with quiet_api(tmp_path / "d") as (hub, c):
        yield World(hub, c)


def test_a_topic_records_its_owner_and_only_its_owner_creates_its_subjects(world: World) -> None:
    w = world
    w.topic("moves", tenant="acme")
    assert w.hub.log.topic("moves").config["hub.tenant"] == "acme"
    for subject in ("moves-value", "moves-key"):
        r = w.register(subject, w.globex)  # nobody registered it yet: globex squatted it
        assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
        assert "acme" not in r.text and "'moves'" in r.text
        assert w.hub.registry.owner(subject) is None
    assert w.register("moves-value", w.acme).status_code == 200
    assert w.hub.registry.owner("moves-value") == "acme"
    # an administrator registers a topic's subject for its owner, not for itself
    assert w.register("moves-key", w.admin).status_code == 200
    assert w.hub.registry.owner("moves-key") == "acme"
    # the topic's owner is set by whoever may act as that tenant: acme's key may not name globex
    r = w.c.post("/v1/topics", json={"name": "x", "tenant": "globex"}, headers=w.acme)
    assert r.status_code == 403, r.text


def test_a_tenant_cannot_create_the_subjects_of_a_hub_topic(world: World) -> None:
    w = world
    assert w.hub.registry.owner("trades-key") is None  # the hub's topic has no key subject yet
    r = w.register("trades-key", w.globex)
    assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
    w.topic("shared")  # created by the hub's own administrator: the hub's
    assert w.register("shared-value", w.globex).status_code == 403
    assert w.register("shared-value", w.hub_publisher).status_code == 200
    assert w.hub.registry.owner("shared-value") == "default"


def test_a_topic_subject_is_not_created_before_its_topic(world: World) -> None:
    """Otherwise globex squats the subject of a topic acme is about to be given."""
    w = world
    r = w.register("soon-value", w.globex)
    assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
    assert "create the topic" in r.json()["message"]
    w.topic("soon", tenant="globex")
    assert w.register("soon-value", w.globex).status_code == 200
    # names that follow no topic stay first come, first served
    assert w.register("com.globex.Thing", w.globex, _schema("Thing")).status_code == 200


def test_a_foreign_subject_reads_and_records_as_a_missing_one(world: World) -> None:
    w = world
    w.topic("moves", tenant="acme")
    assert w.register("moves-value", w.acme).status_code == 200
    assert w.register("com.acme.Secret", w.acme, _schema("Secret")).status_code == 200

    def probe(subject: str) -> list[tuple[int, str]]:
        answers = []
        for method, path in (
            ("GET", f"/subjects/{subject}/versions"),
            ("GET", f"/subjects/{subject}/versions/latest"),
            ("GET", f"/subjects/{subject}/versions/1/schema"),
            ("POST", f"/subjects/{subject}"),
            ("POST", f"/compatibility/subjects/{subject}/versions/latest"),
            ("DELETE", f"/subjects/{subject}"),
        ):
            r = w.c.request(method, path, json={"schema": _schema()}, headers=w.globex)
            answers.append((r.status_code, r.text.replace(subject, "S")))
        return answers

    def recorded(subject: str) -> list[tuple[Any, ...]]:
        before = len(w.decisions("gus"))
        probe(subject)
        return [
            (d.get("action"), d.get("allow"), str(d.get("reason")).replace(subject, "S"))
            for d in w.decisions("gus")[before:]
        ]

    for foreign, missing in (("moves-value", "nothere-value"), ("com.acme.Secret", "com.x.No")):
        assert probe(foreign) == probe(missing)
        theirs, none = recorded(foreign), recorded(missing)
        assert theirs == none, (theirs, none)
        assert not any("'acme'" in str(d.get("reason")) for d in w.decisions("gus"))
    # a registration under another tenant's topic answers the same, subject there or not
    a, b = w.register("moves-value", w.globex), w.register("moves-key", w.globex)
    assert (a.status_code, a.text.replace("value", "X")) == (
        b.status_code,
        b.text.replace("key", "X"),
    )
