"""Session 18 follow-up: the registry refuses a schema named like the hub's own actions.

A publisher key registered a schema whose full name was ``lake.export`` and published one
record: its ledger entry's action read as the hub's lake export (``hub lake verify`` trusted it;
``docs/benchmarks/s18-redteam-new.md``). The registry now answers 422 ``reserved_name`` naming
the collision for every action the hub writes (its audit actions, the policy actions of its
decisions) and for the namespace ``hub.*``, except the business types the hub ships for
publishers (``hub.payments.*`` ...). A subject registered before keeps working and
``hub ledger verify`` names it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tests.adversarial._api import Api


def _record(name: str, namespace: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "record",
        "name": name,
        "fields": [{"name": "details", "type": "string"}],
    }
    if namespace is not None:
        out["namespace"] = namespace
    return out


@pytest.mark.parametrize(
    ("subject", "schema", "named"),
    [
        ("notes-value", _record("export", "lake"), "lake.export"),
        ("notes-value", _record("subject.erase"), "subject.erase"),
        ("lake.export", _record("export", "lake"), "lake.export"),  # RecordNameStrategy
        ("notes-value", _record("Erase", "Subject"), "Subject.Erase"),  # case folded
        ("notes-value", _record("verify", "ledger"), "ledger.verify"),
        ("notes-value", _record("read", "event"), "event.read"),  # a decision's action
        ("notes-value", _record("AuditActionRecorded", "hub"), "hub.AuditActionRecorded"),
        ("notes-value", _record("Mine", "hub.payments"), "hub.payments.Mine"),
        ("notes-value", ["null", _record("export", "lake")], "lake.export"),  # union branch
        ("notes-value", {"type": _record("export", "lake")}, "lake.export"),  # wrapped
    ],
)
def test_a_schema_named_like_the_hub_is_refused(
    api: Api, subject: str, schema: Any, named: str
) -> None:
    r = api.client.post(
        f"/subjects/{subject}/versions",
        json={"schema": json.dumps(schema)},
        headers=api.as_role("publisher"),
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "reserved_name", body
    assert named in body["message"] and subject in body["message"], body
    assert subject not in api.hub.registry.subjects(include_deleted=True)


def test_publishers_names_and_the_shipped_business_types_still_register(api: Api) -> None:
    h = api.as_role("publisher")
    for subject, schema in [
        ("notes-value", _record("Note", "com.acme")),
        ("exports-value", _record("export", "com.acme.lake")),  # lake.* elsewhere is fine
        ("ledger-value", _record("Entry", "ledger")),  # not an action the hub writes
    ]:
        r = api.client.post(
            f"/subjects/{subject}/versions", json={"schema": json.dumps(schema)}, headers=h
        )
        assert r.status_code == 200, (subject, r.text)
    shipped = api.hub.registry.get_version("hub.payments.PaymentInitiated", "latest").schema.text
    r = api.client.post(
        "/subjects/hub.payments.PaymentInitiated/versions", json={"schema": shipped}, headers=h
    )
    assert r.status_code == 200, r.text


def test_a_subject_registered_before_keeps_working_and_verify_names_it(api: Api) -> None:
    from hub.cli import main

    hub = api.hub
    legacy = _record("export", "lake")
    hub.registry.register("notes-value", json.dumps(legacy))  # registered before the rule
    evolved = dict(legacy, fields=[*legacy["fields"], {"name": "n", "type": "int", "default": 0}])
    r = api.client.post(
        "/subjects/notes-value/versions",
        json={"schema": json.dumps(evolved)},
        headers=api.as_role("publisher"),
    )
    assert r.status_code == 200, r.text
    # a second reserved name is still refused on that subject
    r = api.client.post(
        "/subjects/notes-value/versions",
        json={"schema": json.dumps(_record("erase", "subject"))},
        headers=api.as_role("publisher"),
    )
    assert r.status_code == 422 and "subject.erase" in r.json()["message"], r.text
    hub.ledger.sync(force_checkpoint=True)
    out = CliRunner().invoke(
        main,
        ["--data-dir", str(hub.settings.data_dir), "ledger", "verify"],
        env={"HUB_API_KEY": api.tokens["compliance_officer"]},
    )
    assert out.exit_code == 0, out.output
    assert "notes-value" in out.output and "lake.export" in out.output, out.output


def test_the_cli_refuses_the_same_names(api: Api, tmp_path: Any) -> None:
    from hub.cli import main

    path = tmp_path / "export.avsc"
    path.write_text(json.dumps(_record("export", "lake")))
    args = ["--data-dir", str(api.hub.settings.data_dir), "schema", "register", "notes-value"]
    out = CliRunner().invoke(
        main,
        [*args, str(path)],
        env={"HUB_API_KEY": api.tokens["publisher"]},
    )
    assert out.exit_code != 0 and "lake.export" in out.output, out.output
    assert "notes-value" not in api.hub.registry.subjects(include_deleted=True)
