"""A training set cut from the vectors the Flink feature jobs computed, beside the same cut from
the log (the embedded feed and engine), on the same events in the same run.

    .venv/bin/python -m benchmarks.flink_vectors [--payments 6000] [--accounts 200]

An embedded hub gets ``--payments`` payments of ``--accounts`` accounts over two days (each
account opened first), every payment labelled (fraud confirmed); the view's vectors, computed as
the embedded engine computes them (what the differential test shows Flink computes), are written
to ``flink.features.payment_risk`` as the job's sink writes them. Timed, wall and CPU
(``time.process_time``) seconds: 1. the companion's load of that topic into the FeatureVectors
table (what `hub projection run --engine flink` does after the job); 2. ``cut(view,
vectors=...)``; 3. ``cut(view)`` from the log, the baseline. No Flink needed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.events import OutgoingEvent

VIEW = "payment_risk"


def _timed(what: str, f: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = f()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{what:<44} wall {wall:7.2f} s   cpu {cpu:7.2f} s")
    return out, wall, cpu


def main() -> None:
    from adapters.sqlite_features import SqliteFeatureStore
    from adapters.sqlite_vectors import SqliteFeatureVectors
    from domain.features import PAYMENT_RISK
    from hub.bootstrap import bootstrap
    from hub.flink_feature_views import FlinkFeatureView
    from hub.ml_setup import ml_of
    from hub.settings import load_settings
    from ml.flink_features import embedded_vectors, result_topic
    from tests.differential.test_flink_accounts import opened
    from tests.differential.test_flink_features import ROW_KEY, as_job_writes

    ap = argparse.ArgumentParser()
    ap.add_argument("--payments", type=int, default=6000)
    ap.add_argument("--accounts", type=int, default=200)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        t0 = datetime(2026, 3, 5, tzinfo=UTC)
        accounts = [f"B{i}" for i in range(args.accounts)]
        hub.publisher.publish(
            "accounts",
            [opened(a, f"Person {a}", "BASIC", "2026-03-01T00:00:00Z") for a in accounts],
            "bench",
        )
        payments, labels = [], []
        for i in range(args.payments):
            at = (t0 + timedelta(seconds=i * 172800 // args.payments)).isoformat()
            value = {
                "payment_id": f"P{i}",
                "account_id": accounts[i % len(accounts)],
                "amount": f"{100 + (i * 37) % 9900}.00",
                "currency": "EUR",
                "counterparty_name": f"Counterparty {i}",
                "counterparty_iban": "DE00123",
                "counterparty_country": "DE",
                "initiated_at": at,
            }
            payments.append(OutgoingEvent(value, "hub.payments.PaymentInitiated"))
            label = {"payment_id": f"P{i}", "account_id": value["account_id"]}
            label |= {"kind": "STRUCTURING", "confirmed_at": "2026-03-09T00:00:00Z"}
            labels.append(OutgoingEvent(label, "hub.payments.FraudConfirmed"))
        for start in range(0, len(payments), 1000):
            hub.publisher.publish("payments", payments[start : start + 1000], "bench")
            hub.publisher.publish("payment-labels", labels[start : start + 1000], "bench")
        store = SqliteFeatureStore(":memory:")
        rows = embedded_vectors(PAYMENT_RISK, hub.log, hub.reader, store)
        store.close()
        vectors = SqliteFeatureVectors(Path(tmp) / "vectors.sqlite", mac_key=b"v" * 32)
        companion = FlinkFeatureView(PAYMENT_RISK, hub.log, vectors, ROW_KEY)
        companion.prepare()
        hub.log.append(result_topic(PAYMENT_RISK), [as_job_writes(PAYMENT_RISK, r) for r in rows])
        for topic in companion.topics:
            ends = hub.log.end_offsets(topic)
            hub.log.commit_offsets(companion.group, {type_tp(topic, p): e for p, e in ends.items()})
        sets = ml_of(hub).training_sets
        print(f"{len(rows)} scored events, {args.accounts} accounts")
        _timed("1. load the result topic (companion.load)", companion.load)
        _timed("   warm-up: cut from the log (ledger synced)", lambda: sets.cut("payment_risk"))
        flink_w, flink_c, log_w, log_c = [], [], [], []
        for _ in range(2):  # alternated: both see the same load
            flink, w, c = _timed("2. cut from Flink's vectors", lambda: sets.cut(VIEW, vectors))
            flink_w.append(w)
            flink_c.append(c)
            log, w, c = _timed("3. cut from the log (baseline)", lambda: sets.cut(VIEW))
            log_w.append(w)
            log_c.append(c)
            assert flink.digest == log.digest and len(log.rows) == len(rows)
        print(
            f"ratio 2/3 (best of 2): wall {min(flink_w) / min(log_w):.2f}, cpu "
            f"{min(flink_c) / min(log_c):.2f} (same digest {log.digest[:16]})"
        )
        vectors.close()
        hub.close()


def type_tp(topic: str, partition: int) -> Any:
    from core.ports.eventlog import TopicPartition

    return TopicPartition(topic, partition)


if __name__ == "__main__":
    main()
