"""API key verification (every request pays it) against its two parts measured in the same run.

Groups:
- ``apikey verify``: ``ApiKeys.verify`` of a salted, peppered key among 1,000 keys (it first reads
  ``hub.principals``' end offset, so a revocation by any process takes effect at once); baselines:
  the bare ``HMAC-SHA256`` it computes, and the end-offset query alone.

Run: ``.venv/bin/pytest benchmarks/test_bench_apikeys.py -q -s -p no:randomly``
"""

from __future__ import annotations

import hmac
import os
import time
from pathlib import Path

from benchmarks.conftest import Report
from hub.bootstrap import bootstrap
from hub.settings import load_settings

OPS = int(os.environ.get("APIKEY_BENCH_OPS", "5000"))


def per_second(n: int, fn: object) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return n / (time.perf_counter() - t0)


def test_verify_against_hmac_and_offset_query(tmp_path: Path, report: Report) -> None:
    hub = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"), install_domain=True)
    try:
        for i in range(999):
            hub.keys.create(["analyst"], owner=f"user-{i}")
        issued = hub.keys.create(["analyst"], owner="bench")
        key = hub.keys.get(issued.key_id)
        pepper, salt, secret = os.urandom(32), bytes.fromhex(key.salt), issued.secret.encode()
        group = "apikey verify"
        report.add(
            group,
            "HMAC-SHA256 (baseline)",
            per_second(OPS, lambda: hmac.new(pepper, salt + secret, "sha256").hexdigest()),
            "ops/s",
        )
        report.add(
            group,
            "end-offset query (baseline)",
            per_second(OPS, lambda: hub.log.end_offsets("hub.principals")),
            "ops/s",
        )
        report.add(
            group,
            "ApiKeys.verify",
            per_second(OPS, lambda: hub.keys.verify(issued.key_id, issued.secret)),
            "ops/s",
            baseline="end-offset query (baseline)",
        )
    finally:
        hub.close()
