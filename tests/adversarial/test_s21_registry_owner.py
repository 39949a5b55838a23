"""Registry subjects and schema ids owned by tenants, continued (session 21).

Left by session 20 (``test_s20_registry_squat``: a topic's ``-value``/``-key`` subjects are its
owner's):
1. ``<topic>-<RecordName>`` subjects (TopicRecordNameStrategy) were not tied to the topic: globex
   registered ``acme.trades-com.acme.Trade`` before acme did, and acme's serialisers were then
   refused (or validated against globex's schema) on acme's own topic;
2. an unknown schema id answered 404 without asking (or recording) a decision, while another
   tenant's id asked one: the decision log (and the time taken) told a foreign id from a
   missing one;
3. soft-deleted subjects: another tenant must not read, re-register over or hard-delete them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import SubjectNotFound
from core.ports.policy import Principal
from hub.registry_scope import RegistryScope, record_topic_of
from tests.adversarial.test_s20_registry_squat import World, _schema, world  # noqa: F401


def _trade(name: str = "Trade", namespace: str = "com.acme") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": namespace,
            "fields": [{"name": "id", "type": "string"}],
        }
    )


def _refused(r: Any) -> None:
    assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text


def test_a_topics_record_name_subjects_are_its_owners(world: World) -> None:  # noqa: F811
    w = world
    w.topic("acme.trades", tenant="acme")  # dots in the topic name
    w.topic("acme-fx", tenant="acme")  # dashes in the topic name
    w.topic("acme", tenant="globex")  # a prefix of acme-fx, another owner
    for subject in ("acme.trades-com.acme.Trade", "acme-fx-com.acme.Trade"):
        _refused(w.register(subject, w.globex, _trade()))
        assert w.hub.registry.owner(subject) is None
        assert w.register(subject, w.acme, _trade()).status_code == 200
        assert w.hub.registry.owner(subject) == "acme"
        # globex neither adds a version nor reads it
        _refused(w.register(subject, w.globex, _trade()))
        assert w.c.get(f"/subjects/{subject}/versions", headers=w.globex).status_code == 404
    # an administrator registers a topic's record subject for the topic's owner
    assert w.register("acme.trades-com.acme.Quote", w.admin, _trade("Quote")).status_code == 200
    assert w.hub.registry.owner("acme.trades-com.acme.Quote") == "acme"
    # the last dash splits topic from record name (an Avro name has no dash): acme-fx's subject
    # is not topic acme's, so globex (which owns topic acme) gets nothing of it
    assert w.hub.registry.owner("acme-fx-com.acme.Trade") == "acme"
    assert w.register("acme-com.globex.Thing", w.globex, _trade("Thing")).status_code == 200
    _refused(w.register("acme-com.globex.Other", w.acme, _trade("Other")))
    # RecordNameStrategy (no topic prefix) and names of no topic stay first come, first served
    assert w.register("com.globex.Thing", w.globex, _trade("Thing")).status_code == 200
    assert w.register("notopic-com.globex.Thing", w.globex, _trade("Thing")).status_code == 200


def test_a_record_subject_taken_before_its_topic_is_frozen_once_the_topic_exists(
    world: World,  # noqa: F811
) -> None:
    """globex takes ``later-com.acme.Trade`` before acme is given topic ``later``: once the topic
    exists, globex can no longer change what acme's topic is validated against."""
    w = world
    assert w.register("later-com.acme.Trade", w.globex, _trade()).status_code == 200
    w.topic("later", tenant="acme")
    evolved = json.loads(_trade())
    evolved["fields"].append({"name": "n", "type": "int", "default": 0})
    _refused(w.register("later-com.acme.Trade", w.globex, json.dumps(evolved)))


def _ids_probe(w: World, schema_id: int) -> list[tuple[int, str]]:
    answers = []
    for path in (
        f"/schemas/ids/{schema_id}",  # the fast path
        f"/schemas/ids/{schema_id}?format=AVRO",  # the FastAPI route
        f"/schemas/ids/{schema_id}/schema",
        f"/schemas/ids/{schema_id}/subjects",
        f"/schemas/ids/{schema_id}/versions",
    ):
        r = w.c.get(path, headers=w.globex)
        answers.append((r.status_code, r.text.replace(str(schema_id), "N")))
    return answers


