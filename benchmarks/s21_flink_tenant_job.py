"""The cost of the Flink jobs' tenant function per record (session 21): the Python jobs'
``hub_tenant`` before (``tenant_of`` under the hub's key) and now (``JobTenant``: the namespace's
derived key, the legacy offsets parsed once per text), over the same genuine records of a
prefixed namespace; and a record below the legacy offsets (two HMACs: the namespace's key, then
the hub's). CPU seconds (``process_time``), the cases alternated, PAIRS rounds.

    .venv/bin/python benchmarks/s21_flink_tenant_job.py [PAIRS] [RECORDS]
"""

from __future__ import annotations

import os
import sys
import time

from core import tenant_mac


def main(pairs: int = 5, n: int = 20_000) -> None:
    hub_key, prefix, topic = os.urandom(32), "prod.", "payments"
    headers = {"ce_type": b"hub.payments.PaymentInitiated", "ce_tenant": b"acme", "ce_time": b"x"}
    covered = tenant_mac.covered(list(headers.items()))
    value = os.urandom(120)

    def sealed(key: bytes) -> dict[str, bytes | None]:
        tmac = tenant_mac.tenant_mac(key, topic, 0, b"k", value, covered, 5)
        return {**headers, tenant_mac.TMAC_HEADER: tmac}

    old_h = sealed(hub_key)  # what the unbound key sealed (before; legacy records now)
    new_h = sealed(tenant_mac.namespace_key(hub_key, prefix))
    job = tenant_mac.JobTenant({prefix: hub_key})
    legacy = "0:" + str(n + 1)

    def before() -> None:
        for _ in range(n):
            assert tenant_mac.tenant_of(hub_key, topic, 0, b"k", value, old_h, 5) == "acme"

    def now() -> None:
        for i in range(n):
            assert job(new_h, b"k", value, 0, 5, topic, prefix, i, legacy) == "acme"

    def now_legacy() -> None:
        for i in range(n):
            assert job(old_h, b"k", value, 0, 5, topic, prefix, i, legacy) == "acme"

    cases = {"before": before, "now": now, "now, legacy record": now_legacy}
    got: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(pairs):
        order = list(cases.items())
        if round_ % 2:
            order.reverse()
        for name, run in order:
            t = time.process_time()
            run()
            got[name].append((time.process_time() - t) / n * 1e6)
    print(f"load average {os.getloadavg()[0]:.1f}; {pairs} rounds of {n} records")
    for name, us in got.items():
        median = sorted(us)[len(us) // 2]
        print(f"{name:20s} {min(us):.2f}-{max(us):.2f} us/record (median {median:.2f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
