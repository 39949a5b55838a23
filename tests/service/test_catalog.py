"""The dataset catalog (``governance/catalog.py``): API ``GET /v1/catalog`` and ``hub catalog``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from governance.catalog import DEFAULT_OWNER
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args


@pytest.fixture
def rt_hub(tmp_path: Path) -> Iterator[Hub]:
    # The role table: the Rego data (governance/policies/hub/data.json) is regenerated from
    # hub.authz by its owner (`python -m governance.roledata`) to grant the new actions.
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data", policy_engine="roletable"))
    yield h
    h.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def test_catalog_lists_topics_projections_with_owner_schemas_classification(hub: Hub) -> None:
    hub.log.create_topic("t.owned", 1, {"hub.owner": "risk-team"})
    g = hub.governance
    g.set_policy("topic:trades", max_age_ms=86_400_000, actor="a")
    g.place_hold("topic:payments", actor="legal")
    by_name = {d.name: d for d in hub.catalog.datasets() if d.kind == "topic"}
    projections = {d.name: d for d in hub.catalog.datasets() if d.kind == "projection"}
    trades = by_name["trades"]
    assert (trades.kind, trades.owner) == ("topic", DEFAULT_OWNER)
    assert [(s.subject, s.versions) for s in trades.schemas] == [("trades-value", (1,))]
    assert trades.retention is not None and trades.retention["max_age_ms"] == 86_400_000
    assert by_name["payments"].legal_hold and not trades.legal_hold
    assert {s.subject for s in by_name["payments"].schemas} == {
        "hub.payments.PaymentInitiated",
        "hub.payments.PaymentSettled",
        "hub.payments.PaymentFailed",
    }
    assert by_name["t.owned"].owner == "risk-team"
    assert not projections["payments"].legal_hold  # the hold is on the topic only
    assert projections["positions"].inputs == ("hub://topics/trades",)
    assert all(
        d.classification in ("public", "internal", "confidential", "pii", "restricted")
        for d in by_name.values()
    )


def test_classification_is_the_highest_over_every_version(hub: Hub) -> None:
    v1 = {
        "type": "record",
        "name": "P",
        "namespace": "t",
        "fields": [{"name": "a", "type": "string", "classification": "confidential"}],
    }
    v2 = {
        **v1,
        "fields": [
            *v1["fields"],
            {"name": "b", "type": ["null", "string"], "default": None, "classification": "pii"},
        ],
    }
    hub.log.create_topic("t.people", 1)
    hub.registry.register("t.people-value", json.dumps(v1))
    (d,) = [d for d in hub.catalog.datasets() if d.name == "t.people"]
    assert d.classification == "confidential"
    hub.registry.register("t.people-value", json.dumps(v2))
    (d,) = [d for d in hub.catalog.datasets() if d.name == "t.people"]
    assert d.classification == "pii" and d.schemas[0].versions == (1, 2)


def test_catalog_api_is_policy_checked(rt_hub: Hub) -> None:
    analyst = auth(rt_hub.keys.create(["analyst"], principal="ann").token)
    publisher = auth(rt_hub.keys.create(["publisher"], principal="pub").token)
    with TestClient(create_app(rt_hub)) as client:
        r = client.get("/v1/catalog", headers=analyst)
        assert r.status_code == 200, r.text
        names = {d["name"]: d for d in r.json()["datasets"] if d["kind"] == "topic"}
        assert names["trades"]["id"] == "hub://topics/trades"
        r = client.get("/v1/catalog?kind=projection", headers=analyst)
        assert {d["kind"] for d in r.json()["datasets"]} == {"projection"}
        assert client.get("/v1/catalog", headers=publisher).status_code == 403
        assert client.get("/v1/catalog").status_code == 401


def test_hub_catalog_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = [*admin_args(data), "catalog", "--kind", "topic"]
    result = CliRunner().invoke(main, args, env={"HUB_POLICY_ENGINE": "roletable"})
    assert result.exit_code == 0, result.output
    datasets = json.loads(result.output)
    assert "trades" in {d["name"] for d in datasets}
    assert {d["kind"] for d in datasets} == {"topic"}
