"""deploy/helm/hub: helm lint, helm template piped into kubeconform (strict, Kubernetes 1.37
schemas made standalone from the kubernetes-validate package), and what the manifests promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import ROOT, run, tool

CHART = ROOT / "deploy" / "helm" / "hub"
KUBE = "1.37.0"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = run(tool("helm"), "template", "hub", str(CHART), "--kube-version", KUBE)
    assert done.returncode == 0, done.stderr
    out = tmp_path_factory.mktemp("helm") / "hub.yaml"
    out.write_text(done.stdout)
    return out


def _kubeconform(path: Path) -> tuple[int, str]:
    schemas = tool("k8s-schemas")
    done = run(
        tool("kubeconform"),
        "-strict",
        "-summary",
        "-kubernetes-version",
        KUBE,
        "-schema-location",
        schemas + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        str(path),
    )
    return done.returncode, done.stdout + done.stderr


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_helm_lint_strict() -> None:
    done = run(tool("helm"), "lint", "--strict", "--kube-version", KUBE, str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_manifest_is_valid_kubernetes(rendered: Path) -> None:
    code, output = _kubeconform(rendered)
    assert code == 0, output
    assert "Invalid: 0, Errors: 0, Skipped: 0" in output, output


def test_kubeconform_rejects_an_invalid_manifest(rendered: Path, tmp_path: Path) -> None:
    docs = _docs(rendered)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {
        "not": "a port"
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    code, output = _kubeconform(bad)
    assert code != 0 and "Invalid: 1" in output, output


def test_probes_resources_security_and_vault(rendered: Path) -> None:
    docs = _docs(rendered)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments} == {
        "api",
        "scoring-payment-risk",
        "scoring-price-anomaly",
    }  # ha (the default): the elected API replica runs the projections
    for d in deployments:
        pod = d["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        annotations = pod["metadata"]["annotations"]
        assert annotations["vault.hashicorp.com/agent-inject"] == "true"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["HUB_CONFIG_FILE"].startswith("/vault/secrets/")
        assert env["HUB_METRICS_TOKEN_FILE"].startswith("/vault/secrets/")
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets come from Vault only"


def test_disruption_budgets_and_default_deny_network_policy(rendered: Path) -> None:
    docs = _docs(rendered)
    pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for d in docs
            if d["kind"] == "PodDisruptionBudget"}  # fmt: skip
    assert pdbs == {"api", "scoring-payment-risk", "scoring-price-anomaly"}
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {8080}


def test_image_args_are_the_ones_ci_runs(rendered: Path) -> None:
    for d in _docs(rendered):
        if d["kind"] == "Deployment":
            args = d["spec"]["template"]["spec"]["containers"][0]["args"]
            done = run(str(ROOT / ".venv" / "bin" / "hub"), *args, "--help")
            assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("model", ["payment_risk", "price_anomaly"])
def test_each_models_scoring_worker_is_probed_on_its_own_health_port(
    rendered: Path, model: str
) -> None:
    docs = _docs(rendered)
    component = "scoring-" + model.replace("_", "-")
    (scoring,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert scoring["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    pod = scoring["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == component
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["ml", "score", model] and "--follow" in args
    port = int(args[args.index("--health-port") + 1])
    assert {p["containerPort"] for p in container["ports"]} == {port}
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    env = {e["name"]: e["value"] for e in container["env"]}
    key_file = env["HUB_API_KEY_FILE"]
    assert key_file.startswith("/vault/secrets/")
    name = key_file.rsplit("/", 1)[1]
    assert f"vault.hashicorp.com/agent-inject-template-{name}" in pod["metadata"]["annotations"]
    assert scoring["spec"]["strategy"]["type"] == "Recreate"  # one consumer of the group


def test_api_replicas_elect_a_leader_for_the_single_writer_parts(rendered: Path) -> None:
    docs = _docs(rendered)
    (api,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    assert api["spec"]["replicas"] >= 2
    (container,) = api["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HUB_LEADER_ELECTION"] == "postgres"
    assert env["HUB_LEDGER_STORE"] == "postgres"  # the fenced ledger store
    assert env["HUB_PROJECTION_AUTOSTART"] == "true"  # run by whichever replica leads
    assert float(env["HUB_LEADER_LEASE_S"]) > 0
    assert env["HUB_KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["HUB_VIEWS_ANALYTICS"] == "chdb"  # each replica's own copy (a server: unfenced)
    template = api["spec"]["template"]["metadata"]["annotations"]
    config = next(v for k, v in template.items() if k.endswith("agent-inject-template-hub.yaml"))
    assert "ledger_postgres_url" in config
