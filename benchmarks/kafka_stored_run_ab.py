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
from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from benchmarks.kafka_read_ab import read_ab


def _none(_t: str, _p: int, _m: Any, start: int, *_: Any) -> tuple[list[Any], int]:
    return [], start  # the run takes nothing: the per-message loop does it all (before)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kafka", required=True, help="the broker's address")
    ap.add_argument("--records", type=int, default=5_000, help="records per read (a step)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    read_ab(
        args.kafka,
        args.records,
        args.rounds,
        args.repeat,
        attr="stored_run",
        old=_none,
        per_publish=500,
        prefix="srab",
        check=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
