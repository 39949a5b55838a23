"""``TenantKeys.seal_many`` of one publish batch's PII values on CHECKOUT's code against this
checkout's, in alternating subprocesses (old, new, new, old, ...): the Python bookkeeping around
the native seal (key ids, indexes) is what differs between trees, the native module is the
venv's for both. The batch is kafka_publish_stages' shape: 2,000 payments, two PII fields
each (4,000 values of ~30 bytes), 500 distinct subjects, v2 AADs, a warm local key store.
Reported: best thread CPU microseconds a value of each subprocess (``ab_common.thread_cpu``)
and the new/old ratio of each pair.
Run: ``.venv/bin/python -m benchmarks.tenant_seal_ab CHECKOUT [PAIRS]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.ab_common import print_ratios

_CHILD = """
import json, sys, tempfile
from pathlib import Path
from adapters.local_keystore import LocalKeyStore
from benchmarks.ab_common import thread_cpu
from core.ports.keystore import make_aad

with tempfile.TemporaryDirectory() as d:
    store = LocalKeyStore(Path(d) / "keyring.sqlite", b"k" * 32)
    keys = store.for_tenant("acme")
    subjects, plain, aads = [], [], []
    for field in ("counterparty_name", "counterparty_iban"):
        for i in range(2000):
            s = f"A{i % 500}"
            subjects.append(s)
            plain.append(f"Person {i % 1000} DE89370400440532".encode())
            aads.append(make_aad("payments", field, s, "acme"))
    keys.seal_many(subjects, plain, aads)  # keys made, caches warm
    cpu = thread_cpu(lambda: keys.seal_many(subjects, plain, aads), 40)
    store.close()
print(json.dumps(cpu / len(plain) * 1e6))
"""


def _run(checkout: Path) -> float:
    # the benchmarks package of THIS checkout on the path after the tree measured (ab_common)
    here = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=checkout,
        env={"PYTHONPATH": f"{checkout}:{here}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout))


def main(old: Path, pairs: int = 6) -> None:
    new = Path(__file__).resolve().parent.parent
    ratios: list[float] = []
    for r in range(pairs):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        got = {name: _run(tree) for name, tree in order}
        ratios.append(got["new"] / got["old"])
        print(
            f"pair {r} ({order[0][0]} first): old {got['old']:.3f} us/value, "
            f"new {got['new']:.3f} us/value, new/old {ratios[-1]:.3f}",
            flush=True,
        )
    print_ratios({"seal_many us/value": ratios})


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main(Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 6)
