"""The Flink and Spark jobs get only what they need from the hub's environment (session 23).

``FlinkLauncher.submit`` and ``SparkLauncher.run`` started the job with ``dict(os.environ)``:
every setting and secret of the hub process (``HUB_MASTER_KEY``, ``HUB_VAULT_TOKEN``, the
PostgreSQL ledger's URL with its password, cloud credentials) reached the job's driver, its JVM
and its Python UDF workers. There they are readable by the job's code (a projection's SQL
calling a Python function, a compromised connector jar) through ``os.environ`` or
``/proc/<pid>/environ``, and they end up in a job's logs when it dumps its environment on
failure. The job needs none of them: the PostgreSQL password is in its 0600 spec file, and its
three keys (registry API key, row MAC key, tenant MAC key) are set by name by the launcher.

The launchers now start from ``core.childenv.child_environment()`` and add those names. The
first two tests run the launchers with a stand-in job script (the interpreter of this test);
the third starts a real PyFlink job whose Python UDF reads its worker's environment, and reads
``/proc/<pid>/environ`` of every process of the job's process group (driver, JVM, workers).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from core import tenant_mac
from projections.flink import launch
from projections.flink.compile import JobSpec
from projections.flink.rowmac import ROW_KEY_ENV
from projections.spark_launch import SparkLauncher
from tests import infra

SECRETS = {
    "HUB_MASTER_KEY": "master-key-0f1e2d3c4b5a",
    "HUB_VAULT_TOKEN": "hvs.vault-token-9a8b7c",
    "HUB_LEDGER_POSTGRES_URL": "postgresql://hub:pg-pass-5e6f@db/hub",
    "HUB_API_KEY": "hk_live_api-key-1a2b",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-3c4d5e",
    "PGPASSWORD": "pgpassword-7a7a7a",
}
ROW_KEY = bytes(range(32))
TENANT_KEY = bytes(range(32, 64))
DUMP = "import json, os, sys; print(json.dumps(dict(os.environ)))"


def _leaked(env: dict[str, str]) -> list[str]:
    """The names of SECRETS whose name or value is in ``env``."""
    text = json.dumps(env)
    return [k for k, v in SECRETS.items() if k in env or v in text]


def test_a_flink_job_gets_none_of_the_hub_s_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HUB_FLINK_JAVA_OPTIONS", "-Xmx256m")  # read by the launcher, not passed
    monkeypatch.setattr(launch, "JOB_SCRIPT", tmp_path / "env.py")
    (tmp_path / "env.py").write_text(DUMP)
    job = launch.FlinkLauncher(
        Path(sys.executable), tmp_path / "jobs", "k1:s1", ROW_KEY, TENANT_KEY
    ).submit(JobSpec("x", {}, [], [], [], ()))
    assert job.process.wait(timeout=120) == 0, job.stderr.read_text()
    env = json.loads(job.stdout.read_text())
    assert _leaked(env) == [], f"the Flink job's environment holds {_leaked(env)}"
    assert not [k for k in env if k.startswith("HUB_") and not k.startswith("HUB_FLINK_")]
    # what the job needs is there, set by the launcher
    assert env["HUB_FLINK_REGISTRY_AUTH"] == "k1:s1"
    assert env[ROW_KEY_ENV] == ROW_KEY.hex()
    assert env[tenant_mac.KEY_ENV] == tenant_mac.env_value(TENANT_KEY)
    assert env["JAVA_TOOL_OPTIONS"].endswith("-Xmx256m")
    assert env["PATH"] == os.environ["PATH"] and env["TMPDIR"] == str(job.folder / "tmp")


def test_a_spark_job_gets_none_of_the_hub_s_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    script = tmp_path / "job.py"
    script.write_text(
        "import json, os, sys; from pathlib import Path\n"
        "Path(sys.argv[1]).with_name('result.json').write_text(json.dumps(dict(os.environ)))\n"
    )
    launcher = SparkLauncher(Path(sys.executable), tmp_path / "spark")
    env = launcher.run(script, launcher.folder("j"), {"inputs": []}, timeout_s=120)
    env.pop("process_seconds")
    assert _leaked(env) == [], f"the Spark job's environment holds {_leaked(env)}"
    assert not [k for k in env if k.startswith("HUB_")]
    assert env["PYSPARK_PYTHON"] == sys.executable and env["PATH"] == os.environ["PATH"]


# A real PyFlink job on a mini-cluster: a Python UDF (run by Flink's Python worker, started by
# the JVM) reports which secret names its process sees; the test meanwhile reads the environ of
# every process of the job's process group while the job runs.
REAL_JOB = r"""
import json, os, sys, time
from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf

NAMES = %s

@udf(result_type=DataTypes.STRING())
def seen(x):
    time.sleep(float(os.environ.get("HOLD_S", "0")))
    return json.dumps(sorted(n for n in NAMES if n in os.environ) + ["worker:" + str(os.getpid())])

t = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
t.get_config().set("parallelism.default", "1")
t.create_temporary_function("seen", seen)
rows = [r[0] for r in t.execute_sql("SELECT seen(x) FROM (VALUES (1)) AS v(x)").collect()]
print("RESULT " + rows[0], flush=True)
"""


def _group_environs(pgid: int) -> dict[int, bytes]:
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) == pgid:
                out[int(proc.name)] = (proc / "environ").read_bytes()
        except OSError:
            continue
    return out


def test_a_real_pyflink_job_s_processes_hold_none_of_the_hub_s_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra.require("flink", "the real PyFlink job environment test")
    ok, python = infra._run("flink", "python", 30)
    assert ok, python
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOLD_S", "5")  # the UDF waits: its worker is alive while we look
    script = tmp_path / "real.py"
    script.write_text(REAL_JOB % json.dumps(sorted(SECRETS)))
    monkeypatch.setattr(launch, "JOB_SCRIPT", script)
    launcher = launch.FlinkLauncher(Path(python.strip().splitlines()[-1]), tmp_path / "jobs")
    job = launcher.submit(JobSpec("real", {}, [], [], [], ()))
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 900
    while job.running() and time.monotonic() < deadline:
        seen.update(_group_environs(job.process.pid))
        time.sleep(0.3)
    job.wait(timeout_s=1)  # raises with Flink's cause when the job failed (or hung: killed)
    (line,) = [x for x in job.stdout.read_text().splitlines() if x.startswith("RESULT ")]
    inside = json.loads(line.removeprefix("RESULT "))
    worker = int(inside.pop().removeprefix("worker:"))
    assert inside == [], f"the job's Python worker sees {inside}"
    assert worker in seen, "the Python worker's environ was not read while it ran"
    assert len(seen) >= 2  # the driver (and its JVM) and the worker at least
    for pid, environ in seen.items():
        leaked = [k for k, v in SECRETS.items() if k.encode() in environ or v.encode() in environ]
        assert leaked == [], f"process {pid} of the job holds {leaked} in /proc/{pid}/environ"
