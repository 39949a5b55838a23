"""Waiting for a Parquet decoder is bounded (session 20 red team of its own changes).

``ParquetDecoders`` runs at most ``HUB_PARQUET_DECODERS`` children; a file whose consumer is
still publishing holds its child, and the time spent publishing is not on the file's budget
(rightly: a slow log is not a slow decoder). But a file asking for a child while all are held
waited on the pool's condition with no bound at all: one caller whose publishing was slow or
stuck (a log outage, a lock) held every other thread's Parquet file in that process for as long
as it liked. Latent in the shipped hub: its Parquet paths (``hub publish``, ``hub watch``) read
one file at a time per process; any caller sharing a pipeline (or ``parquet_pool.shared()``)
across threads met it. Now the wait is bounded by ``HUB_PARQUET_DECODE_SECONDS`` and answered
``parquet_decoders_busy`` (a retryable 503): the file is not read, so nothing of it is lost or
half published.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import pytest

from core.errors import Retryable
from ingest.files import parquet_batches
from ingest.parquet_pool import DecoderLimits, ParquetDecoders
from tests.adversarial.test_s20_parquet_decoder import _table, _write


def test_a_file_waiting_for_a_busy_decoder_is_answered_busy_not_held(tmp_path: Path) -> None:
    pool = ParquetDecoders(DecoderLimits(size=1, seconds=1.0, seconds_per_mib=0.0))
    first = _write(tmp_path / "held.parquet", _table(5000, "a"))
    second = _write(tmp_path / "other.parquet", _table(10, "b"))
    held = parquet_batches(first, 100, 1 << 20, pool)
    try:
        next(held)  # the first file's consumer is publishing (stuck): its child stays held
        outcome: list[object] = []

        def other() -> None:
            try:
                outcome.append(sum(b.num_rows for b in parquet_batches(second, 100, 1 << 20, pool)))
            except Exception as exc:
                outcome.append(exc)

        t = threading.Thread(target=other, daemon=True)
        started = time.monotonic()
        t.start()
        t.join(10)
        assert not t.is_alive(), "the second file waited for a decoder without a bound"
        assert time.monotonic() - started < 10
        (exc,) = outcome
        assert isinstance(exc, Retryable), exc
        assert exc.code == "parquet_decoders_busy"
        assert "HUB_PARQUET_DECODERS" in exc.message
    finally:
        held.close()
    # the child is free again: the same file now reads whole
    assert sum(b.num_rows for b in parquet_batches(second, 100, 1 << 20, pool)) == 10
    pool.close()


@pytest.mark.parametrize("size", [2])
def test_files_within_the_pool_size_do_not_wait(tmp_path: Path, size: int) -> None:
    pool = ParquetDecoders(DecoderLimits(size=size, seconds=1.0, seconds_per_mib=0.0))
    first = _write(tmp_path / "held.parquet", _table(5000, "a"))
    second = _write(tmp_path / "other.parquet", _table(10, "b"))
    held = parquet_batches(first, 100, 1 << 20, pool)
    try:
        next(held)
        assert sum(b.num_rows for b in parquet_batches(second, 100, 1 << 20, pool)) == 10
    finally:
        held.close()
        pool.close()


def test_a_file_refused_for_want_of_descriptors_gives_its_decoder_back(tmp_path: Path) -> None:
    """Out of file descriptors (EMFILE: a hub holding many connections), the per-file pipe
    cannot be made. Before: the child taken for the file was never given back, so each such
    file took one decoder for good; after HUB_PARQUET_DECODERS of them no Parquet file was read
    again in that process (each waited for ever)."""
    pool = ParquetDecoders(DecoderLimits(size=1, seconds=1.0, seconds_per_mib=0.0))
    path = _write(tmp_path / "f.parquet", _table(10, "a"))
    assert sum(b.num_rows for b in parquet_batches(path, 100, 1 << 20, pool)) == 10  # warm
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    filler: list[int] = []
    with open(path, "rb") as opened:  # noqa: F841 - held open: the file is readable
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))
        try:
            with pytest.raises(OSError):
                while True:
                    filler.append(os.open(os.devnull, os.O_RDONLY))
            os.close(filler.pop())  # room for the file itself, none for its pipe
            with pytest.raises(OSError):
                list(parquet_batches(path, 100, 1 << 20, pool))
        finally:
            for fd in filler:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # the decoder is free again: before, DecodersBusy (or, without the wait bound, a hang)
    assert sum(b.num_rows for b in parquet_batches(path, 100, 1 << 20, pool)) == 10
    pool.close()