def test_an_unknown_schema_id_answers_and_records_as_a_foreign_one(world: World) -> None:  # noqa: F811
    w = world
    w.topic("moves", tenant="acme")
    r = w.register("moves-value", w.acme, _schema("Secret"))
    assert r.status_code == 200, r.text
    foreign = r.json()["id"]
    unknown = foreign + 1000

    def recorded(schema_id: int) -> tuple[list[tuple[int, str]], list[tuple[Any, ...]]]:
        before = len(w.decisions("gus"))
        answers = _ids_probe(w, schema_id)
        return answers, [
            (d.get("action"), d.get("allow"), str(d.get("reason")).replace(str(schema_id), "N"))
            for d in w.decisions("gus")[before:]
        ]

    theirs, none = recorded(foreign), recorded(unknown)
    assert theirs[0] == none[0]
    assert all(status == 404 for status, _ in theirs[0]), theirs[0]
    assert theirs[1] == none[1], (theirs[1], none[1])
    # the probe asked one question per request beyond the route's own, both ways
    assert len(none[1]) == 2 * len(none[0]), none[1]


def test_a_soft_deleted_subject_stays_its_owners(world: World) -> None:  # noqa: F811
    w = world
    w.topic("moves", tenant="acme")
    for subject, schema in (("moves-value", _schema()), ("com.acme.Secret", _schema("Secret"))):
        assert w.register(subject, w.acme, schema).status_code == 200
        # (deletes need schema.delete, which only administrators hold)
        assert w.c.delete(f"/subjects/{subject}", headers=w.admin).status_code == 200
        assert w.hub.registry.owner(subject) == "acme"
        # not read, listed or looked up by globex, deleted ones asked for
        for path in (
            f"/subjects/{subject}/versions?deleted=true",
            f"/subjects/{subject}/versions/1?deleted=true",
        ):
            assert w.c.get(path, headers=w.globex).status_code == 404, path
        listed = w.c.get("/subjects?deleted=true", headers=w.globex).json()
        assert subject not in listed
        r = w.c.post(f"/subjects/{subject}?deleted=true", json={"schema": schema}, headers=w.globex)
        assert r.status_code == 404, r.text
        # not re-registered over
        r = w.register(subject, w.globex, schema)
        assert r.status_code == 403 and r.json()["reason"] == "subject_owned", r.text
        assert w.hub.registry.owner(subject) == "acme"
        # not hard-deleted
        r = w.c.delete(f"/subjects/{subject}?permanent=true", headers=w.globex)
        assert r.status_code in (403, 404), r.text
        assert w.hub.registry.versions(subject, include_deleted=True) == [1]
        # nor by a principal of globex that holds schema.delete in its own tenant (a custom
        # role), on the CLI's path: decided as another tenant's, answered as missing
        deleter = Principal("gil", frozenset({"schema.read", "schema.delete"}), "globex")
        scope = RegistryScope(w.hub.registry, deleter, lambda a, t: t == "globex", w.hub.log)
        with pytest.raises(SubjectNotFound):
            scope.claim(subject, "schema.delete")
        # the owner still sees it
        r = w.c.get(f"/subjects/{subject}/versions?deleted=true", headers=w.acme)
        assert r.status_code == 200 and r.json() == [1], r.text


def test_which_topic_a_record_subject_names() -> None:
    cases = {
        "acme.trades-com.acme.Trade": "acme.trades",
        "acme-fx-com.acme.Trade": "acme-fx",  # the last dash: an Avro name has none
        "acme.trades-com.acme.Trade-plain": "acme.trades",  # a companion follows its subject
        "orders-v2": "orders",  # a free name looks like one: a topic subject only if it exists
        "acme.trades-value": None,  # TopicNameStrategy: topic_of's
        "acme.trades-key-plain": None,
        "com.acme.Trade": None,  # RecordNameStrategy: no topic
        "-com.acme.Trade": None,
        "my schemas-Trade": None,  # no topic can be named so: not looked up
        "acme.trades-com.acme.9Trade": None,  # not an Avro name
        "acme.trades-": None,
    }
    assert {s: record_topic_of(s) for s in cases} == cases
