"""The uncompressed bodies an append keeps for the ledger (``batch.Kept``, session 20): the
handoff opens a handed batch with the body its encoder compressed instead of inflating the
stored bytes (docs/benchmarks/s20-ledger20.md).

What must hold: keeping bodies never changes the stored bytes; a kept body is exactly what
inflating the stored bytes gives (every encoder: the Python reference, the native writer, the
native column preparation), so a handed batch opened with it is the batch a read opens; a body
whose length is not the size the batch declares is refused; and only appends that are handed
keep them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_log import batch as stored
from adapters.sqlite_log import handoff
from adapters.sqlite_log import log as log_mod
from adapters.sqlite_log.batch import CorruptBatch, open_batch
from adapters.sqlite_log.log import SqliteEventLog
from core.ports.eventlog import EncodedColumns, Record
from tests.unit.test_column_append import random_batch

_TS = 1_700_000_000_000


def _kept_pairs(log: SqliteEventLog, topic: str, batch: Any) -> list[tuple[bytes, bytes | None]]:
    prepared = log._prepare_columns(topic, batch)
    out = []
    for g in prepared.groups:
        assert g.bodies is not None and len(g.bodies) == len(g.chunks)
        out += [(c[0], b) for c, b in zip(g.chunks, g.bodies, strict=True)]
    return out


def _check_kept(blob: bytes, body: bytes | None) -> None:
    opened = open_batch(blob)
    if body is None:  # stored uncompressed: nothing kept, the body is read in place
        assert opened.pos != 0
        return
    assert opened.body == body  # byte-identical to inflating the stored bytes
    assert open_batch(blob, inflated=body) == opened


@pytest.mark.parametrize("path", ["native", "reference"])
def test_kept_bodies_are_the_inflated_stored_bytes_and_the_bytes_do_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Random column appends (1-12 partitions, cuts), prepared with and without keeping."""
    if path == "reference":
        monkeypatch.setattr(log_mod, "native_prepare", None)
        monkeypatch.setattr(stored, "native_stored_columns", None)
    rng = random.Random(20)
    log = SqliteEventLog(tmp_path / "log.db")
    for parts in (1, 3, 12):
        log.create_topic(f"p{parts}", parts)
    compressed = 0
    for trial in range(120):
        batch = random_batch(rng, rng.choice([1, 17, 200, 1000]), _TS + trial)
        topic = f"p{rng.choice((1, 3, 12))}"
        cut = trial % 3 == 0
        monkeypatch.setattr(log_mod, "MAX_BATCH_RECORDS", 64 if cut else 4096)
        monkeypatch.setattr(log_mod, "MAX_BATCH_BYTES", 900 if cut else 8 << 20)
        plain = log._prepare_columns(topic, batch)  # no receiver: nothing kept
        assert all(g.bodies is None for g in plain.groups)
        with monkeypatch.context() as m:
            m.setattr(log._handoff, "wants", lambda count: True)
            kept = _kept_pairs(log, topic, batch)
        assert [c[0] for g in plain.groups for c in g.chunks] == [blob for blob, _ in kept]
        for blob, body in kept:
            _check_kept(blob, body)
            compressed += body is not None
    assert compressed > 50
    log.close()


def test_the_record_encoder_keeps_the_same_body() -> None:
    rng = random.Random(21)
    for trial in range(60):
        n = rng.choice([1, 5, 300])
        keys = [rng.randbytes(rng.randint(0, 40)) if rng.random() < 0.8 else None for _ in range(n)]
        values = [rng.randbytes(rng.randint(0, 300)) for _ in range(n)]
        pairs = tuple((f"h{j}", rng.choice([b"a", b"bb" * 30])) for j in range(rng.randint(0, 4)))
        headers = [pairs] * n
        stamps = [_TS + trial + rng.randint(0, 5) for _ in range(n)]
        blob, body = stored.encode_batch_kept(keys, values, headers, stamps)
        assert blob == stored.encode_batch(keys, values, headers, stamps)
        _check_kept(blob, body)


def test_a_body_of_another_size_than_declared_is_refused() -> None:
    keys = [b"k%d" % i for i in range(200)]
    blob, body = stored.encode_batch_kept(keys, [b"v" * 100] * 200, [()] * 200, [_TS] * 200)
    assert body is not None
    for bad in (body[:-1], body + b"\x00", b""):
        with pytest.raises(CorruptBatch, match="the body handed with the batch"):
            open_batch(blob, inflated=bad)
    assert open_batch(blob, inflated=body).body == body


def test_a_handed_append_is_opened_with_its_kept_bodies_as_a_read_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both append paths (records, columns), a listener on ``on_stored``: the opener's
    batches equal the log's own read of the same range, and were not inflated."""
    monkeypatch.setattr(handoff, "MIN_HANDED", 1)
    log = SqliteEventLog(tmp_path / "log.db", mac_key=b"k" * 32)
    log.create_topic("t", 2)
    got: list[tuple[int, int, int, Any]] = []
    log.on_stored(
        lambda name, part, first, end, _after, opener: got.append((part, first, end, opener))
    )
    rng = random.Random(22)
    log.append("t", [Record(rng.randbytes(120), b"k%d" % (i % 7), ()) for i in range(300)])
    log.append_columns("t", random_batch(rng, 300, _TS))
    inflates = []
    real = stored._ZSTD.decompress
    monkeypatch.setattr(stored, "_ZSTD", _Counting(stored._ZSTD, inflates))
    opened: list[EncodedColumns] = [opener() for _p, _f, _e, opener in got]
    assert not inflates  # every compressed body was handed, none inflated
    monkeypatch.setattr(stored._ZSTD, "decompress", real, raising=False)
    for (part, first, end, _), enc in zip(got, opened, strict=True):
        read = log.read_encoded("t", part, first, end - first)
        assert [b.body for b in enc.batches] == [b.body for b in read.batches]
        assert enc.columns() == read.columns()
    log.close()


class _Counting:
    """A codec stand-in that records each ``decompress`` and delegates everything."""

    def __init__(self, codec: Any, calls: list[int]) -> None:
        self._codec, self._calls = codec, calls

    def decompress(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append(1)
        return self._codec.decompress(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codec, name)
