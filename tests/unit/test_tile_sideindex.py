"""The tile store's side-index encodings (``adapters.tile_sideindex``) and store versions: version
2 round-trips any batch exactly, damaged blobs raise a HubError naming the batch (never a short
or wrong-typed table), and a ledger written by store version 1 (the fixture, made by the code
before version 2) opens, reads, verifies its batches and takes version-2 batches beside them."""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from adapters import tile_sideindex as si
from adapters.tile_ledgerstore import TileLedgerStore, decode_side_index, encode_side_index
from core.errors import HubError
from core.ports.ledgerstore import LeafBatch, LeafQuery, leaf_schema
from ledger.tree import TreeBuilder
from tests.unit.fixtures.tile_ledger_v1.make_fixture import SIZES, columns, leaf_hashes

FIXTURE = Path(__file__).parent / "fixtures" / "tile_ledger_v1" / "ledger-tiles.sqlite"
I64 = (-(2**63), 2**63 - 1)
I32 = (-(2**31), 2**31 - 1)


def random_table(rnd: random.Random, n: int) -> pa.Table:
    def ints(lo: int, hi: int) -> list[int]:
        pick = rnd.choice(("run", "wide", "small"))
        if pick == "run":
            start = rnd.randint(lo, hi - n)
            return [start + i for i in range(n)]
        if pick == "wide":
            return [rnd.choice((lo, hi, 0, rnd.randint(lo, hi))) for _ in range(n)]
        return [rnd.randint(-300, 70_000) for _ in range(n)]

    def strings() -> list[str | None]:
        words = [None, "", "publish", "ü-ß-✓", "x" * rnd.randint(0, 600), "desk-1"]
        return [rnd.choice(words) if rnd.random() < 0.7 else f"r/{rnd.random()}" for _ in range(n)]

    return pa.Table.from_arrays(
        [
            pa.array(strings(), pa.string()),
            pa.array(ints(*I32), pa.int32()),
            pa.array(ints(*I64), pa.int64()),
            pa.array(ints(*I64), pa.int64()),
            *(pa.array(strings(), pa.string()) for _ in range(4)),
        ],
        schema=leaf_schema(),
    )


@pytest.mark.parametrize("seed", range(12))
def test_version_2_round_trips_random_batches(seed: int) -> None:
    rnd = random.Random(seed)
    table = random_table(rnd, rnd.choice((0, 1, 2, 255, 3000)))
    blob = encode_side_index(table)
    assert blob.startswith(si.MAGIC)
    assert decode_side_index(blob).equals(table)
    assert decode_side_index(encode_side_index(table, version=1)).equals(table)


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_written_from_its_dictionaries_is_the_same_bytes(seed: int) -> None:
    """``LeafBatch.dictionaries`` (distinct strings by first appearance, int32 indexes, -1 for
    null) give the bytes that dictionary-encoding the columns gives."""
    rnd = random.Random(seed)
    table = random_table(rnd, rnd.choice((0, 1, 2, 255, 3000)))
    dicts = {}
    for name in ("topic", "actor", "action", "resource", "tenant"):
        words: dict[str, int] = {}
        index = [
            -1 if v is None else words.setdefault(v, len(words))
            for v in table.column(name).to_pylist()
        ]
        dicts[name] = (list(words), struct.pack(f"<{len(index)}i", *index))
    for some in (dicts, {k: dicts[k] for k in ("actor", "tenant")}, {}):
        assert encode_side_index(table, dictionaries=some) == encode_side_index(table)


def test_version_2_is_smaller_than_version_1_on_ledger_like_columns() -> None:
    table = columns(0, 5000)
    v1, v2 = encode_side_index(table, version=1), encode_side_index(table)
    assert len(v2) * 10 < len(v1), (len(v1), len(v2))


def test_a_null_integer_is_stored_as_version_1() -> None:
    table = columns(0, 10)
    table = table.set_column(2, "off", pa.array([None, *range(9)], pa.int64()))
    blob = encode_side_index(table)
    assert not blob.startswith(si.MAGIC)
    assert decode_side_index(blob).equals(table)


