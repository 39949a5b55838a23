"""Session 18 follow-up: a publisher's record cannot pass for the hub's own audit action in the
ledger's entry finders.

For a data record the ledger's ``action`` column is its event type, the full name of a schema
the publisher registered. A subject registered before the registry refused such names (or a
record on it) named ``subject.erase`` answered ``GET /v1/ledger/entries?action=subject.erase``
beside, or instead of, the hub's erasures; the console's ledger page and ``hub ledger entries``
ask the same ``Ledger.entries``. A filter on one of the hub's action names now matches internal
topics only (``core.hubactions``); the data record stays reachable by its topic.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from core.events import OutgoingEvent
from core.hubactions import AUDIT_ACTIONS, AUDIT_TOPIC, HUB_ACTIONS
from ledger.service import AUDIT_TOPIC as LEDGER_AUDIT_TOPIC
from tests.adversarial._api import Api, basic

FORGED = {
    "type": "record",
    "name": "erase",
    "namespace": "subject",  # full name "subject.erase": the hub's erasure action
    "fields": [{"name": "resource", "type": "string"}],
}


def _forge(api: Api) -> None:
    """A legacy subject (registered before the registry refused the name, so straight into the
    registry) and one record published on it with a publisher's key."""
    h = api.hub
    h.log.create_topic("notes", 1, {"hub.subject.strategy": "topic"})
    h.registry.register("notes-value", json.dumps(FORGED))
    event = OutgoingEvent(value={"resource": "subject:alice"}, event_type="subject.erase")
    h.publisher.publish("notes", [event], producer="p-publisher", tenant="default")


def test_the_entries_api_answers_the_hubs_erasures_only(api: Api) -> None:
    _forge(api)
    h = api.hub
    # the hub's own erasure entry (what Erasure.erase records)
    h.ledger.record_action("p-admin", "subject.erase", "subject:bob", tenant="default")
    h.ledger.sync(force_checkpoint=True)
    officer = api.as_role("compliance_officer")
    r = api.client.get("/v1/ledger/entries", params={"action": "subject.erase"}, headers=officer)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [(e["topic"], e["resource"]) for e in entries] == [(AUDIT_TOPIC, "subject:bob")], entries
    # nothing is lost: asked by its topic, the publisher's record is there, under its topic
    r = api.client.get(
        "/v1/ledger/entries", params={"action": "subject.erase", "topic": "notes"}, headers=officer
    )
    assert [e["topic"] for e in r.json()["entries"]] == ["notes"], r.text
    # a business event type is still found by its action alone
    r = api.client.get("/v1/ledger/entries", params={"topic": "notes"}, headers=officer)
    assert len(r.json()["entries"]) == 1, r.text


def test_no_erasure_at_all_means_no_entry(api: Api) -> None:
    _forge(api)
    api.hub.ledger.sync(force_checkpoint=True)
    assert api.hub.ledger.entries(action="subject.erase") == []
    assert api.hub.ledger.entries(action="Subject.Erase") == []  # the column is exact anyway
    assert len(api.hub.ledger.entries(action="subject.erase", topic="notes")) == 1


def test_the_cli_entries_finder_skips_the_publishers_record(api: Api) -> None:
    from hub.cli import main

    _forge(api)
    api.hub.ledger.sync(force_checkpoint=True)
    data = Path(api.hub.settings.data_dir)
    token = api.tokens["compliance_officer"]
    r = CliRunner().invoke(
        main,
        ["--data-dir", str(data), "ledger", "entries", "--action", "subject.erase"],
        env={"HUB_API_KEY": token},
    )
    assert r.exit_code == 0, r.output
    assert '"topic": "notes"' not in r.output, r.output


def test_every_literal_audit_action_of_the_source_is_reserved() -> None:
    """A new ``record_action("x.y", ...)`` must be listed, or the registry would let a
    publisher name a schema after it."""
    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    pattern = re.compile(r"record_action\(\s*[^,()]+,\s*\"([a-z_.]+)\"", re.S)
    # the project's own folders only: hidden ones (.venv, the services' .infra state, which
    # a running broker changes under the walk) and the tests are not its source
    tops = [d for d in root.iterdir() if d.is_dir() and d.name[0] not in "._" and d.name != "tests"]
    for path in (p for top in tops for p in top.rglob("*.py")):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        found |= set(pattern.findall(path.read_text("utf-8")))
    assert found, "no record_action call found: the pattern is stale"
    assert found <= AUDIT_ACTIONS, sorted(found - AUDIT_ACTIONS)
    assert AUDIT_ACTIONS <= HUB_ACTIONS
    assert LEDGER_AUDIT_TOPIC == AUDIT_TOPIC


__all__ = ["basic"]
