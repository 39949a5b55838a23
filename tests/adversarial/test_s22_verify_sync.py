"""The ledger's sync after session 22's speed work (issue 13, ``verify-sync22``).

The sync builds its leaf batch without the string columns' Arrow buffers where the store
appends through the dictionaries (``LedgerWrite.appends_dictionaries``, the tile store): a
string column is built from its dictionary only when read, and the tile store's
``(topic, partition)`` offset ranges come from the topic dictionary's indexes
(``spans_of``'s index path) instead of Arrow's grouping of the text column. Checked here:

1. the index path gives the spans Arrow's grouping gives, on random batches (topics in runs
   and interleaved, partitions across the int32 range, offsets out of order), and a null
   topic takes the reference;
2. a sync stores byte for byte what the full batch stores (side-index blobs, digests, MACs,
   ranges and their MACs, tiles), on random odd records (invalid UTF-8, null and binary keys,
   shared and per-record headers) and on a column without a dictionary (two keys, one text);
3. the tile store's append reads no string column it has a dictionary of;
4. a syncing process does not import pandas (Arrow's grouping loads its query engine, which
   imports pandas: 0.25-0.3 CPU s).
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from adapters import tile_ledgerstore
from adapters import tile_sideindex as sideindex
from adapters.local_signer import LocalKeyFileSigner
from adapters.sqlite_log import SqliteEventLog
from adapters.tile_ledgerstore import TileLedgerStore, spans_of
from core.ports.eventlog import Record
from core.ports.ledgerstore import leaf_schema
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from tests.unit.test_ledger_stored_leaves import _fill_columns_only

from .test_s21_verify_paths import KEY, _records

STRINGS = {"topic", "actor", "action", "resource", "tenant"}


def _batch(rng: random.Random, n: int) -> tuple[pa.Table, list[str], np.ndarray]:
    names = [f"t{k}" for k in range(rng.randint(1, 5))] + ["é", ""]
    parts = [rng.choice([0, 1, 2, 3, -1, 2**31 - 1, -(2**31)]) for _ in range(rng.randint(1, 4))]
    topics, part, off = [], [], []
    while len(topics) < n:  # runs of one key, keys coming back, offsets in any order
        t, p, run = rng.choice(names), rng.choice(parts), rng.randint(1, 40)
        base = rng.randint(-(2**62), 2**62)
        for _ in range(min(run, n - len(topics))):
            topics.append(t)
            part.append(p)
            off.append(base + rng.randint(-1000, 1000))
    values = list(dict.fromkeys(topics))
    idx = np.array([values.index(t) for t in topics], "<i4")
    table = pa.Table.from_arrays(
        [
            pa.array(topics, pa.string()),
            pa.array(part, pa.int32()),
            pa.array(off, pa.int64()),
            pa.array(range(n), pa.int64()),
            *(pa.array(["x"] * n, pa.string()) for _ in range(4)),
        ],
        schema=leaf_schema(),
    )
    return table, values, idx


@pytest.mark.parametrize("seed", range(40))
def test_spans_from_the_topic_indexes_are_arrows(seed: int) -> None:
    rng = random.Random(seed)
    table, values, idx = _batch(rng, rng.choice([1, 2, 5, 100, 3000]))
    ref = spans_of(table)
    assert spans_of(table, {"topic": (values, idx.tobytes())}) == ref
    assert all(type(v) is int for s in ref for v in s[1:])


def test_a_null_topic_takes_the_reference() -> None:
    table, values, idx = _batch(random.Random(7), 50)
    idx[3] = -1  # the index path would name no topic: the text column decides
    topics = table.column("topic").to_pylist()
    topics[3] = None
    table = table.set_column(0, "topic", pa.array(topics, pa.string()))
    with pytest.raises(TypeError) as ref:  # the reference cannot order a null topic either
        spans_of(table)
    with pytest.raises(TypeError) as got:
        spans_of(table, {"topic": (values, idx.tobytes())})
    assert str(got.value) == str(ref.value)


def _sync_into(log: SqliteEventLog, path: Path, keys: Path, every: int) -> None:
    ledger = Ledger(
        log,
        TileLedgerStore(path),
        LocalKeyFileSigner(keys, "test/ledger"),
        LedgerConfig("test/ledger", sync_batch=every),
    )
    try:
        ledger.sync(force_checkpoint=True)
        assert verify_ledger(ledger).ok
    finally:
        ledger.close()


def _stored(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("batches", "ranges", "tiles", "edges")
        }
    finally:
        conn.close()


def _both_ways(tmp: Path, monkeypatch: pytest.MonkeyPatch, log: SqliteEventLog, every: int) -> None:
    keys = tmp / "keys" / "ledger.key"
    _sync_into(log, tmp / "new.sqlite", keys, every)
    with monkeypatch.context() as m:  # the full batch, every string column built
        m.setattr(tile_ledgerstore._Write, "appends_dictionaries", False)
        _sync_into(log, tmp / "old.sqlite", keys, every)
    new, old = _stored(tmp / "new.sqlite"), _stored(tmp / "old.sqlite")
    assert new["batches"] and new["ranges"]
    assert new == old


@pytest.mark.parametrize("seed", range(4))
def test_a_sync_stores_what_the_full_batch_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite", synchronous="OFF", mac_key=KEY)
    _fill_columns_only(log, random.Random(seed))
    log.create_topic("more", 2)
    for s in range(0, 900, 300):
        log.append("more", _records(300, s))
    try:
        _both_ways(tmp_path, monkeypatch, log, random.Random(seed).choice([97, 400, 5000]))
    finally:
        log.close()


def test_a_column_without_a_dictionary_is_stored_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 1)  # two keys of one text: no resource dictionary handed on
    log.append("trades", [Record(b"v%d" % i, b"\xff1" if i % 3 else b"0xff31") for i in range(600)])
    try:
        _both_ways(tmp_path, monkeypatch, log, 250)
    finally:
        log.close()


def test_the_append_reads_no_string_column_it_has_a_dictionary_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[set[str], set[str]]] = []
    real = tile_ledgerstore._Write.append_batch

    def spy(self: Any, batch: Any, chunks: Any) -> None:
        real(self, batch, chunks)
        seen.append((set(batch.columns._built), set(batch.dictionaries or {})))

    monkeypatch.setattr(tile_ledgerstore._Write, "append_batch", spy)
    log = SqliteEventLog(tmp_path / "log.sqlite", synchronous="OFF", mac_key=KEY)
    log.create_topic("trades", 2)
    log.append("trades", _records(1000, 0))
    try:
        _sync_into(log, tmp_path / "ledger.sqlite", tmp_path / "keys" / "ledger.key", 300)
    finally:
        log.close()
    assert len(seen) == 4
    for built, given in seen:
        assert given == STRINGS
        assert built == {"part", "off", "ts_ms"}


def test_a_syncing_process_does_not_import_pandas(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.adversarial.test_s21_verify_paths import _open, _records\n"
        f"log, ledger = _open(Path({str(tmp_path)!r}))\n"
        "log.create_topic('trades', 2)\n"
        "log.append('trades', _records(2000, 0))\n"
        "assert 'pandas' not in sys.modules\n"
        "assert ledger.sync(force_checkpoint=True).appended == 2000\n"
        "print('pandas' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("seed", range(30))
def test_strings_from_a_dictionary_are_the_columns_bytes(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = rng.choice(["ab", "abc\x00", "aé", "a\u20ac\U0001f600", "x"])
    words = list(
        dict.fromkeys(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
            for _ in range(rng.randint(0, 300))
        )
    )
    n = rng.choice([0, 1, 50, 2000]) if words else 0
    picks = [rng.randrange(-1, len(words)) for _ in range(n)]
    seen = list(dict.fromkeys(i for i in picks if i >= 0))  # first appearance, as the encoder
    order = {w: k for k, w in enumerate(seen)}
    index = np.array([order[i] if i >= 0 else -1 for i in picks], "<i4").tobytes()
    rows = [words[i] if i >= 0 else None for i in picks]
    column = pa.chunked_array([pa.array(rows, pa.string())])
    assert sideindex._strings_of([words[i] for i in seen], index) == sideindex._strings(column)


def test_the_verify_command_imports_no_web_framework(tmp_path: Path) -> None:
    """``hub ledger verify`` records its run (CC7) through ``ledger.verify``, not the HTTP
    router's module: the web framework (and its models) is not imported; neither does
    ``hub.bootstrap`` import pandas (``projections.types`` built an Arrow array at import).
    pandas itself still comes later in the run (the run's record goes through the JSON
    column plan's ``pyarrow.array``; the docs/benchmarks/s22-verify-sync22.md write-up)."""
    data, key = tmp_path / "hub", tmp_path / "admin.key"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hub.cli import main\n"
        "import hub.bootstrap\n"
        "assert 'pandas' not in sys.modules\n"
        f"data, key = {str(data)!r}, {str(key)!r}\n"
        "r = CliRunner().invoke(main, ['--data-dir', data, 'init', '--key-file', key])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'fastapi' not in sys.modules and 'starlette' not in sys.modules\n"
        "r = CliRunner().invoke(main, ['--data-dir', data, '--key-file', key, 'ledger', "
        "'verify'])\n"
        "assert r.exit_code == 0 and 'OK ledger' in r.output, r.output\n"
        "print(sorted(m for m in ('fastapi', 'starlette') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
