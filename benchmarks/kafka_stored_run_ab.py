"""Session 24 micro A/B of the Kafka log's read as a follower does it (``read_columns`` of
``--records`` records, MACs checked), on this checkout's broker: the consume loop turning the
fetched run of messages into stored records in one native call (``batch.stored_run``, new)
against the per-message loop alone (``stored_record`` per message, old: ``stored_run``
replaced by one that takes nothing, so the unchanged loop does all), alternated in one
process, thread CPU (``time.thread_time``) per read, best of ``--repeat``, ``--rounds``
rounds.

Run (broker up: ``make infra-kafka-up``):
``.venv/bin/python -m benchmarks.kafka_stored_run_ab --kafka 127.0.0.1:PORT [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from adapters.kafka_log import log as kafka_log
from benchmarks.ab_common import print_ratios, thread_cpu
from benchmarks.e2e_common import ACCOUNTS, trade
from core.events import OutgoingEvent


def _none(_t: str, _p: int, _m: Any, start: int, *_: Any) -> tuple[list[Any], int]:
    return [], start  # the run takes nothing: the per-message loop does it all (before)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kafka", required=True, help="the broker's address")
    ap.add_argument("--records", type=int, default=5_000, help="records per read (a step)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    with tempfile.TemporaryDirectory(prefix="kafka-run-ab-") as tmp:
        h = bootstrap(
            load_settings(
                environ={},
                data_dir=Path(tmp),
                projection_autostart=False,
                event_log="kafka",
                kafka_bootstrap_servers=args.kafka,
                kafka_topic_prefix=f"srab{uuid.uuid4().hex[:8]}.",
                default_partitions=1,
            )
        )
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            for b in range(0, args.records, 500):
                events = [OutgoingEvent(value=trade(i)) for i in range(b, b + 500)]
                h.publisher.publish("trades", events, "bench")
            log = h.log
            first = log.read("trades", 0, 0, 1)[0].offset
            new = kafka_log.stored_run

            def read() -> None:
                got = log.read_columns("trades", 0, first, args.records)
                assert len(got) == args.records, len(got)

            def check_same() -> None:
                kafka_log.stored_run = _none  # type: ignore[assignment]
                try:
                    old_rows = log.read("trades", 0, first, args.records)
                finally:
                    kafka_log.stored_run = new
                assert log.read("trades", 0, first, args.records) == old_rows

            check_same()
            ratios: dict[str, list[float]] = {"read_columns CPU": []}
            for r in range(args.rounds):
                cpu = {}
                for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    kafka_log.stored_run = _none if side == "old" else new  # type: ignore[assignment]
                    try:
                        cpu[side] = thread_cpu(read, args.repeat)
                    finally:
                        kafka_log.stored_run = new
                ratios["read_columns CPU"].append(cpu["new"] / cpu["old"])
                print(
                    f"round {r}: old {1e6 * cpu['old'] / args.records:.2f} µs/record, "
                    f"new {1e6 * cpu['new'] / args.records:.2f} µs/record"
                )
            print_ratios(ratios)
        finally:
            h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
