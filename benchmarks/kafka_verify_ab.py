"""Session 25 micro A/B of the Kafka log's read as a follower does it (``read_columns`` of
``--records`` records, MACs checked, replays refused), on this checkout's broker: the records'
checks in one native call building one record each (``auth.verify_run``, new) against the
session 24 path (old, kept below: ``verify_records`` building a record without the MAC
headers, then the sequence taken from it and a second record built without it), alternated
in one process (``read_ab``: the log module's ``verify_run`` swapped), thread CPU per read,
best of ``--repeat``, ``--rounds`` rounds. ``--python``: the new path without the native call
(``auth.verify_run_py``) as "new".

Run (broker up: ``make infra-kafka-up``):
``.venv/bin/python -m benchmarks.kafka_verify_ab --kafka 127.0.0.1:PORT [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import hmac
from collections.abc import Sequence

import pyarrow as pa  # noqa: F401 - before chDB (STACK-NOTES)

from adapters.kafka_log import auth
from adapters.kafka_log import log as kafka_log
from adapters.kafka_log.auth import MAC_HEADER, SEQ_HEADER, Vouch, record_macs_rows
from benchmarks.kafka_read_ab import ab_main
from core.ports.eventlog import StoredRecord
from core.tenant_mac import TMAC_HEADER


def _s24_verified(r: StoredRecord) -> StoredRecord:
    headers = r.headers[:-1]
    if not auth.mac_required(r.topic) and headers and headers[-1][0] == TMAC_HEADER:
        headers = headers[:-1]
    return StoredRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, headers)


def _s24_without_seq(r: StoredRecord) -> StoredRecord:
    if r.headers and r.headers[-1][0] == SEQ_HEADER:
        return StoredRecord(
            r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers[:-1]
        )
    return r


def s24_verify_run(
    key: bytes,
    records: Sequence[StoredRecord],
    vouch: Vouch | None = None,
    legacy: Vouch | None = None,
) -> tuple[list[StoredRecord], list[bytes | None]]:
    """Session 24's ``verify_records`` and the per-record part of its ``_unreplayed``."""
    sealed = [r for r in records if r.headers and r.headers[-1][0] == MAC_HEADER]
    macs = iter(
        record_macs_rows(
            key,
            [
                (r.topic, r.partition, r.key, r.value, r.headers[:-1], r.timestamp_ms)
                for r in sealed
            ],
        )
    )
    read: list[StoredRecord] = []
    for r in records:
        if (
            r.headers
            and r.headers[-1][0] == MAC_HEADER
            and hmac.compare_digest(r.headers[-1][1], next(macs))
        ):
            read.append(_s24_verified(r))
        else:
            read.append(auth.verify_record(key, r, vouch, legacy))
    out: list[StoredRecord] = []
    seqs: list[bytes | None] = []
    for r, v in zip(records, read, strict=True):
        seq = None
        if (
            v.headers
            and v.headers[-1][0] == SEQ_HEADER
            and r.headers
            and r.headers[-1][0] == MAC_HEADER
        ):
            seq = v.headers[-1][1]
            if len(seq) != 24:
                seq = None
        out.append(_s24_without_seq(v))
        seqs.append(seq)
    return out, seqs


def _python_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--python", action="store_true", help="new = verify_run_py (no native)")


def _python_new(args: argparse.Namespace) -> None:
    if args.python:
        kafka_log.verify_run = auth.verify_run_py  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    return ab_main(
        argv,
        __doc__,
        attr="verify_run",
        old=s24_verify_run,
        records=5_000,
        repeat=5,
        per_publish=500,
        prefix="vrab",
        check=True,
        options=_python_option,
        before=_python_new,
    )


if __name__ == "__main__":
    raise SystemExit(main())
