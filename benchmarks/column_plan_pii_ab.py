"""Session 20 micro A/B, one process, alternating, thread CPU: ``ColumnPlan.encode`` of a
2,000-event ``payments`` batch (``benchmarks.test_bench_kafka.payment``: two PII columns,
500 data subjects, sealed by a real ``LocalKeyStore``) with the PII columns checked by their
values' type alone (new) and through ``_array``'s Arrow string array as before (old:
``tests.unit.test_jsoncols_pii_check._FormerPlan``). Both give the same bytes (checked first,
with the nonces the only difference: the sealed columns are compared by their plaintexts'
lengths, the other columns byte for byte by the test).

Run: ``.venv/bin/python -m benchmarks.column_plan_pii_ab [--rounds 12]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from adapters.local_keystore import LocalKeyStore
from adapters.sqlite_log import SqliteEventLog
from benchmarks.ab_common import print_ratios, thread_cpu
from benchmarks.test_bench_kafka import payment
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG
from core.metrics import Metrics
from core.pii import encrypted_schema
from ingest.jsoncols import ColumnPlan
from ingest.publish import Publisher
from registry.service import SchemaRegistry
from tests.unit.test_jsoncols_pii_check import _FormerPlan

SCHEMA = Path(__file__).resolve().parents[1] / "domain/schemas/PaymentInitiated.avsc"
N = 2000


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(":memory:")
        registry = SchemaRegistry(log)
        cfg = {STRATEGY_CONFIG: "topic_record", KEY_FIELD_CONFIG: "payment_id"}
        log.create_topic("payments", 1, cfg)
        name = "hub.payments.PaymentInitiated"
        registry.register(f"payments-{name}", encrypted_schema(SCHEMA.read_text()))
        keystore = LocalKeyStore(Path(tmp) / "keyring.sqlite", b"k" * 32)
        target = Publisher(log, registry, 65536, Metrics(), keystore).targets.resolve(
            "payments", name
        )
        new, old = ColumnPlan.build(target), _FormerPlan.build(target)
        assert new is not None and old is not None
        keys = keystore.for_tenant("default")

        def seal(cols: list[tuple[str, list[str], list[bytes]]]) -> list[list[bytes]]:
            return [keys.seal_many(o, p, [f.encode()] * len(p)) for f, o, p in cols]

        values = [payment(i, "ab").value for i in range(N)]
        a, b = new.encode(values, seal), old.encode(values, seal)
        assert a is not None and b is not None and list(map(len, a)) == list(map(len, b))
        ratios: dict[str, list[float]] = {"ColumnPlan.encode": []}
        for r in range(args.rounds):
            pair = [("new", new), ("old", old)] if r % 2 == 0 else [("old", old), ("new", new)]
            got = {k: thread_cpu(partial(p.encode, values, seal), 5) for k, p in pair}
            ratios["ColumnPlan.encode"].append(got["new"] / got["old"])
            print(
                f"old {got['old'] * 1e6 / N:.3f} us/event, new {got['new'] * 1e6 / N:.3f}"
                f" = {got['new'] / got['old']:.3f}",
                flush=True,
            )
        keystore.close()
        log.close()
    print_ratios(ratios)
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
