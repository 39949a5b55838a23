"""Kafka Connect (distributed mode, Debezium) in deploy/: the compose service and the Helm
template (rendered with ``connect.enabled=true``) pass the same validators as the rest of
deploy/ (Compose Specification schema, ``helm lint --strict``, kubeconform), and agree with what
infra/connect.sh runs and tests/ha/test_connect.py tests: the Debezium version, JSON converters
without schemas, the connector settings the hub's Debezium source relies on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import ROOT, run, tool

COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
CHART = ROOT / "deploy" / "helm" / "hub"
KUBE = "1.37.0"
SCRIPT = (ROOT / "infra" / "connect.sh").read_text()
DEBEZIUM = re.search(r'^DEBEZIUM_VERSION="([^"]+)"', SCRIPT, re.M).group(1)  # type: ignore[union-attr]
# What ingest/debezium.py relies on, as infra/connect.sh capture writes it.
RELIED_ON = {
    "plugin.name": "pgoutput",
    "decimal.handling.mode": "string",
    "tombstones.on.delete": "false",
    "publication.autocreate.mode": "disabled",
}


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = run(
        tool("helm"), "template", "hub", str(CHART), "--kube-version", KUBE,
        "--set", "connect.enabled=true",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path_factory.mktemp("helm-connect") / "hub.yaml"
    out.write_text(done.stdout)
    return out


def test_the_script_pins_what_ingest_relies_on() -> None:
    for key, value in RELIED_ON.items():
        assert f'"{key}": "{value}"' in SCRIPT, key
    assert "value.converter.schemas.enable=false" in SCRIPT


def test_compose_runs_connect_distributed_with_json_and_logical_postgres() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    connect = doc["services"]["kafka-connect"]
    assert connect["image"] == f"quay.io/debezium/connect:{DEBEZIUM}"
    env = connect["environment"]
    assert (
        env["GROUP_ID"]
        and len({env[f"{k}_STORAGE_TOPIC"] for k in ("CONFIG", "OFFSET", "STATUS")}) == 3
    )
    assert env["VALUE_CONVERTER"].endswith("JsonConverter")
    assert env["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == "false"
    assert "/health" in " ".join(connect["healthcheck"]["test"])
    assert "wal_level=logical" in doc["services"]["postgres"]["command"]
    assert "CDC_PASSWORD=" in (COMPOSE.parent / "example.env").read_text()
    example = json.loads((ROOT / "deploy" / "connect" / "accounts-cdc.json").read_text())
    assert {k: example[k] for k in RELIED_ON} == RELIED_ON
    assert example["database.password"] == "${env:CDC_PASSWORD}"  # no secret in the repo


def test_helm_lint_strict_with_connect() -> None:
    done = run(tool("helm"), "lint", "--strict", "--kube-version", KUBE, str(CHART),
               "--set", "connect.enabled=true")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_connect_manifests_are_valid_kubernetes(rendered: Path) -> None:
    schemas = tool("k8s-schemas")
    done = run(
        tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", KUBE,
        "-schema-location", schemas + "/{{ .ResourceKind }}{{ .KindSuffix }}.json", str(rendered),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Invalid: 0, Errors: 0" in done.stdout


def test_the_workers_form_one_group_with_their_own_probes_and_network_policy(
    rendered: Path,
) -> None:
    docs = _docs(rendered.read_text())
    (deployment,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-connect")
    ]
    assert deployment["spec"]["replicas"] >= 2  # distributed: tasks move to a surviving worker
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(f":{DEBEZIUM}")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GROUP_ID"] and env["CONFIG_STORAGE_TOPIC"] != env["OFFSET_STORAGE_TOPIC"]
    assert env["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == "false"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["memory"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    hub_policy = policies.pop("hub")
    selects = hub_policy["spec"]["podSelector"]["matchLabels"]
    assert not selects.items() <= pod_labels.items(), "the hub's policy would block port 8083"
    (mine,) = policies.values()
    assert mine["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["port"] for r in mine["spec"]["ingress"] for p in r["ports"]} == {8083}
    (cm,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-connectors")
    ]
    accounts = json.loads(cm["data"]["accounts.json"])
    assert {k: accounts[k] for k in RELIED_ON} == RELIED_ON
    assert accounts["database.password"].startswith("${file:/vault/secrets/")
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_connect_is_off_by_default() -> None:
    done = run(tool("helm"), "template", "hub", str(CHART), "--kube-version", KUBE)
    assert done.returncode == 0, done.stderr
    assert not [d for d in _docs(done.stdout) if "connect" in d["metadata"]["name"]]
