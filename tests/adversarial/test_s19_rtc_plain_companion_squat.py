"""A tenant's publisher registered ``<subject>-plain`` before another tenant registered a PII
schema under ``<subject>``. The registry keeps a PII subject's plain forms under that companion
name, owned by the base subject's owner. The squatter owned it, so acme's first registration
left its subject sealed without a companion. Every later registration or lookup of acme's plain
schema was then refused (403 subject_owned), and only an administrator could undo it. A
tenant's new ``*-plain`` subject is now refused; the companion is still written for the owner
of its base."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.adversarial._api import basic, issue_key, quiet_api

PLAIN = json.dumps(
    {
        "type": "record",
        "name": "Patient",
        "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "email", "type": "string", "classification": "pii"},
        ],
    }
)
OTHER = json.dumps(
    {
        "type": "record",
        "name": "Q",
        "namespace": "com.g",
        "fields": [{"name": "id", "type": "string"}],
    }
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    with quiet_api(tmp_path / "d") as world:
        yield world


def test_a_tenant_cannot_squat_another_subjects_plain_companion(
    world: tuple[Hub, TestClient],
) -> None:
    hub, c = world
    acme = basic(issue_key(hub, "publisher", "ann", "acme"))
    globex = basic(issue_key(hub, "publisher", "gus", "globex"))
    r = c.post("/subjects/patients-value-plain/versions", json={"schema": OTHER}, headers=globex)
    assert r.status_code == 403, r.text  # before: 200, globex owned acme's companion-to-be
    assert r.json()["reason"] == "subject_owned"
    assert "patients-value-plain" not in hub.registry.subjects()
    # a topic's subjects are its owner's (test_s20_registry_squat): acme's topic first
    admin = basic(issue_key(hub, "admin", "root"))
    topic = {"name": "patients", "partitions": 1, "tenant": "acme"}
    assert c.post("/v1/topics", json=topic, headers=admin).status_code == 201
    r = c.post("/subjects/patients-value/versions", json={"schema": PLAIN}, headers=acme)
    assert r.status_code == 200, r.text  # before: 403, and forever after
    assert hub.registry.owner("patients-value-plain") == "acme"
    r = c.post("/subjects/patients-value", json={"schema": PLAIN}, headers=acme)
    assert r.status_code == 200, r.text
    # the owner's companion exists now; another tenant still cannot add to it
    r = c.post("/subjects/patients-value-plain/versions", json={"schema": OTHER}, headers=globex)
    assert r.status_code in (403, 404), r.text
