"""The publish path's PII column seal, new (``ingest.publish.seal_column_values``) against the
former form (every value's subject and AAD concatenated, ``TenantKeys.seal_many``; kept as
``_former`` in ``tests/adversarial/test_s21_kafka_seal_columns.py``), alternated in one
process. The batch is kafka_publish_stages' shape: 2,000 payments, two PII columns (4,000
values of ~30 bytes), 500 distinct subjects, a warm local key store and AAD cache. Reported
per round: best thread CPU (``ab_common.thread_cpu``) microseconds an event of each (2,000
events: seconds * 500), and the new/old ratios.
Run: ``.venv/bin/python -m benchmarks.seal_columns_ab [ROUNDS] [REPEAT]``.
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path

from adapters.local_keystore import LocalKeyStore
from adapters.sqlite_log import SqliteEventLog
from benchmarks.ab_common import print_ratios, thread_cpu
from core.metrics import Metrics
from ingest.publish import Publisher
from registry.service import SchemaRegistry
from tests.adversarial.test_s21_kafka_seal_columns import _former, _new


def main(rounds: int = 10, repeat: int = 20) -> None:
    with tempfile.TemporaryDirectory() as d:
        log = SqliteEventLog(":memory:")
        store = LocalKeyStore(Path(d) / "keyring.sqlite", b"k" * 32)
        pub = Publisher(log, SchemaRegistry(log), 65536, Metrics(), store)
        keys = store.for_tenant("default")
        owners = [f"A{i % 500}" for i in range(2000)]
        cols = [
            (name, owners, [f"Person {i % 1000} DE8937040044".encode() for i in range(2000)])
            for name in ("counterparty_name", "counterparty_iban")
        ]
        assert len(_new(pub, keys, "default", cols)) == 2  # keys made, AADs cached
        ratios: list[float] = []
        for r in range(rounds):
            sides = (("old", _former), ("new", _new))
            got: dict[str, float] = {}
            for name, fn in sides if r % 2 == 0 else sides[::-1]:
                got[name] = thread_cpu(partial(fn, pub, keys, "default", cols), repeat) * 500
            ratios.append(got["new"] / got["old"])
            print(
                f"round {r}: old {got['old']:.3f} us/event, new {got['new']:.3f} us/event, "
                f"new/old {ratios[-1]:.3f}",
                flush=True,
            )
        print_ratios({"seal columns us/event": ratios})
        store.close()
        log.close()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10, int(sys.argv[2]) if len(sys.argv) > 2 else 20
    )
