"""s26 (trust): a new subject name cannot pass for another (look-alike characters).

Session 25's red team: a subject name could hold any printable character, so globex registered
``mоves-value`` (a Cyrillic ``о``) beside acme's ``moves-value``; a hub-wide reader, an auditor
or a client's configuration could not tell them apart. Now a NEW subject name may hold only
ASCII letters, digits, ``.``, ``_`` and ``-`` (every name the Confluent-compatible clients
derive from a topic or a record name), and a refusal names the character and its position; a
subject stored before the rule stays readable and takes new versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from core.ports.eventlog import Record
from tests.adversarial._api import quiet_api
from tests.adversarial.test_s20_registry_squat import World, _schema


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with quiet_api(tmp_path / "d") as (hub, c):
        yield World(hub, c)


def _subjects(w: World) -> list[str]:
    r = w.c.get("/subjects", headers=w.admin)
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.mark.parametrize(
    ("name", "char", "position", "extra"),
    [
        ("com.acme.M\u043eves", "U+043E CYRILLIC SMALL LETTER O", 11, ""),
        ("com.acme.\uff2doves", "U+FF2D FULLWIDTH LATIN CAPITAL LETTER M", 10, "'com.acme.Moves'"),
        ("com.acme.Moves\u200b", "U+200B ZERO WIDTH SPACE", 15, ""),
        ("com.acme.Mo\u0301ves", "U+0301 COMBINING ACUTE ACCENT", 12, ""),
        ("com.acme.Moves ", "U+0020 SPACE", 15, ""),
    ],
    ids=["cyrillic", "fullwidth", "zero-width", "combining", "space"],
)
def test_a_look_alike_new_subject_is_refused_naming_the_character(
    world: World, name: str, char: str, position: int, extra: str
) -> None:
    """acme's record-name subject ``com.acme.Moves`` (first come, first served) and globex's
    look-alike of it."""
    assert world.register("com.acme.Moves", world.acme).status_code == 200
    before = _subjects(world)
    r = world.register(quote(name, safe=""), world.globex)
    # main: 200, globex owns a subject that reads as acme's
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_code"] == 42208, body
    message = body["message"]
    assert char in message and f"position {position}" in message, message
    assert "ASCII letters, digits" in message, message
    assert extra in message, message
    assert _subjects(world) == before  # nothing registered


@pytest.mark.parametrize(
    "name", ["gx.trades-key", "gx.people-com.globex.Person", "com.globex.Thing", "a_b-1.value"]
)
def test_names_the_clients_derive_are_still_accepted(world: World, name: str) -> None:
    world.topic("gx.trades", "globex")
    world.topic("gx.people", "globex")
    r = world.register(name, world.globex)
    assert r.status_code == 200, r.text
    assert name in _subjects(world)


def test_a_subject_stored_before_the_rule_stays_readable_and_writable(world: World) -> None:
    """A name stored before the rule (here written to ``_schemas`` as Confluent's registry or
    an older hub would have) is read and takes a new version: only new names are checked."""
    hub = world.hub
    legacy = "caf\u00e9-value"
    new_id = max(hub.registry.schema_ids()) + 1
    value = {"subject": legacy, "version": 1, "id": new_id, "schema": _schema(), "deleted": False}
    key = {"keytype": "SCHEMA", "subject": legacy, "version": 1, "magic": 1}
    hub.log.append(
        "_schemas",
        [Record(value=json.dumps(value).encode(), key=json.dumps(key).encode())],
    )
    hub.registry.refresh()
    path = quote(legacy, safe="")
    read = world.c.get(f"/subjects/{path}/versions/1", headers=world.admin)
    assert read.status_code == 200, read.text
    assert read.json()["id"] == new_id
    wider = json.dumps(
        {
            "type": "record",
            "name": "Move",
            "namespace": "com.acme",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": "note", "type": ["null", "string"], "default": None},
            ],
        }
    )
    again = world.register(path, world.hub_publisher, wider)
    assert again.status_code == 200, again.text
    versions = world.c.get(f"/subjects/{path}/versions", headers=world.admin)
    assert versions.json() == [1, 2], versions.text
