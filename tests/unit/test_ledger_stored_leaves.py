"""The ledger hashes the embedded log's stored batches in place (``EventLog.read_encoded`` into
``LeafEncoder.column_batch``, native ``stored_leaf_batch``): leaves, side index, tiles and
checkpoint roots MUST be byte-identical to the column path (``read_columns``, the stored
batches decoded in Python), which stays the reference. The records are
``test_ledger_columns``'s random odd ones (envelope columns with shared and per-record values,
the pair layout, no headers, invalid UTF-8, null and binary keys and values, marker offsets);
a body the native pass cannot take falls back to the decoder, with its errors."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

import ledger.leaves as leaves_module
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore
from core.errors import HubError
from core.ports.eventlog import EncodedColumns, EventLog, Record, RecordColumns
from ledger.leaves import LeafEncoder, leaf_batch_reference
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.native import native_module
from tests.unit.test_ledger_columns import _appends, _dump, _fill, _same


@pytest.fixture(scope="module")
def native() -> Any:
    return native_module("stored_leaf_batch")


class ColumnPathLog(SqliteEventLog):
    """The same log without ``read_encoded`` (the port's default, None): the ledger reads
    ``read_columns``, the path before."""

    read_encoded = EventLog.read_encoded


def _fill_columns_only(log: SqliteEventLog, rnd: random.Random) -> None:
    """Appends whose headers every batch stores as columns (or has none): the native pass
    takes every sync batch."""
    log.create_topic("trades", 3)
    for recs, part in _appends(rnd, 14):
        if len({tuple(n for n, _ in r.headers) for r in recs}) != 1:
            recs = [Record(r.value, r.key, (), r.timestamp_ms) for r in recs]
        if part is None:
            log.append("trades", recs)
        else:
            log.append(
                "trades", [Record(r.value, r.key, r.headers, r.timestamp_ms, part) for r in recs]
            )


def _args(chunks: list[EncodedColumns]) -> list[tuple[object, ...]]:
    return [
        (c.topic, c.partition, *dataclasses.astuple(b)[:7], b.body, b.pos)
        for c in chunks
        for b in c.batches
    ]


def _reads(
    log: SqliteEventLog, rnd: random.Random
) -> tuple[list[EncodedColumns], list[RecordColumns]]:
    """The log read both ways with the same random positions and sizes."""
    enc: list[EncodedColumns] = []
    cols: list[RecordColumns] = []
    for topic in log.topics():
        for part in range(topic.partitions):
            pos = rnd.randint(0, 3)
            while True:
                k = rnd.randint(1, 150)
                e = log.read_encoded(topic.name, part, pos, k)
                c = log.read_columns(topic.name, part, pos, k)
                assert len(e) == len(c)
                if not len(c):
                    break
                assert e.next_offset() == c.offsets[-1] + 1
                assert e.columns() == c
                enc.append(e)
                cols.append(c)
                pos = c.offsets[-1] + 1
    return enc, cols


@pytest.mark.parametrize("seed", range(3))
def test_stored_batches_hash_as_the_columns_do(native: Any, tmp_path: Path, seed: int) -> None:
    for fill in (_fill, _fill_columns_only):
        log = SqliteEventLog(tmp_path / f"{fill.__name__}-{seed}.sqlite")
        fill(log, random.Random(seed))
        enc, cols = _reads(log, random.Random(seed))
        ref = leaf_batch_reference([r for c in cols for r in c.records()], 5)
        _same(LeafEncoder().column_batch(enc, 5), ref)
        _same(LeafEncoder().column_batch(cols, 5), ref)
        if fill is _fill_columns_only:
            assert native.stored_leaf_batch(_args(enc)) is not None  # the native pass ran
        # each chunk alone (one body's memo of constant columns, dictionaries per call)
        for e, c in zip(enc, cols, strict=True):
            if native.stored_leaf_batch(_args([e])) is not None:
                _same(LeafEncoder().column_batch([e], 0), leaf_batch_reference(c.records(), 0))
        log.close()


@pytest.mark.parametrize("fill", [_fill, _fill_columns_only])
def test_sync_by_stored_batches_stores_what_sync_by_columns_stores(
    native: Any, tmp_path: Path, fill: Any
) -> None:
    dumps, roots = [], []
    for way, cls in (("stored", SqliteEventLog), ("columns", ColumnPathLog)):
        folder = tmp_path / way
        folder.mkdir()
        log = cls(folder / "log.sqlite", mac_key=b"k" * 32)
        fill(log, random.Random(11))
        ledger = Ledger(
            log,
            TileLedgerStore(folder / "ledger.sqlite"),
            LocalKeyFileSigner(tmp_path / "ledger.key", "test/ledger"),
            LedgerConfig(origin="test/ledger", sync_batch=97, checkpoint_every_leaves=50),
        )
        ledger.sync(force_checkpoint=True)
        log.append("trades", [Record(b"late", b"k", (("ce_type", b"Late"),), 5, 0)])
        ledger.sync(force_checkpoint=True)
        assert verify_ledger(ledger).ok
        roots.append([(c.size, c.root) for c in ledger.store.checkpoints(min_size=0)])
        ledger.store.close()
        log.close()
        dumps.append(_dump(folder / "ledger.sqlite"))
    assert dumps[0] == dumps[1]  # the same tiles, side index, ranges and positions
    assert roots[0] == roots[1]


def test_mutated_bodies_hash_as_their_decode_or_fall_back(native: Any, tmp_path: Path) -> None:
    """A body changed after the log's checks (bytes flipped, cut short): whenever the native
    pass takes it, it gives what the decoder's columns give; else the encoder decodes it and
    raises the log's own error (``storage_corrupt``) or hashes what the decoder returns."""
    log = SqliteEventLog(tmp_path / "log.sqlite")
    _fill_columns_only(log, random.Random(3))
    rnd = random.Random(3)
    encoded = [
        log.read_encoded("trades", p, 0, 10_000)
        for p in range(3)
        if len(log.read_encoded("trades", p, 0, 1))
    ]
    taken = declined = 0
    for _ in range(150):
        e = rnd.choice(encoded)
        i = rnd.randrange(len(e.batches))
        b = e.batches[i]
        body = bytearray(b.body)
        if rnd.random() < 0.3:
            body = body[: rnd.randint(b.pos, len(body))]
        else:
            for _ in range(rnd.randint(1, 4)):
                body[rnd.randrange(b.pos, len(body))] = rnd.randrange(256)
        bad = dataclasses.replace(e, batches=(dataclasses.replace(b, body=bytes(body)),))
        try:
            want: Any = leaf_batch_reference(bad.columns().records(), 0)
        except HubError as exc:
            assert exc.code == "storage_corrupt"
            want = exc
        except (ValueError, TypeError) as exc:  # a field the leaf format refuses
            want = exc
        got_native = native.stored_leaf_batch(_args([bad]))
        if got_native is None:
            declined += 1
        else:
            taken += 1
            assert not isinstance(want, Exception), want
        if isinstance(want, Exception):
            with pytest.raises(type(want)):
                LeafEncoder().column_batch([bad], 0)
        else:
            _same(LeafEncoder().column_batch([bad], 0), want)
    assert taken and declined, (taken, declined)
    log.close()


def test_unusual_pieces_are_declined(native: Any, tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.create_topic("t", 1)
    log.append(
        "t", [Record(b"v", b"k", (("ce_type", b"T"), ("x", b"%d" % i)), 7, 0) for i in range(3)]
    )
    e = log.read_encoded("t", 0, 0, 10)
    (base,) = _args([e])
    assert native.stored_leaf_batch([base]) is not None
    for i, bad in [
        (1, 2**31),  # partition outside the side index's int32
        (2, 2**63),  # offset outside int64
        (4, 4),  # stop past the record count
        (3, 3),  # start == stop: nothing taken, not unusual
        (7, 0),  # the pair layout: the Python decoder reads it
        (9, "not bytes"),
        (10, 10**6),  # sections start past the body
    ]:
        args = list(base)
        args[i] = bad
        got = native.stored_leaf_batch([tuple(args)])
        assert (got is not None) if (i, bad) == (3, 3) else (got is None), (i, bad)
    # the encoder then takes the decoder's path: the reference's answer or error
    wide = dataclasses.replace(e, partition=2**31)
    with pytest.raises(Exception) as got_exc:
        LeafEncoder().column_batch([wide], 0)
    with pytest.raises(Exception) as ref_exc:
        leaf_batch_reference(dataclasses.replace(e.columns(), partition=2**31).records(), 0)
    assert type(got_exc.value) is type(ref_exc.value)
    log.close()


def test_without_the_native_pass_the_encoder_decodes(
    native: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    _fill_columns_only(log, random.Random(5))
    enc, cols = _reads(log, random.Random(5))
    want = LeafEncoder().column_batch(enc, 0)
    monkeypatch.setattr(leaves_module, "_native_stored_batch", None)
    _same(LeafEncoder().column_batch(enc, 0), want)
    _same(LeafEncoder().column_batch([*enc[:1], *cols[1:]], 0), want)  # a mixed list
    log.close()


def test_text_columns_from_the_native_buffers_equal_the_dictionary_decode(
    native: Any, tmp_path: Path
) -> None:
    """``_dict_column`` from the Arrow buffers the native pass builds equals the column decoded
    from its dictionary (the path when the buffers are not handed)."""
    log = SqliteEventLog(tmp_path / "log.sqlite")
    _fill_columns_only(log, random.Random(5))
    enc, _cols = _reads(log, random.Random(5))
    got = native.stored_leaf_batch(_args(enc))
    assert got is not None
    assert any(-1 in memoryview(index).cast("i") for _v, index, _a in got[5:])  # nulls too
    for values, index, arrow in (got[1], *got[5:]):
        assert arrow is not None
        built = leaves_module._dict_column(values, index, arrow)
        built.validate(full=True)
        assert built.equals(leaves_module._dict_column(values, index))
    log.close()


def test_hashing_threads_give_the_same_bytes(native: Any, tmp_path: Path) -> None:
    """A call of 4,096+ leaves per thread hashes on several threads, each a contiguous range of
    the output, GIL released: every split gives the reference's hashes and side index, across
    pieces with and without ``ce_subject`` (the key digests the resource column reuses)."""
    rnd = random.Random(7)
    log = SqliteEventLog(tmp_path / "log.sqlite")
    log.create_topic("trades", 1)
    while log.end_offsets("trades")[0] < 13_000:
        for recs, _part in _appends(rnd, 40):
            if len({tuple(n for n, _ in r.headers) for r in recs}) != 1:
                recs = [Record(r.value, r.key, (), r.timestamp_ms) for r in recs]
            log.append(
                "trades", [Record(r.value, r.key, r.headers, r.timestamp_ms, 0) for r in recs]
            )
    n = log.end_offsets("trades")[0]
    enc = [log.read_encoded("trades", 0, 0, 5_000), log.read_encoded("trades", 0, 5_000, n)]
    assert all(e is not None for e in enc)
    chunks = [e for e in enc if e is not None]
    ref = leaf_batch_reference([r for c in chunks for r in c.columns().records()], 3)
    one = native.stored_leaf_batch(_args(chunks), 1)
    assert one is not None and one[0] == ref.hashes
    for threads in (2, 3, 8):  # 8: capped at 3 by the 4,096-leaf share
        assert native.stored_leaf_batch(_args(chunks), threads) == one
        _same(LeafEncoder(threads=threads).column_batch(chunks, 3), ref)
    with pytest.raises(ValueError, match="threads must be 1 to 8"):
        LeafEncoder(threads=0)
    log.close()
