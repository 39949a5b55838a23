"""deploy/compose/compose.yaml: valid against the Compose Specification, no dangling reference,
every component of the distributed footprint present, and the hub's commands real ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.features import VIEWS
from tests.ops.conftest import ROOT, run, tool

COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
COMPOSE_HA = ROOT / "deploy" / "compose" / "compose.ha.yaml"  # two hubs, three brokers
FILES = pytest.mark.parametrize("compose", [COMPOSE, COMPOSE_HA], ids=["single", "ha"])


def _doc(path: Path = COMPOSE) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


@FILES
def test_valid_against_the_compose_specification(compose: Path) -> None:
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose))
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  api:\n    image: x\n    ports: 8080\n    restart: sometimes\n")
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad))
    assert done.returncode != 0


def test_every_component_of_the_distributed_footprint() -> None:
    services = _doc()["services"]
    images = " ".join(str(s.get("image", "")) for s in services.values())
    for component in ("kafka", "postgres", "opa", "openbao", "redis", "versitygw", "flink"):
        assert component in images, f"no {component} service"
    assert "opentelemetry-collector" in images, "no collector for the hub's traces"
    assert {"hub-api", "hub-projections", "hub-scoring", "prometheus"} <= set(services)


def test_the_s3_server_is_the_one_infra_runs() -> None:
    """compose and infra/s3.sh run the same S3 server and version (versitygw)."""
    script = (ROOT / "infra" / "s3.sh").read_text()
    version = script.split('VGW_VERSION="', 1)[1].split('"', 1)[0]
    s3 = _doc()["services"]["s3"]
    assert s3["image"].endswith(f"/versitygw:{version}"), (s3["image"], version)
    assert "posix" in s3["command"]
    env = _doc()["x-hub"]["environment"]
    assert env["HUB_OBJECT_STORE"] == "s3" and env["HUB_S3_ENDPOINT"].startswith("s3:")


SCORING = {"hub-scoring": "payment_risk", "hub-scoring-price-anomaly": "price_anomaly"}


def test_workers_are_probed_on_their_real_health() -> None:
    services = _doc()["services"]
    api = " ".join(services["hub-api"]["healthcheck"]["test"])
    assert "/ready" in api
    for name, model in SCORING.items():
        scoring = services[name]
        command = scoring["command"]
        assert command[command.index("score") + 1] == model, name
        port = command[command.index("--health-port") + 1]
        assert f"127.0.0.1:{port}/health" in " ".join(scoring["healthcheck"]["test"]), name
        assert "--follow" in command


def test_every_model_the_helm_chart_serves_has_a_compose_worker() -> None:
    """The two deployments serve the same models (deploy/helm values ``scoring.models``)."""
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "hub" / "values.yaml").read_text())
    served = {
        s["command"][s["command"].index("score") + 1]
        for s in _doc()["services"].values()
        if "score" in s.get("command", [])
    }
    assert set(values["scoring"]["models"]) == served == set(SCORING.values())
    assert served <= set(VIEWS), f"{served - set(VIEWS)}: no such feature view"


@FILES
def test_no_dangling_reference_and_only_loopback_ports(compose: Path) -> None:
    doc = _doc(compose)
    services = doc["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, (list, dict)) else []:
            assert other in services, f"{name} depends on unknown service {other}"
        for secret in service.get("secrets", []):
            assert secret in doc.get("secrets", {}), f"{name}: undeclared secret {secret}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in doc.get("volumes", {}), f"{name}: undeclared volume {source}"
            else:
                assert (compose.parent / source).exists(), f"{name}: {source} does not exist"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("service", ["hub-api", "hub-projections", "hub-scoring"])
def test_hub_commands_are_real_commands(service: str) -> None:
    svc = _doc()["services"][service]
    assert svc["user"] == "10001:10001" and svc["read_only"] is True
    done = run(str(ROOT / ".venv" / "bin" / "hub"), *svc["command"], "--help")
    assert done.returncode == 0, done.stderr


def test_the_ha_variant_elects_one_leader_among_two_hubs_on_three_brokers() -> None:
    """compose.ha.yaml: the settings the HA tests (tests/ha) run with, on containers."""
    services = _doc(COMPOSE_HA)["services"]
    hubs = {n: s for n, s in services.items() if n.startswith("hub-")}
    assert set(hubs) == {"hub-1", "hub-2"}
    ids: set[str] = set()
    for svc in hubs.values():
        env = svc["environment"]
        assert env["HUB_LEADER_ELECTION"] == "postgres" and env["HUB_LEDGER_STORE"] == "postgres"
        assert env["HUB_LEADER_NAME"] == "hub" and env["HUB_KAFKA_REPLICATION_FACTOR"] == "3"
        # chDB: each process's own analytics views (a ClickHouse server cannot be fenced)
        assert env["HUB_VIEWS_ANALYTICS"] == "chdb"
        brokers = env["HUB_KAFKA_BOOTSTRAP_SERVERS"].split(",")
        assert sorted(b.split(":")[0] for b in brokers) == ["kafka-1", "kafka-2", "kafka-3"]
        ids.add(env["HUB_LEADER_ID"])
        assert svc["command"][0] == "serve" and "/ready" in " ".join(svc["healthcheck"]["test"])
        done = run(str(ROOT / ".venv" / "bin" / "hub"), *svc["command"], "--help")
        assert done.returncode == 0, done.stderr
    assert ids == {"hub-1", "hub-2"}  # distinct: the lease's holders and chDB folders
    nodes = {n: s["environment"] for n, s in services.items() if n.startswith("kafka-")}
    assert len(nodes) == 3
    assert {e["KAFKA_NODE_ID"] for e in nodes.values()} == {"1", "2", "3"}
    assert len({e["CLUSTER_ID"] for e in nodes.values()}) == 1
    for env in nodes.values():
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@kafka-") == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    lb = (COMPOSE_HA.parent / "haproxy.cfg").read_text()
    assert "server hub-1 hub-1:8080 check" in lb and "server hub-2 hub-2:8080 check" in lb
