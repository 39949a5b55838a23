"""Session 22 micro A/B of the Kafka log's read as a projection step does it (``read_columns``
of 500 records, MACs checked), on this checkout's broker: the record builder ``stored_record``
taking a message's header pairs as they are (new) against the per-header conversion it did
before (old, ``tests.unit.test_s22_stored_record.reference``), alternated in one process, thread
CPU (``time.thread_time``) per read, best of ``--repeat``, ``--rounds`` rounds. The read is the
largest phase of a live step on Kafka, and the ledger's follower reads the same way.

Run (broker up: ``make infra-kafka-up``):
``.venv/bin/python -m benchmarks.kafka_read_ab --kafka 127.0.0.1:PORT [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from adapters.kafka_log import log as kafka_log
from benchmarks.ab_common import print_ratios, thread_cpu
from benchmarks.e2e_common import ACCOUNTS, trade
from core.events import OutgoingEvent
from tests.unit.test_s22_stored_record import reference


def read_ab(
    kafka: str,
    records: int,
    rounds: int,
    repeat: int,
    *,
    attr: str,
    old: Any,
    per_publish: int,
    prefix: str,
    check: bool = False,
) -> None:
    """On a fresh namespace of ``kafka`` holding ``records`` trades (published ``per_publish``
    at a time): ``read_columns`` of them with the Kafka log module's ``attr`` replaced by
    ``old`` against it as it is, alternated, thread CPU per read (best of ``repeat``), the
    ratio per round. ``check``: first, both read the same records."""
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
        h = bootstrap(
            load_settings(
                environ={},
                data_dir=Path(tmp),
                projection_autostart=False,
                event_log="kafka",
                kafka_bootstrap_servers=kafka,
                kafka_topic_prefix=f"{prefix}{uuid.uuid4().hex[:8]}.",
                default_partitions=1,
            )
        )
        try:
            open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
            for b in range(0, records, per_publish):
                events = [OutgoingEvent(value=trade(i)) for i in range(b, b + per_publish)]
                h.publisher.publish("trades", events, "bench")
            log = h.log
            first = log.read("trades", 0, 0, 1)[0].offset
            new = getattr(kafka_log, attr)

            def read() -> None:
                got = log.read_columns("trades", 0, first, records)
                assert len(got) == records, len(got)

            def using(side: str, do: Callable[[], Any]) -> Any:
                setattr(kafka_log, attr, old if side == "old" else new)
                try:
                    return do()
                finally:
                    setattr(kafka_log, attr, new)

            if check:
                rows = using("old", lambda: log.read("trades", 0, first, records))
                assert log.read("trades", 0, first, records) == rows
            ratios: dict[str, list[float]] = {"read_columns CPU": []}
            for r in range(rounds):
                cpu = {}
                for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    cpu[side] = using(side, lambda: thread_cpu(read, repeat))
                ratios["read_columns CPU"].append(cpu["new"] / cpu["old"])
                print(
                    f"round {r}: old {1e6 * cpu['old'] / records:.2f} µs/record, "
                    f"new {1e6 * cpu['new'] / records:.2f} µs/record"
                )
            print_ratios(ratios)
        finally:
            h.close()


def ab_main(
    argv: Sequence[str] | None,
    doc: str | None,
    *,
    attr: str,
    old: Any,
    records: int,
    repeat: int,
    per_publish: int,
    prefix: str,
    check: bool = False,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    before: Callable[[argparse.Namespace], None] | None = None,
) -> int:
    """The command line of a ``read_ab`` benchmark (this one's and the modules built on it):
    ``--kafka``, ``--records``, ``--rounds``, ``--repeat`` with the module's defaults;
    ``options`` adds its own, ``before`` applies them before the rounds."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kafka", required=True, help="the broker's address")
    ap.add_argument("--records", type=int, default=records, help="records per read (a step)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=repeat)
    if options is not None:
        options(ap)
    args = ap.parse_args(argv)
    if before is not None:
        before(args)
    read_ab(
        args.kafka,
        args.records,
        args.rounds,
        args.repeat,
        attr=attr,
        old=old,
        per_publish=per_publish,
        prefix=prefix,
        check=check,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return ab_main(
        argv,
        __doc__,
        attr="stored_record",
        old=reference,
        records=500,
        repeat=9,
        per_publish=100,
        prefix="rab",
    )


if __name__ == "__main__":
    raise SystemExit(main())