def _body(blob: bytes) -> bytes:
    _magic, _rows, size = struct.unpack_from("<4sII", blob)
    return si._ZSTD.decompress(blob[12:], decompressed_size=size, asbytes=True)


def _wrap(rows: int, body: bytes) -> bytes:
    return struct.pack("<4sII", si.MAGIC, rows, len(body)) + si._ZSTD.compress(body, asbytes=True)


@pytest.mark.parametrize("seed", range(3))
def test_damaged_bodies_raise_naming_the_batch_or_decode_to_a_full_table(seed: int) -> None:
    """Bytes changed inside the compressed layer (a tamperer who re-compresses): each decode
    either raises a HubError naming the batch or gives a table of the schema and row count
    (whose values `verify` then compares with the log)."""
    rnd = random.Random(seed)
    table = random_table(rnd, 300)
    body = bytearray(_body(encode_side_index(table)))
    for _ in range(100):
        bad = bytearray(body)
        for _ in range(rnd.randint(1, 3)):
            bad[rnd.randrange(len(bad))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            bad = bad[: rnd.randrange(len(bad))]
        try:
            got = si.decode(_wrap(300, bytes(bad)), first=77)
        except HubError as exc:
            assert "leaf 77" in exc.message and "cannot be decoded" in exc.message
        else:
            assert got.schema.equals(leaf_schema()) and got.num_rows == 300


def test_flipped_compressed_bytes_or_a_bomb_are_refused() -> None:
    """zstd frames carry no checksum here (the store's SHA-256 digest of the blob is the
    check): a flipped compressed byte raises or decodes to a full table, never a short one."""
    good = encode_side_index(columns(0, 2000))
    raised = 0
    for at in range(12, len(good), max(1, len(good) // 60)):
        blob = bytearray(good)
        blob[at] ^= 0x10
        try:
            got = si.decode(bytes(blob), first=9)
        except HubError as exc:
            assert "leaf 9 cannot be decoded" in exc.message
            raised += 1
        else:
            assert got.num_rows == 2000 and got.schema.equals(leaf_schema())
    assert raised
    bomb = struct.pack("<4sII", si.MAGIC, 1, si.MAX_BODY + 1) + b"\x28\xb5\x2f\xfd"
    with pytest.raises(HubError, match="declares"):
        si.decode(bomb, first=3)
    with pytest.raises(HubError, match="shorter than its header"):
        si.decode(si.MAGIC, first=3)


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "ledger-tiles.sqlite"
    shutil.copyfile(FIXTURE, path)  # opening upgrades the file: never open the fixture itself
    return path


def test_a_version_1_ledger_opens_reads_and_takes_version_2_batches(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    total = sum(SIZES)
    store = TileLedgerStore(path)
    try:
        assert store.tree_size() == total
        assert store.integrity_problems() == []
        rows = [r for chunk in store.iter_leaves() for r in chunk]
        want = columns(0, total).to_pylist()
        assert [r[1:9] for r in rows] == [tuple(w.values()) for w in want]
        assert b"".join(r[9] for r in rows) == leaf_hashes(0, total)
        assert store.index_of("payments", 1, 100) == 601
        with store.write() as w:
            batch = LeafBatch(total, leaf_hashes(total, 40), columns(total, 40))
            w.append_batch(batch, TreeBuilder(total, w.chunk).append(batch.hashes))
        assert store.integrity_problems() == []
        found = store.find(LeafQuery(actor="desk-1"), limit=10_000)
        assert [r[0] for r in found] == [i for i in range(total + 40) if i % 7 and i % 4 == 1]
        assert store.leaf(total + 39) is not None
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        blobs = [bytes(b) for (b,) in conn.execute("SELECT cols FROM batches ORDER BY first")]
    assert [b.startswith(si.MAGIC) for b in blobs] == [False] * len(SIZES) + [True]


def test_a_version_1_ledger_opened_as_version_1_stays_version_1(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    TileLedgerStore(path, version=1).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_newer_store_is_refused_naming_the_fix(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 3")
    with pytest.raises(HubError, match="upgrade the hub"):
        TileLedgerStore(path)


def test_new_stores_use_small_pages(tmp_path: Path) -> None:
    TileLedgerStore(tmp_path / "new.sqlite").close()
    TileLedgerStore(tmp_path / "old.sqlite", version=1).close()
    with (
        sqlite3.connect(tmp_path / "new.sqlite") as a,
        sqlite3.connect(tmp_path / "old.sqlite") as b,
    ):
        assert a.execute("PRAGMA page_size").fetchone()[0] == 1024
        assert b.execute("PRAGMA page_size").fetchone()[0] == 4096


@pytest.mark.parametrize("seed", range(6))
def test_may_hold_answers_as_the_decoded_column(seed: int) -> None:
    """``may_hold`` (the dictionary alone) is False exactly when no row of the column holds the
    string; a version-1 blob always answers True (it is decoded)."""
    rnd = random.Random(seed)
    table = random_table(rnd, rnd.choice((0, 1, 2, 255, 3000)))
    blob, v1 = encode_side_index(table), encode_side_index(table, version=1)
    for name in ("topic", "actor", "action", "resource", "tenant"):
        present = {v for v in table.column(name).to_pylist() if v is not None}
        for value in [*present, "", "publis", "publish ", "absent", "ü-ß"]:
            assert si.may_hold(blob, name, value) == (value in present), (name, value)
            assert si.may_hold(v1, name, value)


def _store_with_actions(path: Path, actions: list[list[str]]) -> TileLedgerStore:
    store = TileLedgerStore(path)
    size = 0
    for batch_actions in actions:
        n = len(batch_actions)
        table = columns(size, n).set_column(5, "action", pa.array(batch_actions, pa.string()))
        with store.write() as w:
            batch = LeafBatch(size, leaf_hashes(size, n), table)
            w.append_batch(batch, TreeBuilder(size, w.chunk).append(batch.hashes))
        size += n
    return store


def test_a_query_skips_batches_without_the_value_and_still_finds_it_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hub ledger verify`` asks for every ``retention.delete`` entry (step 6): batches whose
    action dictionary lacks it are not decoded, and a batch that holds it is still read."""
    cut = "retention.delete"
    actions = [["publish"] * 40, ["grant", cut, "publish"], ["erase"] * 9, [cut] * 2]
    store = _store_with_actions(tmp_path / "l.sqlite", actions)
    try:
        got = store.query(action=cut, limit=1000)
        assert [r[0] for r in got] == [41, 52, 53]
        assert [r[0] for r in store.query(action=cut, after=41)] == [52, 53]
        assert store.query(action="no such action") == []
        decoded: list[int] = []
        real = si.decode

        def counting(blob: bytes, first: int = 0) -> pa.Table:
            decoded.append(first)
            return real(blob, first)

        monkeypatch.setattr(si, "decode", counting)
        assert store.query(action=cut, limit=1000) == got
        assert decoded == [40, 52]  # the batches holding it, and only those
        monkeypatch.setattr(si, "may_hold", lambda *a: True)  # the reference: decode all
        assert store.query(action=cut, limit=1000) == got
        with store._read() as conn:  # a batch skipped is still checked against its digest
            conn.execute("UPDATE batches SET digest = zeroblob(32) WHERE first = 43")
        monkeypatch.undo()
        with pytest.raises(HubError, match="leaf 43 does not match its SHA-256"):
            store.query(action=cut, limit=1000)
    finally:
        store.close()


def test_integrity_problems_skips_only_the_batches_the_caller_decoded(tmp_path: Path) -> None:
    """``decoded`` names batches verify already decoded through iter_leaf_batches: those are
    not decoded again; a damaged batch outside it is still reported."""
    path = _copy(tmp_path)
    store = TileLedgerStore(path)
    try:
        firsts = [b.first for b in store.iter_leaf_batches()]
        assert store.integrity_problems(firsts) == []
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE batches SET digest = zeroblob(32) WHERE first = ?", (firsts[1],))
        assert store.integrity_problems(firsts) == []  # the caller decoded it (and failed there)
        damaged = store.integrity_problems(firsts[:1] + firsts[2:])
        assert len(damaged) == 1 and f"starting at leaf {firsts[1]}" in damaged[0]
        assert store.integrity_problems() == damaged
    finally:
        store.close()
