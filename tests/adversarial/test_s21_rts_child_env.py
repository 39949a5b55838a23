"""s21 red team of s20 (defence in depth): the hub's helper processes do not inherit its secrets.

The Parquet decoders (``ingest.parquet_pool``: pyarrow on an uploaded or dropped file, which
s19 saw crash on one changed byte), the policy timing child (``adapters.rego_deadline``: a
proposed bundle's code) and the chDB query readers (an analyst's SQL) run hostile input by
design. Each inherited the hub's whole environment, where the deployment keeps its secrets
(``HUB_VAULT_TOKEN`` in the compose files, ``HUB_MASTER_KEY``, a database URL's password): a
memory-safety bug in the decoder, or a built-in that reads the environment (``opa.runtime()``),
was a path to them. Now each starts with the environment minus the hub's settings and
anything named like a secret.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.childenv import child_environment
from ingest import parquet_child
from ingest.parquet_pool import ParquetDecoders

SECRETS = {
    "HUB_MASTER_KEY": "bWFzdGVyLWtleS1vZi10aGUtaHVi",
    "HUB_VAULT_TOKEN": "s.root-token",
    "PGPASSWORD": "pg-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "SOME_API_TOKEN": "tok",
}


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}


def test_a_parquet_decoder_does_not_inherit_the_hubs_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    pool = ParquetDecoders()
    request = {"batch_size": 10, "max_bytes": None, **parquet_child.bounds()}
    try:
        with path.open("rb") as f:
            assert sum(b.num_rows for b in pool.batches(f, "t.parquet", request)) == 2
        (pid,) = pool.pids()
        env = _environ_of(pid)
    finally:
        pool.close()
    leaked = sorted(set(SECRETS) & set(env))
    assert leaked == [], leaked  # before: every one of them
    assert env.get("PATH") == os.environ.get("PATH")


def test_the_child_environment_keeps_the_rest() -> None:
    env = child_environment({"PATH": "/bin", "LANG": "C", "HUB_DATA_DIR": "/d", **SECRETS})
    assert env == {"PATH": "/bin", "LANG": "C"}


def test_the_policy_timing_child_does_not_inherit_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from adapters import rego_deadline

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    seen: list[dict[str, str] | None] = []
    real = subprocess.Popen

    def spy(*args: object, **kwargs: object) -> object:
        env = kwargs.get("env")
        seen.append(dict(env) if isinstance(env, dict) else None)  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(rego_deadline.subprocess, "Popen", spy)
    from core.policybundle import PolicyBundle

    rego_deadline.BoundedEvaluation(250)(PolicyBundle.from_dir(), [("empty", {})])
    assert seen and seen[0] is not None, "the child inherited the whole environment"
    assert not set(SECRETS) & set(seen[0])
