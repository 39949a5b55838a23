"""``hub ledger verify`` after session 22's speed work (issue 13, ``verify-perf22``).

1. A verifying process does not import pandas: pyarrow's ``pyarrow.array`` over a NumPy array
   and ``Array.to_numpy`` import it on their first call (0.25-0.3 CPU s, a fifth of a 1M-leaf
   verify in a fresh process). ``core.ports.ledgerstore.int_array``/``int_values`` build and
   read integer columns through their buffers instead: the same arrays and values (random
   inputs below), and a mismatched dtype or a null is refused, never silently cast.
2. Verify recomputes each batch without the string columns' Arrow buffers
   (``LeafEncoder.column_batch(strings=False)``, native ``stored_leaf_batch(strings=False)``)
   when the store compares through the dictionaries (the tile store's encoded comparison,
   ``StoredLeafBatch.dictionaries_only``): a string column is built from its dictionary only
   when read. The same hashes, columns, dictionaries and encoded side-index body as the full
   batch on random odd records (invalid UTF-8, null and binary keys, shared and per-record
   headers); a column not handed on as a dictionary (two byte strings, one text) is built and
   compared; the one-byte tampers of ``test_s21_verify_paths`` (its reference path has every
   native off) cover the verdicts.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from adapters import tile_sideindex as sideindex
from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import Record
from core.ports.ledgerstore import LeafBatch, int_array, int_values
from ledger.leaves import LeafEncoder, leaf_batch_reference
from ledger.verify import verify_ledger
from tests.unit.test_ledger_columns import _same
from tests.unit.test_ledger_stored_leaves import _fill_columns_only, _reads

from .test_s21_verify_paths import (
    TAMPER,
    _build,
    _first_problem,
    _open,
    _reference,
)

TYPES = [pa.int8(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]


@pytest.mark.parametrize("seed", range(30))
def test_int_array_is_pyarrows_array(seed: int) -> None:
    rng = random.Random(seed)
    t = rng.choice(TYPES)
    dtype = np.dtype(f"<{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    info = np.iinfo(dtype)
    n = rng.choice([0, 1, 7, 8, 9, 100, 1000])
    values = np.array([rng.randint(int(info.min), int(info.max)) for _ in range(2 * n)], dtype)
    values = values[:: rng.choice([1, 2])][:n]  # a strided view as well
    mask = None
    if rng.random() < 0.5:
        mask = np.array([rng.random() < 0.3 for _ in range(len(values))], dtype=bool)
    got = int_array(values, t, mask=mask)
    want = pa.array(values, type=t, mask=mask)
    assert got.type == t
    assert got.equals(want)
    assert got.null_count == want.null_count
    assert got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("seed", range(30))
def test_int_values_are_to_numpys(seed: int) -> None:
    rng = random.Random(seed)
    t = rng.choice(TYPES)
    n = rng.choice([0, 1, 5, 64, 333])
    info = np.iinfo(np.dtype(f"<{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}"))
    arr = pa.array([rng.randint(int(info.min), int(info.max)) for _ in range(n)], type=t)
    a = rng.randint(0, n)
    arr = arr.slice(a, rng.randint(0, n - a))  # an offset into the buffer
    got = int_values(arr)
    assert got.dtype == arr.to_numpy().dtype
    assert got.tolist() == arr.to_pylist()


def test_a_wrong_dtype_or_a_null_is_refused() -> None:
    with pytest.raises(ValueError, match="is not int32"):
        int_array(np.arange(3, dtype=np.int64), pa.int32())
    with pytest.raises(ValueError, match="not an integer type"):
        int_array(np.arange(3, dtype=np.int64), pa.string())
    with pytest.raises(ValueError, match="holds a null"):
        int_values(pa.array([1, None], type=pa.int64()))


def test_a_verifying_process_does_not_import_pandas(tmp_path: Path) -> None:
    _build(tmp_path)
    code = (
        "import sys\n"
        "from tests.adversarial.test_s21_verify_paths import _open\n"
        "from ledger.verify import verify_ledger\n"
        "from pathlib import Path\n"
        f"log, ledger = _open(Path({str(tmp_path)!r}))\n"
        "assert 'pandas' not in sys.modules\n"
        "report = verify_ledger(ledger)\n"
        "assert report.ok and report.leaves == 3000, report.as_dict()\n"
        "print('pandas' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_without_string_buffers_is_the_same_batch(tmp_path: Path, seed: int) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    _fill_columns_only(log, random.Random(seed))
    enc, cols = _reads(log, random.Random(seed))
    ref = leaf_batch_reference([r for c in cols for r in c.records()], 5)
    full = LeafEncoder().column_batch(enc, 5)
    lazy = LeafEncoder().column_batch(enc, 5, strings=False)
    log.close()
    assert lazy.hashes == full.hashes == ref.hashes
    assert lazy.dictionaries == full.dictionaries
    given = set(lazy.dictionaries or {})
    # the encoded comparison reads the integer columns and the dictionaries only ...
    body = sideindex.body_of(lazy.columns, lazy.dictionaries)
    assert body == sideindex.body_of(full.columns, full.dictionaries)
    assert body == sideindex.body_of(ref.columns)
    built = set(lazy.columns._built)
    assert built == {"part", "off", "ts_ms"} | (
        {"topic", "actor", "action", "resource", "tenant"} - given
    )
    # ... and any other use sees the whole table, equal to the full one
    assert lazy.columns.num_rows == full.columns.num_rows == len(full)
    assert lazy.columns.equals(full.columns)
    assert lazy.columns.schema.equals(full.columns.schema)
    _same(LeafBatch(5, lazy.hashes, lazy.columns.table(), lazy.dictionaries), ref)


def _two_keys_one_text(tmp: Path) -> None:
    """A ledger whose resource column has two keys of one text (the key ``ff 31`` is written
    ``0xff31``, as is the UTF-8 key ``0xff31``): the recomputed batch hands no resource
    dictionary on, so its column is built and compared."""
    log, ledger = _open(tmp)
    log.create_topic("trades", 1)
    for s in range(0, 600, 100):
        log.append(
            "trades",
            [Record(b"v%d" % i, b"\xff1" if i % 3 else b"0xff31") for i in range(s, s + 100)],
        )
        ledger.sync(force_checkpoint=True)
    again = LeafEncoder().column_batch([log.read_encoded("trades", 0, 0, 600)], 0, strings=False)
    assert "resource" not in (again.dictionaries or {})
    ledger.close()
    log.close()


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_a_column_without_a_dictionary_fails_the_same_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    _two_keys_one_text(tmp_path)
    assert _first_problem(tmp_path) is None
    TAMPER[what](tmp_path)
    fast = _first_problem(tmp_path)
    assert fast is not None
    with monkeypatch.context() as m:
        _reference(m)
        assert _first_problem(tmp_path) == fast


def test_a_clean_ledger_with_such_a_column_verifies_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_keys_one_text(tmp_path)
    log, ledger = _open(tmp_path)
    try:
        report = verify_ledger(ledger)
        assert report.ok and report.leaves == 600, report.as_dict()
    finally:
        ledger.close()
        log.close()
    _reference(monkeypatch)
    assert _first_problem(tmp_path) is None
