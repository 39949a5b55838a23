"""A Flink job's start-up (JVM, planning the statement set, submission) under two JVM settings,
side by side in the same run.

    .venv/bin/python -m benchmarks.flink_start [--names payment_aggregates,...] [--features]
        [--baseline ""] [--candidate "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"]

Needs the PyFlink virtualenv and jars (``infra/flink.sh setup``); no Kafka, PostgreSQL or hub: the
job is compiled against placeholder addresses and killed as soon as it prints ``submitted``
(planning connects to nothing). Both jobs start at the same moment, so they share the machine's
load; the figures are the wall time to submission and the CPU seconds of each job's process
group (JVM, driver) at that moment, and the ratio candidate / baseline. Small bounded runs spend
most of their time here (``tests/differential/conftest.py``); ``projections/flink/launch.py``'s
``JAVA_OPTIONS`` is the candidate by default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from projections.catalog import PROJECTIONS
from projections.flink.compile import FlinkPlacement, JobSpec, combine, compile_projection
from projections.flink.launch import JAVA_OPTIONS, JOB_SCRIPT

ROOT = Path(__file__).resolve().parents[1]


def _infra(what: str) -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "infra" / "flink.sh"), what], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def spec(names: list[str], features: bool) -> JobSpec:
    python = _infra("python")
    at = FlinkPlacement(
        kafka_bootstrap="127.0.0.1:9",
        registry_url="http://127.0.0.1:9",
        jdbc_url="jdbc:postgresql://127.0.0.1:9/hub",
        jdbc_user="hub",
        jdbc_password="unused",
        jars=tuple(_infra("jars").split(";")),
        python=python,
        topic_prefix="bench.",
        pg_schema="bench",
        bounded=True,
        group="bench",
    )
    chosen = [p for p in PROJECTIONS if p.name in names]
    specs = [compile_projection(p, at) for p in chosen]
    if features:
        from domain.features import VIEWS
        from ml.flink_features import compile_features

        specs += [compile_features(v, at, "bench") for v in VIEWS.values()]
    return combine("bench", specs)


def _group_cpu(pgid: int) -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def start_up(spec_file: Path, options: str, work: Path, out: dict[str, Any]) -> None:
    (work / "tmp").mkdir(parents=True)
    env = dict(os.environ)
    env.update(
        TMPDIR=str(work / "tmp"),
        FLINK_LOG_DIR=str(work),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        JAVA_TOOL_OPTIONS=f"-Djava.io.tmpdir={work / 'tmp'} {options}".strip(),
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [_infra("python"), str(JOB_SCRIPT), str(spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    submitted = False
    for line in process.stdout:
        if b'"submitted"' in line:
            submitted = True
            break
    out["wall_s"] = round(time.monotonic() - started, 1)
    out["cpu_s"] = round(_group_cpu(process.pid), 1)
    out["submitted"] = submitted
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default="payment_aggregates")
    parser.add_argument("--features", action="store_true", help="add the ML feature views")
    parser.add_argument("--baseline", default="")
    parser.add_argument("--candidate", default=JAVA_OPTIONS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flink-start-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(spec(args.names.split(","), args.features).to_json())
        results: dict[str, dict[str, Any]] = {"baseline": {}, "candidate": {}}
        threads = [
            threading.Thread(
                target=start_up,
                args=(spec_file, getattr(args, name), Path(tmp) / name, results[name]),
            )
            for name in results
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    base, cand = results["baseline"], results["candidate"]
    report = {
        "names": args.names,
        "features": args.features,
        "load_average": os.getloadavg()[0],
        "baseline": {"options": args.baseline, **base},
        "candidate": {"options": args.candidate, **cand},
        "cpu_ratio": round(cand["cpu_s"] / base["cpu_s"], 2) if base.get("cpu_s") else None,
        "wall_ratio": round(cand["wall_s"] / base["wall_s"], 2) if base.get("wall_s") else None,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
