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

from collections.abc import Sequence
from typing import Any

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from benchmarks.kafka_read_ab import ab_main


def _none(_t: str, _p: int, _m: Any, start: int, *_: Any) -> tuple[list[Any], int]:
    return [], start  # the run takes nothing: the per-message loop does it all (before)


def main(argv: Sequence[str] | None = None) -> int:
    return ab_main(
        argv,
        __doc__,
        attr="stored_run",
        old=_none,
        records=5_000,
        repeat=5,
        per_publish=500,
        prefix="srab",
        check=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
