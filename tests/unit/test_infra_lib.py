"""infra/lib.sh helpers that a start depends on."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    """The storage tool reads `-t -abc...` as an option: a CI run failed to start Kafka when the
    random id began with '-' (1 start in 64). 400 ids: one in 64 would start with '-' if the
    helper did not refuse them (the chance that none does by luck is 0.2%)."""
    script = "SCRIPT=test; source infra/lib.sh; for i in $(seq 400); do kafka_cluster_id; done"
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    ids = done.stdout.split()
    assert len(ids) == 400 and len(set(ids)) == 400
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(
        set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )
