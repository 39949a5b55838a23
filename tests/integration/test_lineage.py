"""Lineage (``governance/lineage.py``): OpenLineage run events on ``hub.lineage``, the graph API
``GET /v1/lineage/graph`` and ``hub lineage``."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core import lineage
from core.ports.eventlog import Record
from governance.catalog import catalog
from governance.retention import Governance, RetentionJob
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args


@pytest.fixture
def rt_hub(tmp_path: Path) -> Iterator[Hub]:
    # The role table until governance/policies/hub/data.json is regenerated from hub.authz.
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data", policy_engine="roletable"))
    yield h
    h.close()


def test_run_emits_start_and_complete_as_openlineage_events(hub: Hub) -> None:
    src, out = lineage.topic_dataset("trades"), lineage.export_dataset("evidence-2026")
    with lineage.run(hub, "evidence.export", [src], [out]) as run_id:
        pass
    events = lineage.events(hub, "evidence.export")
    assert [e["event_type"] for e in events] == ["START", "COMPLETE"]
    assert {e["run_id"] for e in events} == {run_id}
    uuid.UUID(run_id)
    doc = json.loads(events[-1]["openlineage"])
    assert doc["eventType"] == "COMPLETE" and doc["run"]["runId"] == run_id
    assert doc["job"] == {"namespace": "hub", "name": "evidence.export", "facets": {}}
    assert doc["inputs"] == [{"namespace": "hub://topics", "name": "trades", "facets": {}}]
    assert events[-1]["outputs"] == ["hub://exports/evidence-2026"]
    exports = [d for d in catalog(hub) if d.kind == "export"]
    assert [(d.name, d.inputs) for d in exports] == [("evidence-2026", ("hub://topics/trades",))]


def test_a_failing_run_emits_fail_with_the_error_and_reraises(hub: Hub) -> None:
    with pytest.raises(RuntimeError, match="boom"), lineage.run(hub, "ingest.files"):
        raise RuntimeError("boom")
    events = lineage.events(hub, "ingest.files")
    assert [e["event_type"] for e in events] == ["START", "FAIL"]
    facet = json.loads(events[-1]["openlineage"])["run"]["facets"]["errorMessage"]
    assert facet["message"] == "RuntimeError: boom"


def test_projection_runs_rebuilds_and_retention_are_in_the_graph(hub: Hub) -> None:
    hub.projections.run(["positions"])
    hub.projections.rebuild("positions")
    hub.log.create_topic("t.raw", 1)
    hub.log.append("t.raw", [Record(b"x", timestamp_ms=1_000)])
    Governance(hub).set_policy("topic:t.raw", max_age_ms=1, actor="a")
    RetentionJob(hub).run(10_000)
    g = lineage.graph(hub)
    ids = {n["id"]: n for n in g["nodes"]}
    assert ids["job:hub/projection.positions"]["last_run"]["state"] == "COMPLETE"
    assert "job:hub/projection.positions.rebuild" in ids
    assert ids["dataset:hub://projections/positions"]["kind"] == "dataset"
    edges = {(e["from"], e["to"], e["kind"]) for e in g["edges"]}
    assert ("dataset:hub://topics/trades", "job:hub/projection.positions", "reads") in edges
    assert (
        "job:hub/projection.positions",
        "dataset:hub://projections/positions",
        "writes",
    ) in edges
    assert ("job:hub/retention", "dataset:hub://topics/t.raw", "writes") in edges


def test_lineage_graph_api_and_cli(rt_hub: Hub, tmp_path: Path) -> None:
    with lineage.run(rt_hub, "ingest.http", [], [lineage.topic_dataset("trades")]):
        pass
    token = rt_hub.keys.create(["compliance_officer"], principal="cora").token
    headers = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    ml = rt_hub.keys.create(["ml_engineer"], principal="mel").token
    with TestClient(create_app(rt_hub)) as client:
        r = client.get("/v1/lineage/graph", headers=headers)
        assert r.status_code == 200, r.text
        assert {
            "from": "job:hub/ingest.http",
            "to": "dataset:hub://topics/trades",
            "kind": "writes",
        } in r.json()["edges"]
        r = client.get("/v1/lineage/events?job=ingest.http", headers=headers)
        assert [e["event_type"] for e in r.json()["events"]] == ["START", "COMPLETE"]
        bad = {"Authorization": "Basic " + base64.b64encode(ml.encode()).decode()}
        assert client.get("/v1/lineage/graph", headers=bad).status_code == 403
    data = rt_hub.settings.data_dir
    result = CliRunner().invoke(
        main, [*admin_args(data), "lineage"], env={"HUB_POLICY_ENGINE": "roletable"}
    )
    assert result.exit_code == 0, result.output
    assert "job:hub/ingest.http" in {n["id"] for n in json.loads(result.output)["nodes"]}
