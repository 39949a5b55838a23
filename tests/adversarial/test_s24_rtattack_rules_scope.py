"""Session 24, red team (docs/benchmarks/s24-redteam-attacker24.md): another tenant's quality
rules.

A registry subject is its tenant's own: for globex, acme's ``moves-value`` answers 404
``subject_not_found`` exactly as a missing subject (``hub.registry_scope``, session 19). But the
quality rules the hub's administrators set on it were open to every key holding ``rules.read``
(publisher, analyst, compliance officer): ``GET /v1/rules`` listed ``moves-value`` (the subject's
existence), and ``GET /v1/rules/moves-value`` or ``hub rules show moves-value`` gave its rules:
field names, the regular expression acme's ids follow, bounds, allowed values. Now a rule set is
shown where the registry would show its subject (its tenant's, the hub's, ``tenant.all``) and
the shipped ones (the hub's own types); another tenant's answers as a subject without rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hub.cli import main
from tests.adversarial._api import basic, issue_key, quiet_api
from tests.adversarial.test_s19_tenancy_registry import SUBJECT, World, _acme_subject

SECRET = "^ACME-[0-9]{6}-SECRET$"
RULES = {"rules": [{"id": "acme.id.format", "kind": "regex", "field": "id", "pattern": SECRET}]}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with quiet_api(tmp_path / "d") as (hub, c):
        w = World(hub, c)
        _acme_subject(w)
        r = c.put(f"/v1/rules/{SUBJECT}", json=RULES, headers=w.admin)
        assert r.status_code == 200, r.text
        yield w


def test_another_tenants_rules_are_not_listed_or_shown_over_http(world: World) -> None:
    w = world
    missing = w.c.get("/v1/rules/nosuch-value", headers=w.globex_reader).json()
    for who in (w.globex, w.globex_reader):
        listed = w.c.get("/v1/rules", headers=who)
        assert listed.status_code == 200, listed.text
        assert SUBJECT not in listed.json(), listed.text
        assert "trades-value" in listed.json()  # the hub's shipped rule sets stay listed
        shown = w.c.get(f"/v1/rules/{SUBJECT}", headers=who)
        assert shown.status_code == 200, shown.text
        assert SECRET not in shown.text and shown.json()["rules"] == [], shown.text
        # as a subject that does not exist (no existence oracle)
        assert {**shown.json(), "subject": "nosuch-value"} == missing
    # acme's own keys and the administrator still see them
    for who in (w.acme, w.acme_reader, w.admin):
        assert SUBJECT in w.c.get("/v1/rules", headers=who).json()
        shown = w.c.get(f"/v1/rules/{SUBJECT}", headers=who).json()
        assert shown["rules"][0]["pattern"] == SECRET


def test_another_tenants_rules_are_not_listed_or_shown_by_the_cli(world: World) -> None:
    w = world
    data = w.hub.settings.data_dir
    gus = w.hub.keys.create(["analyst"], principal="gus2", tenant="globex").token
    amy = w.hub.keys.create(["analyst"], principal="amy2", tenant="acme").token
    runner = CliRunner()

    def cli(key: str, *args: str) -> str:
        r = runner.invoke(main, ["--data-dir", str(data), "--key", key, "rules", *args])
        assert r.exit_code == 0, r.output
        return r.output

    assert SUBJECT not in cli(gus, "list")
    assert "trades-value" in cli(gus, "list")
    shown = cli(gus, "show", SUBJECT)
    assert SECRET not in shown and yaml.safe_load(shown)["rules"] == [], shown
    assert SUBJECT in cli(amy, "list")
    assert SECRET in cli(amy, "show", SUBJECT)


def test_another_tenants_rules_are_not_read_through_the_config_routes(world: World) -> None:
    """The same rules are the configuration resource ``rules:<subject>``: its value and its
    changes were shown to any ``config.read`` key (another tenant's compliance officer or
    security administrator), the regular expression in ``new_value`` and the diff."""
    w = world
    for role in ("compliance_officer", "security_admin"):
        who = basic(issue_key(w.hub, role, f"g-{role}", "globex"))
        value = w.c.get(f"/v1/config/values/rules:{SUBJECT}", headers=who)
        missing = w.c.get("/v1/config/values/rules:nosuch-value", headers=who)
        assert value.status_code == 200, value.text
        assert SECRET not in value.text and value.json()["value"] is None, value.text
        assert {**value.json(), "resource": "x"} == {**missing.json(), "resource": "x"}
        listed = w.c.get("/v1/config/changes", headers=who)
        assert listed.status_code == 200 and SECRET not in listed.text, listed.text
        assert all(c["resource"] != f"rules:{SUBJECT}" for c in listed.json())
        (change,) = w.hub.config_changes.store.changes(f"rules:{SUBJECT}")
        one = w.c.get(f"/v1/config/changes/{change.change_id}", headers=who)
        assert one.status_code == 404 and SECRET not in one.text, one.text
    # acme's own compliance officer and the administrator see them
    for who in (basic(issue_key(w.hub, "compliance_officer", "ada", "acme")), w.admin):
        assert SECRET in w.c.get(f"/v1/config/values/rules:{SUBJECT}", headers=who).text
        assert SECRET in w.c.get("/v1/config/changes", headers=who).text


def test_another_tenants_rules_are_not_read_through_hub_config(world: World) -> None:
    w = world
    data = w.hub.settings.data_dir
    gina = w.hub.keys.create(["compliance_officer"], principal="gina", tenant="globex").token
    ada = w.hub.keys.create(["compliance_officer"], principal="ada2", tenant="acme").token
    (change,) = w.hub.config_changes.store.changes(f"rules:{SUBJECT}")
    runner = CliRunner()

    def cli(key: str, *args: str) -> str:
        r = runner.invoke(main, ["--data-dir", str(data), "--key", key, "config", *args])
        return r.output + (r.stderr or "")

    assert f"rules:{SUBJECT}" not in cli(gina, "list")
    assert SECRET not in cli(gina, "show", f"rules:{SUBJECT}")
    out = cli(gina, "show", change.change_id)
    assert SECRET not in out, out
    assert f"rules:{SUBJECT}" in cli(ada, "list")
    assert SECRET in cli(ada, "show", change.change_id)
