"""Tamper trials: single tamperings of a STOPPED data folder, each caught by `hub ledger verify`.

A small hub is built once per module (demo events ingested in small batches, so that every
partition holds several stored batches; a few publishes; a retention cut on ``quotes``; signed
checkpoints and their witness copies), then closed. Each trial copies the folder, changes one
stored object with plain SQLite or file writes (what an attacker holding the folder, but not the
keys, can do), and asserts that verification fails naming the problem. Property-based trials
(hypothesis, few examples each) choose which batch, record, byte, leaf or checkpoint to change.

Stored objects and how each is covered:
- log batches (``log.sqlite``): a value, key, header or timestamp changed (the batch re-encoded
  with a valid CRC), a raw byte flipped, a batch deleted, two reordered, one duplicated at the
  end, a forged batch inserted in the middle or appended at the end: the log's MAC chain;
- partition metadata: start offset raised (with or without deleting the batches below), end
  offset moved, partition count changed: the partition seals, topic MACs and the retention rule;
- ledger leaves, tree node chunks, positions, the side index (the leaves' query columns):
  recomputed from the log;
- checkpoints (signature, size, root, time, prev hash, stored hash, deleted, reordered): the
  signature, the hash chain and the recomputed roots;
- witness notes (deleted, changed, an extra one): compared with the stored checkpoints;
- keys: the ledger signing key or the log MAC key swapped for a new one (the log key is
  refused when the log opens);
- the query columns (actor, action, resource, tenant, time) of any leaf, its record removed
  by retention or not: the rows' MAC (``leaf_macs``, keyed from ``keys/``).

Tamperings not detected, by design (each is exercised below, so the list stays true):
- Replacing ``keys/ledger.pub``: it is not evidence but a published copy, rewritten from the
  private key each time the hub opens; auditors pin their own copy (``hub-verify --public-key``).
- Deleting the newest checkpoint from BOTH the store and the witness folder (a rollback of the
  signed head): the remaining chain and tree are consistent; only a copy held elsewhere (an
  auditor's last checkpoint, compared with ``hub ledger consistency``) can show it.
- Rewriting consumer-group offsets or idempotent producer state: positions, not records; they
  make a consumer re-read or a producer retry refused, never change a record.
Crypto-shredded values are not in this list: leaves hash the ciphertext, which never changes.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sqlite_log.batch import decode_batch, encode_batch
from core.errors import ConfigError
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
from ledger.verify import VerifyReport, verify_ledger
from ledger.witness import witness_key
from tests.cli_keys import admin_args

TRIALS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,  # the same trials every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The row store's tables are tampered with here; tests/adversarial/test_tile_tamper.py: tiles.
OVERRIDES: dict[str, Any] = {"checkpoint_every_leaves": 64, "ledger_store": "sqlite"}


def make_hub(data: Path, **overrides: Any) -> Hub:
    return bootstrap(load_settings(environ={}, data_dir=data, **{**OVERRIDES, **overrides}))


def load_demo_subset(h: Hub, per_topic: int = 300, batch: int = 40) -> None:
    """The demo generator's first events of each topic, ingested in small batches."""
    import json
    from decimal import Decimal

    from hub.demo import generate
    from ingest.pipeline import RawRecord

    taken: dict[str, list[Any]] = {}
    for ev in generate(7):
        got = taken.setdefault(ev.topic, [])
        if len(got) < per_topic:
            got.append(ev)
    for topic, events in taken.items():
        for i in range(0, len(events), batch):
            raws = []
            for ev in events[i : i + batch]:
                raw = json.dumps(ev.value).encode()
                raws.append(
                    RawRecord(
                        raw, value=json.loads(raw, parse_float=Decimal), event_type=ev.event_type
                    )
                )
            h.ingest.ingest(topic, raws, source="tamper-trial")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:

    data = tmp_path_factory.mktemp("tamper") / "data"
    h = make_hub(data)
    try:
        load_demo_subset(h)
        h.ledger.sync(force_checkpoint=True)
        g = h.governance
        g.set_policy("topic:quotes", max_records=50, actor="retention-officer")
        assert h.retention.run().deleted  # an honest cut, recorded on the ledger
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    admin_args(data)  # the CLI's admin key, made before any trial tampers with the copies
    report = verify(data)
    assert report.ok, report.as_dict()
    assert report.removed > 0 and report.pending == 0
    return data


