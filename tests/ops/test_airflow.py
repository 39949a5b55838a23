"""deploy/airflow/dags: every DAG imports, and `airflow dags test` runs each one offline (Airflow
in its own virtualenv, SQLite metadata) against a real `hub serve` holding the demo day."""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.backup import CHUNKS
from tests.adversarial._people import enrolled
from tests.ops.conftest import ROOT, run, tool
from tests.ops.hubserver import HUB, Served, serve

pytestmark = pytest.mark.timeout(2400)  # Airflow's start-up, a hub with the demo day, 7 DAG runs

DAGS = ROOT / "deploy" / "airflow" / "dags"
EXPECTED = {
    "hub_nightly_evidence",
    "hub_daily_reports",
    "hub_reconciliation",
    "hub_retention",
    "hub_ml_retraining",
    "hub_backup",
}
DAY = "2026-12-03"  # a run on the 3rd covers the 2nd in the evidence DAG; any date works offline


def _env(home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AIRFLOW"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # INFO: `dags test` says "DagRun Finished ... state=success" at that level only.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


class Airflow:
    """One Airflow process for the module (tests/ops/airflow_runner.py): each request runs an
    `airflow` CLI command in it, so Airflow's start-up is paid once, not per DAG run."""

    def __init__(self, exe: str, env: dict[str, str], home: Path) -> None:
        self.env = env
        self._home = home
        self._count = 0
        python = str(Path(exe).parent / "python")
        self._proc = subprocess.Popen(
            [python, str(Path(__file__).with_name("airflow_runner.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    def run(
        self, env: dict[str, str], argv: list[str] | None = None, code: str = ""
    ) -> tuple[int, str]:
        assert self._proc.stdin and self._proc.stdout
        self._count += 1
        out = self._home / f"run-{self._count}.log"
        request: dict[str, object] = {"env": env, "out": str(out)}
        request.update({"code": code} if code else {"argv": argv})
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        said = out.read_text(errors="replace") if out.exists() else ""
        assert line, f"the Airflow runner died; its last output: {said[-4000:]}"
        return int(json.loads(line)["rc"]), out.read_text(errors="replace")

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    runner = Airflow(tool("airflow"), _env(home), home)
    rc, output = runner.run(runner.env, ["db", "migrate"])
    assert rc == 0, output[-3000:]
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("hub")
    # small cold-tier segments, so the demo day has closed segments to archive
    with serve(tmp, demo=True, extra_env={"HUB_TIER_SEGMENT_RECORDS": "100"}) as served:
        key = tmp / "batch.key"  # a person for the batch jobs, not the admin
        ml_key = tmp / "ml.key"  # the retraining DAG's person: the batch key cannot train
        # roles that may approve are enrolled, never handed over (governance.enrolment): the
        # admin requests, a witness approves when needed, the key is redeemed here
        h = bootstrap(load_settings(environ={}, data_dir=served.data_dir))
        try:
            admin = Principal("admin", frozenset({"admin"}))
            key.write_text(enrolled(h, admin, ["compliance_officer"], owner="batch-ops").token)
            ml_key.write_text(enrolled(h, admin, ["ml_engineer"], owner="ml-ops").token)
        finally:
            h.close()
        yield served, key


def test_every_dag_imports(airflow: Airflow) -> None:
    code = (  # the DAG folder on sys.path: what Airflow's own processes do
        f"import json, sys; sys.path.insert(0, {str(DAGS)!r}); "
        "from airflow.models.dagbag import DagBag; "
        f"b = DagBag({str(DAGS)!r}); "
        "print(json.dumps({'dags': sorted(b.dag_ids), 'errors': {k: str(v) for k, v in "
        "b.import_errors.items()}}))"
    )
    rc, output = airflow.run(airflow.env, code=code)
    assert rc == 0, output[-3000:]
    found = json.loads(output.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert set(found["dags"]) == EXPECTED


def _dags_test(
    airflow: Airflow,
    hub: tuple[Served, Path],
    dag: str,
    out: Path,
    extra: dict[str, str] | None = None,
) -> str:
    served, key = hub
    env = {
        **airflow.env,
        "HUB_URL": served.url,
        "HUB_API_KEY_FILE": str(key),
        "HUB_ML_API_KEY_FILE": str(key.parent / "ml.key"),
        "HUB_BATCH_OUTPUT": str(out),
        "HUB_VERIFY_SCRIPT": str(ROOT / "audit" / "verify.py"),
        **(extra or {}),
    }
    rc, output = airflow.run(env, ["dags", "test", dag, DAY])
    assert rc == 0, output[-4000:]
    assert re.search(r"DagRun Finished.*?state=success", output), output[-4000:]
    return output


def test_nightly_evidence_pack_verifies(
    airflow: Airflow, hub: tuple[Served, Path], tmp_path: Path
) -> None:
    output = _dags_test(airflow, hub, "hub_nightly_evidence", tmp_path)
    pack = tmp_path / "evidence" / "2026-12-02.zip"
    assert zipfile.is_zipfile(pack)
    assert "OK evidence pack" in output  # check_pack ran the stand-alone verifier on it


def test_daily_reports_are_written(
    airflow: Airflow, hub: tuple[Served, Path], tmp_path: Path
) -> None:
    output = _dags_test(airflow, hub, "hub_daily_reports", tmp_path)
    day = tmp_path / "reports" / DAY
    for kind in ("compliance-daily", "data-quality"):  # signed, fetched, verified offline
        with zipfile.ZipFile(day / f"{kind}.zip") as zf:
            manifest = json.loads(zf.read("manifest.json"))
        assert manifest["kind"] == kind and "report.pdf" in manifest["files"]
    assert manifest["summary"]  # data-quality's counters
    with zipfile.ZipFile(day / "compliance-daily.zip") as zf:
        assert json.loads(zf.read("manifest.json"))["day"] == "2026-12-02"
    for kind in ("compliance-daily", "data-quality"):  # the stand-alone verifier, trusted key
        assert f"OK hub-report/v1 report {kind}:" in output, output[-4000:]
    assert "checked with the trusted key" in output
    volumes = (day / "volumes_by_instrument.csv").read_text().splitlines()
    assert volumes[0] == '"instrument","currency","volume","bars"' and len(volumes) > 1
    assert (day / "payment_status.csv").read_text().startswith('"status","currency","payments"')
    assert json.loads((day / "quality.json").read_text())


def test_reconciliation_and_retention_run(
    airflow: Airflow, hub: tuple[Served, Path], tmp_path: Path
) -> None:
    served, _ = hub
    _dags_test(airflow, hub, "hub_reconciliation", tmp_path)
    output = _dags_test(airflow, hub, "hub_retention", tmp_path)
    assert '"segments_offloaded": ' in output  # the archive task ran before apply
    status = run(
        str(HUB), "--data-dir", str(served.data_dir), "--key-file",
        str(served.admin_key_file), "tier", "status",
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    cold = [row for row in json.loads(status.stdout) if row["cold_segments"] > 0]
    assert cold, status.stdout  # closed segments of the demo day are in the cold tier
    _dags_test(airflow, hub, "hub_reconciliation", tmp_path)  # the ledger still verifies


def test_retraining_makes_a_challenger_and_reports_it(
    airflow: Airflow, hub: tuple[Served, Path], tmp_path: Path
) -> None:
    served, key = hub
    report = tmp_path / "ml" / DAY / "payment_risk.json"
    _dags_test(airflow, hub, "hub_ml_retraining", tmp_path)
    first = json.loads(report.read_text())
    assert first["stage"] == "NONE" and first["champion"] is None  # registered, not promoted
    assert first["holdout"]["auc"] > 0.5
    # two people make it the champion (never the DAG); the next run trains a challenger
    base = [str(HUB), "--data-dir", str(served.data_dir), "ml"]
    version = str(first["version"])
    ml_key = (key.parent / "ml.key").read_text().strip()
    done = run(*base, "promote", "payment_risk", version, "--reason", "test", "--key", ml_key)
    assert done.returncode == 0, done.stdout + done.stderr
    change = json.loads(done.stdout)["change_id"]
    done = run(*base, "approve", change, "--key", key.read_text().strip())
    assert done.returncode == 0 and '"status": "applied"' in done.stdout, done.stderr
    output = _dags_test(airflow, hub, "hub_ml_retraining", tmp_path)
    second = json.loads(report.read_text())
    assert second["stage"] == "CHALLENGER" and second["version"] == first["version"] + 1
    assert second["champion"]["version"] == first["version"] and "auc" in second["delta"]
    assert second["ab"]["champion"] == first["version"]  # the champion stays
    assert f"vs champion v{first['version']}" in output


def test_backup_is_created_and_verified(
    airflow: Airflow, hub: tuple[Served, Path], tmp_path: Path
) -> None:
    served, _ = hub
    kek = tmp_path / "secrets" / "backup.kek"  # apart from the data folder and the store
    kek.parent.mkdir()
    done = run(str(HUB), "backup", "kek", str(kek))
    assert done.returncode == 0, done.stderr
    extra = {
        "HUB_CLI": str(HUB),
        "HUB_DATA_DIR": str(served.data_dir),
        "HUB_BACKUP_KEY_FILE": str(served.admin_key_file),
        "HUB_BACKUP_KEK_FILE": str(kek),
    }
    output = _dags_test(airflow, hub, "hub_backup", tmp_path, extra)
    made = re.search(r"backup (\S+): ledger size (\d+)", output)
    assert made and int(made.group(2)) > 0, output[-4000:]
    assert '"ok": true' in output  # hub backup verify checked every chunk
    listed = run(str(HUB), "--data-dir", str(served.data_dir), "--key-file",
                 str(served.admin_key_file), "backup", "list")  # fmt: skip
    assert made.group(1) in listed.stdout, listed.stdout + listed.stderr
    # chunks changed in the store fail the next run: create reuses the chunks of data that did not
    # change (it uploads only what the store lacks), verify reads them back and names the first
    # bad one. Every chunk is changed: the live hub keeps writing (checkpoints, scheduler), so any
    # one chunk may belong to a page that changed and is not reused by the next backup.
    chunks = [p for p in (Path(f"{served.data_dir}-objects") / CHUNKS).rglob("*") if p.is_file()]
    assert chunks
    for chunk in chunks:
        chunk.chmod(0o644)
        chunk.write_bytes(bytes([chunk.read_bytes()[0] ^ 0xFF]) + chunk.read_bytes()[1:])
    env = {**airflow.env, "HUB_URL": served.url, "HUB_BATCH_OUTPUT": str(tmp_path), **extra}
    rc, output = airflow.run(env, ["dags", "test", "hub_backup", DAY])
    assert rc != 0, output[-4000:]
    assert re.search(r"DagRun Finished.*?state=failed", output), output[-4000:]
    assert any(chunk.name in output for chunk in chunks), output[-4000:]  # a bad one is named