@pytest.fixture
def copy_of(tmp_path: Path, pristine: Path) -> Iterator[Callable[[], Path]]:
    made: list[Path] = []

    def fresh() -> Path:
        target = tmp_path / f"trial-{len(made)}"
        shutil.copytree(pristine, target)
        made.append(target)
        return target

    yield fresh
    for m in made:
        shutil.rmtree(m, ignore_errors=True)


def verify(data: Path) -> VerifyReport:
    """What `hub ledger verify` runs, on a hub opened over ``data`` (nothing synced first)."""
    # as the CLI's verify opens it: no erasure check at open (verify reports undone erasures
    # itself), so a tampered topic is the report's finding, not the open's refusal
    settings = load_settings(environ={}, data_dir=data, **OVERRIDES)
    h = bootstrap(settings, install_domain=False, check_erasures=False)
    h.sync_on_close = False  # as the CLI's verify: it changes nothing
    try:
        return verify_ledger(h.ledger)
    finally:
        h.close()


def cli(data: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [*admin_args(data), *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def assert_detected(data: Path, *words: str) -> str:
    report = verify(data)
    assert not report.ok, f"tampering went unnoticed: {words}"
    first = report.first
    assert first is not None
    text = " | ".join(p.describe() for p in report.problems)
    for w in words:
        assert w in text, (w, text)
    return first.describe()


# -- stored-object helpers ---------------------------------------------------------------------
def db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    return conn


def batches(data: Path, topic: str) -> list[tuple[Any, ...]]:
    """(id, part, base, last, count, max_ts, mac, data) of a topic's batches, by part and base."""
    with db(data / "log.sqlite") as c:
        return c.execute(
            "SELECT b.id, b.part, b.base_offset, b.last_offset, b.record_count, b.max_timestamp,"
            " b.mac, b.data FROM batches b JOIN topics t ON t.id = b.topic_id WHERE t.name = ?"
            " ORDER BY b.part, b.base_offset",
            (topic,),
        ).fetchall()


def topic_id(data: Path, topic: str) -> int:
    with db(data / "log.sqlite") as c:
        return int(c.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()[0])


def flip(b: bytes, i: int) -> bytes:
    i %= len(b)
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


def reencode(data: Path, row: tuple[Any, ...], change: Callable[[list[Any]], None]) -> None:
    """Decode a stored batch, let ``change`` edit its columns, store it with a valid CRC."""
    _n, ts, keys, values, headers = decode_batch(row[7])
    cols = [list(ts), list(keys), list(values), [tuple(h) for h in headers]]
    change(cols)
    blob = encode_batch(cols[1], cols[2], cols[3], cols[0])
    with db(data / "log.sqlite") as c:
        c.execute("UPDATE batches SET data = ? WHERE id = ?", (blob, row[0]))


TOPICS = ["trades", "payments", "quotes", "accounts"]


# -- log batches: property-based -----------------------------------------------------------------
@TRIALS
@given(st.data())
def test_changed_record_field_in_a_reencoded_batch(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    topic = d.draw(st.sampled_from(TOPICS), "topic")
    rows = batches(data, topic)
    row = rows[d.draw(st.integers(0, len(rows) - 1), "batch")]
    i = d.draw(st.integers(0, row[4] - 1), "record")
    field = d.draw(st.sampled_from(["value", "key", "header", "timestamp"]), "field")
    at = d.draw(st.integers(0, 10_000), "byte")

    def change(cols: list[Any]) -> None:
        ts, keys, values, headers = cols
        if field == "value":
            values[i] = flip(values[i], at)
        elif field == "key":
            keys[i] = flip(keys[i] or b"k", at)
        elif field == "header":
            hs = list(headers[i])
            j = at % len(hs)
            hs[j] = (hs[j][0], flip(hs[j][1] or b"h", at))
            headers[i] = tuple(hs)
        else:
            ts[i] = ts[i] + 1 + at

    reencode(data, row, change)
    assert_detected(data, "fails its MAC", f"{topic}[{row[1]}] at offset {row[2]}")


@TRIALS
@given(st.data())
def test_raw_byte_flipped_in_a_batch(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    topic = d.draw(st.sampled_from(TOPICS), "topic")
    rows = batches(data, topic)
    row = rows[d.draw(st.integers(0, len(rows) - 1), "batch")]
    at = d.draw(st.integers(0, len(row[7]) - 1), "byte")
    with db(data / "log.sqlite") as c:
        c.execute("UPDATE batches SET data = ? WHERE id = ?", (flip(row[7], at), row[0]))
    assert_detected(data, "fails its MAC", f"{topic}[{row[1]}]")


@TRIALS
@given(st.data())
def test_a_deleted_batch(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    topic = d.draw(st.sampled_from(TOPICS), "topic")
    rows = batches(data, topic)
    row = rows[d.draw(st.integers(0, len(rows) - 1), "batch")]
    with db(data / "log.sqlite") as c:
        c.execute("DELETE FROM batches WHERE id = ?", (row[0],))
    assert_detected(data, f"{topic}[{row[1]}]")


@TRIALS
@given(st.data())
def test_two_batches_reordered(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    topic = d.draw(st.sampled_from(["trades", "payments"]), "topic")
    rows = batches(data, topic)
    pairs = [(a, b) for a, b in pairwise(rows) if a[1] == b[1]]
    a, b = pairs[d.draw(st.integers(0, len(pairs) - 1), "pair")]
    with db(data / "log.sqlite") as c:  # contents (and their MACs) swap places
        c.execute("UPDATE batches SET data = ?, mac = ? WHERE id = ?", (b[7], b[6], a[0]))
        c.execute("UPDATE batches SET data = ?, mac = ? WHERE id = ?", (a[7], a[6], b[0]))
    assert_detected(data, "fails its MAC", f"{topic}[{a[1]}] at offset {a[2]}")


@TRIALS
@given(st.data())
def test_a_batch_duplicated_at_the_end(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    rows = batches(data, "trades")
    row = rows[d.draw(st.integers(0, len(rows) - 1), "batch")]
    tid, part = topic_id(data, "trades"), row[1]
    with db(data / "log.sqlite") as c:
        (end,) = c.execute(
            "SELECT next_offset FROM partitions WHERE topic_id = ? AND part = ?", (tid, part)
        ).fetchone()
        c.execute(
            "INSERT INTO batches (topic_id, part, base_offset, last_offset, record_count,"
            " max_timestamp, mac, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tid, part, end, end + row[4] - 1, row[4], row[5], row[6], row[7]),
        )
        c.execute(
            "UPDATE partitions SET next_offset = ? WHERE topic_id = ? AND part = ?",
            (end + row[4], tid, part),
        )
    assert_detected(data, f"trades[{part}]")


def forged_blob(row: tuple[Any, ...]) -> bytes:
    """A plausible batch: the records of ``row`` with one price changed."""
    _n, ts, keys, values, headers = decode_batch(row[7])
    values = list(values)
    values[0] = flip(values[0], len(values[0]) - 2)
    return encode_batch(keys, values, [tuple(h) for h in headers], list(ts))


@TRIALS
@given(st.data())
def test_a_forged_batch_inserted_in_the_middle(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    rows = batches(data, "trades")
    row = rows[d.draw(st.integers(0, len(rows) - 1), "batch")]
    tid, part, n = topic_id(data, "trades"), row[1], row[4]
    mac = d.draw(st.sampled_from(["copied", "random"]), "mac")
    with db(data / "log.sqlite") as c:  # shift the later batches up and forge the gap
        c.execute(
            "UPDATE batches SET base_offset = -(base_offset + ?), last_offset = last_offset + ?"
            " WHERE topic_id = ? AND part = ? AND base_offset >= ?",
            (n, n, tid, part, row[2]),
        )
        c.execute("UPDATE batches SET base_offset = -base_offset WHERE base_offset < 0")
        c.execute(
            "INSERT INTO batches (topic_id, part, base_offset, last_offset, record_count,"
            " max_timestamp, mac, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tid,
                part,
                row[2],
                row[3],
                n,
                row[5],
                row[6] if mac == "copied" else bytes(range(32)),
                forged_blob(row),
            ),
        )
        c.execute(
            "UPDATE partitions SET next_offset = next_offset + ? WHERE topic_id = ? AND part = ?",
            (n, tid, part),
        )
    assert_detected(data, "fails its MAC", f"trades[{part}] at offset {row[2]}")


def forge_at_end(data: Path, part: int = 0) -> int:
    """Append a forged batch after the partition's end and raise its end offset; the base."""
    rows = [r for r in batches(data, "trades") if r[1] == part]
    last = rows[-1]
    tid = topic_id(data, "trades")
    with db(data / "log.sqlite") as c:
        (end,) = c.execute(
            "SELECT next_offset FROM partitions WHERE topic_id = ? AND part = ?", (tid, part)
        ).fetchone()
        c.execute(
            "INSERT INTO batches (topic_id, part, base_offset, last_offset, record_count,"
            " max_timestamp, mac, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tid, part, end, end + last[4] - 1, last[4], last[5], last[6], forged_blob(last)),
        )
        c.execute(
            "UPDATE partitions SET next_offset = ? WHERE topic_id = ? AND part = ?",
            (end + last[4], tid, part),
        )
    return int(end)


def test_a_forged_batch_at_the_end_is_never_pending_nor_adopted(
    copy_of: Callable[[], Path],
) -> None:
    """Reviewer's case: a batch forged after the ledger's position was reported "pending" and
    then adopted by the next sync."""
    data = copy_of()
    base = forge_at_end(data)
    assert_detected(data, f"trades[0] at offset {base}", "fails its MAC")
    code, _out, err = cli(data, "ledger", "sync")
    assert code == 1 and "log_tampered" in err, err
    with db(data / "ledger.sqlite") as c:
        (pos,) = c.execute(
            "SELECT next_offset FROM positions WHERE topic = 'trades' AND part = 0"
        ).fetchone()
    assert pos <= base  # not adopted
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 1 and err.startswith("INVALID: "), err


# -- partition metadata ---------------------------------------------------------------------------
def test_start_offset_raised_and_batches_below_deleted(copy_of: Callable[[], Path]) -> None:
    """Reviewer's case: a partition's start offset raised and the batches below it deleted
    (trades gone without a ``retention.delete`` entry)."""
    data = copy_of()
    tid = topic_id(data, "trades")
    rows = [r for r in batches(data, "trades") if r[1] == 0]
    cut = rows[2][2]
    with db(data / "log.sqlite") as c:
        c.execute(
            "DELETE FROM batches WHERE topic_id = ? AND part = 0 AND base_offset < ?", (tid, cut)
        )
        c.execute(
            "UPDATE partitions SET start_offset = ? WHERE topic_id = ? AND part = 0", (cut, tid)
        )
    assert_detected(data, "trades[0]", "no retention.delete entry")
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 1 and "INVALID" in err


@TRIALS
@given(st.data())
def test_partition_bounds_moved(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    topic = d.draw(st.sampled_from(TOPICS), "topic")
    column = d.draw(st.sampled_from(["start_offset", "next_offset"]), "column")
    delta = d.draw(st.sampled_from([-1, 1, 7]), "delta")
    tid = topic_id(data, topic)
    with db(data / "log.sqlite") as c:
        c.execute(
            f"UPDATE partitions SET {column} = max(0, {column} + ?)"
            " WHERE topic_id = ? AND part = 0",
            (delta, tid),
        )
        changed = c.total_changes
    if column == "start_offset" and delta < 0 and topic != "quotes":
        return  # start offset already 0: max(0, -1) changed nothing
    assert changed
    assert_detected(data, f"{topic}[0]")


@pytest.mark.parametrize("change", [+1, -1])
def test_partition_count_changed(copy_of: Callable[[], Path], change: int) -> None:
    data = copy_of()
    tid = topic_id(data, "trades")
    with db(data / "log.sqlite") as c:
        (n,) = c.execute("SELECT partitions FROM topics WHERE id = ?", (tid,)).fetchone()
        c.execute("UPDATE topics SET partitions = ? WHERE id = ?", (n + change, tid))
        if change > 0:
            c.execute("INSERT INTO partitions (topic_id, part) VALUES (?, ?)", (tid, n))
        else:
            c.execute("DELETE FROM partitions WHERE topic_id = ? AND part = ?", (tid, n - 1))
    assert_detected(data, "trades")


def test_topic_config_changed(copy_of: Callable[[], Path]) -> None:
    data = copy_of()
    with db(data / "log.sqlite") as c:
        c.execute("UPDATE topics SET config = '{}' WHERE name = 'trades'")
    assert_detected(data, "trades", "config fails its MAC")


@pytest.mark.parametrize("name", ["ledger.sqlite", "log.sqlite"])
def test_a_whole_store_file_replaced_by_an_empty_one(
    copy_of: Callable[[], Path], name: str
) -> None:
    data = copy_of()
    (data / name).unlink()
    for extra in ("-wal", "-shm"):
        (data / (name + extra)).unlink(missing_ok=True)
    if name == "ledger.sqlite":  # refused when the hub opens (test_s19_rtb_ledger_removed)
        with pytest.raises(LedgerIntegrityError, match="removed or replaced"):
            verify(data)
        return
    assert_detected(data)


# -- ledger leaves, nodes, positions, side index --------------------------------------------------
def leaf_count(data: Path) -> int:
    with db(data / "ledger.sqlite") as c:
        return int(c.execute("SELECT count(*) FROM leaves").fetchone()[0])


@TRIALS
@given(st.data())
def test_ledger_leaves_and_side_index(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    n = leaf_count(data)
    idx = d.draw(st.integers(0, n - 2), "leaf")
    how = d.draw(
        st.sampled_from(["hash", "actor", "action", "resource", "ts", "delete", "swap", "offset"]),
        "how",
    )
    with db(data / "ledger.sqlite") as c:
        if how == "hash":
            (h,) = c.execute("SELECT leaf_hash FROM leaves WHERE idx = ?", (idx,)).fetchone()
            c.execute("UPDATE leaves SET leaf_hash = ? WHERE idx = ?", (flip(h, idx), idx))
        elif how in ("actor", "action", "resource"):
            c.execute(f"UPDATE leaves SET {how} = 'mallory' WHERE idx = ?", (idx,))
        elif how == "ts":
            c.execute("UPDATE leaves SET ts_ms = ts_ms + 1 WHERE idx = ?", (idx,))
        elif how == "delete":
            c.execute("DELETE FROM leaves WHERE idx = ?", (idx,))
        elif how == "swap":
            c.execute("DROP INDEX leaves_by_position")
            c.execute("UPDATE leaves SET idx = -1 WHERE idx = ?", (idx,))
            c.execute("UPDATE leaves SET idx = ? WHERE idx = ?", (idx, idx + 1))
            c.execute("UPDATE leaves SET idx = ? WHERE idx = -1", (idx + 1,))
        else:
            c.execute("DROP INDEX leaves_by_position")
            c.execute("UPDATE leaves SET off = off + 1 WHERE idx = ?", (idx,))
    assert_detected(data, "entry")


def removed_leaf(data: Path) -> int:
    """A leaf whose record retention removed (quotes, below the partition's start)."""
    h = bootstrap(load_settings(environ={}, data_dir=data, **OVERRIDES), install_domain=False)
    h.sync_on_close = False
    try:
        starts = h.log.beginning_offsets("quotes")
    finally:
        h.close()
    part, start = next((p, s) for p, s in starts.items() if s > 0)
    with db(data / "ledger.sqlite") as c:
        (idx,) = c.execute(
            "SELECT idx FROM leaves WHERE topic = 'quotes' AND part = ? AND off = ?",
            (part, start - 1),
        ).fetchone()
    return int(idx)


def test_the_hash_of_a_leaf_whose_record_was_removed(copy_of: Callable[[], Path]) -> None:
    data = copy_of()
    idx = removed_leaf(data)
    with db(data / "ledger.sqlite") as c:
        (h,) = c.execute("SELECT leaf_hash FROM leaves WHERE idx = ?", (idx,)).fetchone()
        c.execute("UPDATE leaves SET leaf_hash = ? WHERE idx = ?", (flip(h, 3), idx))
    assert_detected(data)


def test_query_columns_of_a_removed_record_fail_their_mac(
    copy_of: Callable[[], Path],
) -> None:
    """Nothing is left in the log to recompute them from, but the rows' MAC (keyed from
    ``keys/``) covers them: the rewrite is caught (test_row_store_mac)."""
    data = copy_of()
    idx = removed_leaf(data)
    with db(data / "ledger.sqlite") as c:
        c.execute("UPDATE leaves SET actor = 'mallory' WHERE idx = ?", (idx,))
    assert_detected(data, "do not match their MAC")


@TRIALS
@given(st.data())
def test_tree_node_chunks(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    with db(data / "ledger.sqlite") as c:
        keys = c.execute("SELECT level, chunk, length(data) FROM nodes ORDER BY 1, 2").fetchall()
        level, chunk, size = keys[d.draw(st.integers(0, len(keys) - 1), "chunk")]
        how = d.draw(st.sampled_from(["byte", "delete", "truncate"]), "how")
        if how == "byte":
            at = d.draw(st.integers(0, size - 1), "byte")
            (blob,) = c.execute(
                "SELECT data FROM nodes WHERE level = ? AND chunk = ?", (level, chunk)
            ).fetchone()
            c.execute(
                "UPDATE nodes SET data = ? WHERE level = ? AND chunk = ?",
                (flip(blob, at), level, chunk),
            )
        elif how == "delete":
            c.execute("DELETE FROM nodes WHERE level = ? AND chunk = ?", (level, chunk))
        else:
            c.execute(
                "UPDATE nodes SET data = substr(data, 1, length(data) - 32)"
                " WHERE level = ? AND chunk = ?",
                (level, chunk),
            )
    assert_detected(data)


@pytest.mark.parametrize("delta", [-1, 3])
def test_ledger_position_moved(copy_of: Callable[[], Path], delta: int) -> None:
    """Back (a record would get a second leaf) or past the log's end (the next records would
    never get one). Moving it over a transaction marker's offset alone changes nothing: no
    record is there."""
    data = copy_of()
    with db(data / "ledger.sqlite") as c:
        c.execute(
            "UPDATE positions SET next_offset = next_offset + ?"
            " WHERE topic = 'trades' AND part = 1",
            (delta,),
        )
    assert_detected(data, "trades", "stored position")


# -- checkpoints ----------------------------------------------------------------------------------
def checkpoint_sizes(data: Path) -> list[int]:
    with db(data / "ledger.sqlite") as c:
        return [s for (s,) in c.execute("SELECT size FROM checkpoints ORDER BY size")]


@TRIALS
@given(st.data())
def test_checkpoints(copy_of: Callable[[], Path], d: Any) -> None:
    data = copy_of()
    sizes = checkpoint_sizes(data)
    k = d.draw(st.integers(0, len(sizes) - 2), "checkpoint")
    size = sizes[k]
    how = d.draw(
        st.sampled_from(
            ["note byte", "signature", "size", "root", "time", "hash", "prev", "delete", "reorder"]
        ),
        "how",
    )
    with db(data / "ledger.sqlite") as c:
        (note,) = c.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        if how == "note byte":
            at = d.draw(st.integers(0, len(note) - 1), "byte")
            c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (flip(note, at), size))
        elif how == "signature":
            sig = note.rindex(b" ") + 5  # a byte inside the signature's base64
            c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (flip(note, sig), size))
        elif how == "size":
            c.execute("UPDATE checkpoints SET size = size + 100000 WHERE size = ?", (size,))
        elif how == "root":
            c.execute("UPDATE checkpoints SET root = zeroblob(32) WHERE size = ?", (size,))
        elif how == "time":
            c.execute("UPDATE checkpoints SET time_us = time_us + 1 WHERE size = ?", (size,))
        elif how == "hash":
            c.execute("UPDATE checkpoints SET hash = zeroblob(32) WHERE size = ?", (size,))
        elif how == "prev":
            lines = note.split(b"\n")
            j = next(i for i, line in enumerate(lines) if line.startswith(b"prev "))
            lines[j] = b"prev " + b"A" * (len(lines[j]) - 5)
            c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (b"\n".join(lines), size))
        elif how == "delete":
            c.execute("DELETE FROM checkpoints WHERE size = ?", (size,))
        else:
            other = sizes[k + 1]
            (note2,) = c.execute("SELECT note FROM checkpoints WHERE size = ?", (other,)).fetchone()
            c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note2, size))
            c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, other))
    assert_detected(data, "checkpoint")


def test_checkpoint_prev_line_exists_in_notes(pristine: Path) -> None:
    """Guard for the "prev" trial above: the hub's notes do carry a prev line."""
    with db(pristine / "ledger.sqlite") as c:
        (note,) = c.execute("SELECT note FROM checkpoints ORDER BY size LIMIT 1").fetchone()
    assert b"\nprev " in note or note.startswith(b"prev ")


# -- witness notes --------------------------------------------------------------------------------
def witness_files(data: Path) -> list[Path]:
    return sorted((data / "witness" / "checkpoints").rglob("*.note"))


@TRIALS
@given(st.data())
def test_witness_notes(copy_of: Callable[[], Path], d: Any) -> None:
    """Reviewer's case among them: a deleted witness note was never noticed."""
    data = copy_of()
    files = witness_files(data)
    f = files[d.draw(st.integers(0, len(files) - 1), "note")]
    how = d.draw(st.sampled_from(["delete", "change", "extra"]), "how")
    size = int(f.stem)
    if how == "delete":
        f.unlink()
        assert_detected(data, f"checkpoint {size}", "missing")
    elif how == "change":
        b = f.read_bytes()
        f.chmod(0o644)
        f.write_bytes(flip(b, d.draw(st.integers(0, len(b) - 1), "byte")))
        assert_detected(data, f"checkpoint {size}", "different note")
    else:
        extra = data / "witness" / witness_key(size + 1_000_000)  # where the hub would put it
        extra.parent.mkdir(exist_ok=True)
        shutil.copyfile(f, extra)
        assert_detected(data, f"checkpoint {size + 1_000_000}", "store lacks")


# -- keys -----------------------------------------------------------------------------------------
def test_ledger_signing_key_swapped(copy_of: Callable[[], Path]) -> None:
    from audit.note import generate_key

    data = copy_of()
    key = data / "keys" / "ledger.key"
    key.write_text(generate_key("hub.local/ledger").encode() + "\n")
    key.chmod(0o600)
    assert_detected(data, "checkpoint", "does not verify")


def test_log_mac_key_swapped(copy_of: Callable[[], Path]) -> None:
    data = copy_of()
    key = data / "keys" / "log.mac"
    key.write_bytes(bytes(reversed(key.read_bytes())))
    # refused when the log opens (test_log_key_replaced), before anything is appended under it
    with pytest.raises(ConfigError, match="does not authenticate the log"):
        verify(data)


def test_public_key_file_replaced_is_repaired_not_evidence(copy_of: Callable[[], Path]) -> None:
    """By design (module docstring): ``ledger.pub`` is a published copy, rewritten from the
    private key when the hub opens; verification does not read it."""
    from audit.note import generate_key

    data = copy_of()
    pub = data / "keys" / "ledger.pub"
    original = pub.read_text()
    pub.write_text(generate_key("hub.local/ledger").verifier.encode() + "\n")
    assert verify(data).ok
    assert pub.read_text() == original


def test_newest_checkpoint_removed_from_store_and_witness_is_a_rollback(
    copy_of: Callable[[], Path],
) -> None:
    """By design (module docstring): removing the signed head from both places leaves a
    consistent, older log; removing it from one place only is caught."""
    data = copy_of()
    newest = checkpoint_sizes(data)[-1]
    with db(data / "ledger.sqlite") as c:
        c.execute("DELETE FROM checkpoints WHERE size = ?", (newest,))
    assert_detected(data, f"checkpoint {newest}", "store lacks")
    (data / "witness" / witness_key(newest)).unlink()
    assert verify(data).ok


# -- the window between an append and its leaf ----------------------------------------------------
def test_cli_appends_are_on_the_ledger_when_the_command_returns(tmp_path: Path) -> None:
    """Reviewer's case: records appended by `hub demo load` or `hub publish` were not on the
    ledger until a separate sync, and a change made in that window was never detected."""
    import json

    data = tmp_path / "data"
    code, _out, err = cli(data, "demo", "load")
    assert code == 0, err
    lines = tmp_path / "trades.jsonl"
    h = make_hub(data)
    try:
        first = h.reader.decode(h.log.read("trades", 0, 0, 1)[0])["value"]
    finally:
        h.close()
    row = {k: (str(v) if not isinstance(v, (str, int)) else v) for k, v in first.items()}
    row["trade_id"] = "T-CLI-1"
    lines.write_text(json.dumps(row, default=str) + "\n")
    code, _out, err = cli(data, "publish", str(lines), "--topic", "trades")
    assert code == 0, err
    # Nothing pending once the commands returned: every record has its leaf.
    report = verify(data)
    assert report.ok and report.pending == 0, report.as_dict()
    h = make_hub(data)  # the CLI made the folder: its ledger store is the default's (tiles)
    try:
        covered = h.ledger.store.positions()
        for t in h.log.topics():
            for p, end in h.log.end_offsets(t.name).items():
                got = h.log.read(t.name, p, covered.get((t.name, p), 0), 1)
                assert not got or got[0].offset >= end, (t.name, p)
    finally:
        h.sync_on_close = False
        h.close()
    # A change made right after the command returned is caught.
    row_ = batches(data, "trades")[-1]
    reencode(data, row_, lambda cols: cols[2].__setitem__(0, flip(cols[2][0], 9)))
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 1 and "INVALID" in err, err


def test_http_acknowledgement_states_ledger_coverage(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    h = make_hub(tmp_path / "data")
    try:
        token = h.keys.create(["publisher"], principal="desk-1").token
        client = TestClient(create_app(h))
        body = {
            "events": [
                {
                    "value": {
                        "trade_id": "T-1",
                        "account_id": "ACC-1",
                        "instrument": "US0378331005",
                        "side": "BUY",
                        "quantity": "1",
                        "price": "1.5",
                        "currency": "USD",
                        "executed_at": "2026-11-25T14:30:00Z",
                    }
                }
            ]
        }
        r = client.post(
            "/v1/topics/trades/events", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 201, r.text
        ack = r.json()
        assert ack["ledger"]["covered"] is True
        off = ack["offsets"][0]
        assert h.ledger.index_of("trades", off["partition"], off["offset"]) is not None
        assert ack["ledger"]["tree_size"] >= 1
    finally:
        h.close()


def test_records_pending_longer_than_the_bound_fail(tmp_path: Path) -> None:
    from core.ports.eventlog import Record

    data = tmp_path / "data"
    h = make_hub(data)
    try:
        h.log.create_topic("t.raw", 1)
        h.log.append("t.raw", [Record(b"x", timestamp_ms=1_000)])  # appended, never synced
        report = verify_ledger(h.ledger)
        assert not report.ok
        assert report.first is not None and "HUB_LEDGER_MAX_PENDING_MS" in report.first.describe()
        h.ledger.sync()
        assert verify_ledger(h.ledger).ok
    finally:
        h.close()


# -- no false positives ---------------------------------------------------------------------------
def test_an_honest_folder_verifies_after_demo_publish_retention_erasure_and_restarts(
    tmp_path: Path,
) -> None:
    from core.ports.policy import Principal

    OPERATOR = Principal("ops", frozenset({"admin"}))  # a service-level caller
    from core.events import OutgoingEvent

    data = tmp_path / "data"
    code, _out, err = cli(data, "demo", "load")
    assert code == 0, err
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0 and out.startswith("OK ledger"), err
    h = make_hub(data)
    try:
        h.publisher.publish(
            "trades",
            [
                OutgoingEvent(
                    value={
                        "trade_id": f"T-X{i}",
                        "account_id": "ACC-0001",
                        "instrument": "US0378331005",
                        "side": "BUY",
                        "quantity": "1",
                        "price": "2.5",
                        "currency": "USD",
                        "executed_at": "2026-11-25T14:30:00Z",
                    }
                )
                for i in range(5)
            ],
            producer="desk-9",
        )
        g = h.governance
        g.set_policy("topic:quotes", max_records=100, actor="retention-officer")
        assert h.retention.run().deleted
        h.eraser.erase(OPERATOR, "ACC-0042", "DSR-1", tenant_scope=None)
        h.ledger.sync(force_checkpoint=True)
        report = verify_ledger(h.ledger)
        assert report.ok, report.as_dict()
        assert report.removed > 0
    finally:
        h.close()
    for _ in range(2):  # close and reopen: still sound, nothing pending
        report = verify(data)
        assert report.ok and report.pending == 0, report.as_dict()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0 and out.startswith("OK ledger"), err
