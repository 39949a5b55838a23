"""The audit ledger over a real embedded log: leaves, ordering, checkpoints, proofs, queries,
the HTTP API's role checks, and tamper detection by `hub ledger verify`."""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from adapters.sqlite_ledgerstore import SqliteLedgerStore
from adapters.sqlite_log.batch import decode_batch, encode_batch
from audit.merkle import verify_consistency, verify_inclusion
from audit.note import GENESIS_PREV, checkpoint_hash, open_checkpoint, parse_verifier_key
from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ledger.service import Ledger, LedgerConfig
from tests.cli_keys import admin_args

REPO = Path(__file__).resolve().parents[2]


def trade(i: int, account: str = "ACC-1") -> OutgoingEvent:
    return OutgoingEvent(
        value={
            "trade_id": f"T-{i}",
            "account_id": account,
            "instrument": "US0378331005",
            "side": "BUY",
            "quantity": "100",
            "price": "189.12345678",
            "currency": "USD",
            "executed_at": "2026-11-25T14:30:00.123456Z",
        }
    )


def make_hub(data: Path, **overrides: object) -> Hub:
    """A hub on the row store (its tables are tampered with below; tiles: test_tile_tamper)."""
    return bootstrap(
        load_settings(environ={}, data_dir=data, **{"ledger_store": "sqlite", **overrides})
    )


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = make_hub(tmp_path / "data", checkpoint_every_leaves=8)
    yield h
    h.close()


def publish(h: Hub, n: int, producer: str = "desk-1", start: int = 0) -> None:
    accounts = ["ACC-1", "ACC-2", "ACC-3", "ACC-4"]
    h.publisher.publish(
        "trades", [trade(start + i, accounts[i % 4]) for i in range(n)], producer=producer
    )


def log_total(h: Hub) -> int:
    """Records stored in every topic (not end offsets: transaction markers take offsets)."""
    return sum(
        sum(1 for _ in h.log.scan(t.name, p)) for t in h.log.topics() for p in range(t.partitions)
    )


def test_every_record_gets_exactly_one_leaf(hub: Hub) -> None:
    publish(hub, 30)
    hub.keys.create(["analyst"], principal="bob")
    signed_at_start = hub.ledger.store.tree_size()  # the first start signs its set-up's records
    assert signed_at_start > 0
    r = hub.ledger.sync()
    assert r.appended + signed_at_start == log_total(hub) == r.size
    positions = [(e["topic"], e["partition"], e["offset"]) for e in hub.ledger.entries(limit=10**6)]
    assert len(positions) == len(set(positions)) == log_total(hub)
    assert hub.ledger.sync().appended == 0  # nothing new: nothing appended
    publish(hub, 5, start=100)
    assert hub.ledger.sync().appended == 5  # incremental


def test_ordering_rule_and_determinism(tmp_path: Path, hub: Hub) -> None:
    publish(hub, 40)
    hub.keys.create(["analyst"], principal="bob")
    hub.ledger.sync(force_checkpoint=True)
    rows = hub.ledger.entries(limit=10**6)
    order = [(e["topic"], e["partition"], e["offset"]) for e in rows]
    assert order == sorted(order)  # one full sync: topic, partition, offset order
    # Two fresh ledgers over the same log, different batch sizes and checkpoint cadence.
    roots = []
    for name, batch in (("a", 7), ("b", 1000)):
        other = Ledger(
            hub.log,
            SqliteLedgerStore(tmp_path / f"{name}.sqlite"),
            hub.ledger.signer,
            LedgerConfig(checkpoint_every_leaves=5, sync_batch=batch),
        )
        other.sync(force_checkpoint=True)
        cp = other.store.latest_checkpoint()
        assert cp is not None
        roots.append((cp.size, cp.root))
        other.close()
    latest = hub.ledger.store.latest_checkpoint()
    assert latest is not None
    assert roots[0] == roots[1] == (latest.size, latest.root)


def test_checkpoints_by_count_and_by_time(tmp_path: Path) -> None:
    now = [1_000_000_000]
    h = make_hub(tmp_path / "d", checkpoint_every_leaves=10, checkpoint_every_ms=500)
    try:
        ledger = Ledger(
            h.log,
            SqliteLedgerStore(tmp_path / "l.sqlite"),
            h.ledger.signer,
            LedgerConfig(
                origin=h.settings.ledger_origin,
                checkpoint_every_leaves=10,
                checkpoint_every_ms=500,
            ),
            clock_us=lambda: now[0],
        )
        base = log_total(h)
        n = 25 if (base + 26) % 10 else 24  # bootstrap's record count varies with the catalog
        publish(h, n)
        r = ledger.sync()
        # By count: every multiple of 10 crossed (the last one restarts the timer).
        assert r.checkpoints == list(range(10, base + n + 1, 10))
        assert (base + n + 1) % 10  # the next leaf does not reach a multiple of 10
        publish(h, 1, start=50)
        assert ledger.sync().checkpoints == []  # grew, but 500 ms have not passed
        now[0] += 499_000
        assert ledger.sync().checkpoints == []
        now[0] += 1_000
        assert ledger.sync().checkpoints == [base + n + 1]  # T elapsed
        assert ledger.sync().checkpoints == []  # no growth: no checkpoint
        # Chain and signatures with audit.note.
        key = parse_verifier_key(ledger.public_key())
        prev = GENESIS_PREV
        for cp in ledger.checkpoints():
            parsed, _ = open_checkpoint(cp.note, [key])
            assert (parsed.size, parsed.root, parsed.prev_hash) == (cp.size, cp.root, prev)
            assert parsed.origin == h.settings.ledger_origin
            prev = checkpoint_hash(cp.note)
        ledger.close()
    finally:
        h.close()


def test_proofs_verify_with_audit_merkle_and_hub_verify(hub: Hub, tmp_path: Path) -> None:
    publish(hub, 20)
    first = hub.ledger.sync(force_checkpoint=True).checkpoints
    publish(hub, 13, start=50)
    hub.ledger.sync(force_checkpoint=True)
    cps = [cp for cp in hub.ledger.checkpoints() if cp.size >= first[0]]  # not start-up's
    old, new = cps[0], cps[-1]
    assert first[0] == old.size
    for index in (0, old.size - 1, new.size - 1):
        e = hub.ledger.entry(index, new.size)
        proof = [bytes.fromhex(p) for p in e["proof"]]
        verify_inclusion(bytes.fromhex(e["leaf_hash"]), index, new.size, proof, new.root)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "audit.verify",
                "inclusion",
                "--leaf-hash",
                e["leaf_hash"],
                "--index",
                str(index),
                "--size",
                str(new.size),
                "--root",
                new.root.hex(),
                "--proof",
                ",".join(e["proof"]),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
    c = hub.ledger.consistency(old.size, new.size)
    proof = [bytes.fromhex(p) for p in c["proof"]]
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    # hub-verify checkpoint with the chain: the newest against its predecessor.
    prev = cps[-2]
    (tmp_path / "new.note").write_bytes(new.note)
    (tmp_path / "prev.note").write_bytes(prev.note)
    (tmp_path / "key.pub").write_text(hub.ledger.public_key() + "\n")
    link = hub.ledger.consistency(prev.size, new.size)["proof"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit.verify",
            "checkpoint",
            str(tmp_path / "new.note"),
            "--public-key",
            str(tmp_path / "key.pub"),
            "--previous",
            str(tmp_path / "prev.note"),
            "--proof",
            ",".join(link),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


def test_queries(hub: Hub) -> None:
    publish(hub, 6, producer="desk-1")
    publish(hub, 4, producer="desk-2", start=10)
    hub.ledger.record_action("carol", "evidence.export", "evidence/q1", details={"n": 1})
    hub.ledger.sync()
    assert len(hub.ledger.entries(actor="desk-2")) == 4
    assert len(hub.ledger.entries(action="hub.trading.TradeExecuted")) == 10
    assert len(hub.ledger.entries(topic="trades")) == 10
    assert len(hub.ledger.entries(resource="ACC-2")) == 3  # the key as text
    (audit,) = hub.ledger.entries(actor="carol", with_fields=True)
    assert (audit["action"], audit["resource"], audit["topic"]) == (
        "evidence.export",
        "evidence/q1",
        "hub.audit",
    )
    ts = audit["timestamp_ms"]
    in_ms = hub.ledger.entries(since_ms=ts, until_ms=ts + 1, topic="hub.audit")
    assert [e["index"] for e in in_ms] == [audit["index"]]
    assert hub.ledger.entries(since_ms=ts + 1, topic="hub.audit") == []


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


LEDGER_GETS = [
    "/v1/ledger/entries",
    "/v1/ledger/entries/0",
    "/v1/ledger/checkpoints",
    "/v1/ledger/checkpoints/latest",
    "/v1/ledger/consistency?from=1&to=1",
    "/v1/ledger/public-key",
]


def test_api_roles_and_answers(hub: Hub) -> None:
    publish(hub, 3)
    with TestClient(create_app(hub)) as client:
        analyst = _auth(hub.keys.create(["analyst"], principal="ann").token)
        admin = _auth(hub.keys.create(["admin"], principal="root").token)
        for path in LEDGER_GETS:
            assert client.get(path, headers=analyst).status_code == 403, path
        assert client.post("/v1/ledger/verify", headers=analyst).status_code == 403
        r = client.post("/v1/evidence?from=2000-01-01&to=2100-01-01", headers=analyst)
        assert r.status_code == 403
        hub.ledger.sync(force_checkpoint=True)
        size = hub.ledger.store.tree_size()
        entry = client.get(f"/v1/ledger/entries/0?checkpoint={size}", headers=admin).json()
        assert entry["checkpoint"]["size"] == size and entry["proof"]
        latest = client.get("/v1/ledger/checkpoints/latest", headers=admin)
        assert latest.headers["content-type"].startswith("text/plain")
        assert latest.text.startswith(hub.settings.ledger_origin + "\n")
        got = client.get("/v1/ledger/entries?actor=root&topic=hub.principals", headers=admin)
        assert got.status_code == 200
        assert client.get("/v1/ledger/public-key", headers=admin).text.strip() == (
            hub.ledger.public_key()
        )
        assert client.post("/v1/ledger/verify", headers=admin).json()["ok"] is True
        bad = client.get("/v1/ledger/consistency?from=5&to=2", headers=admin)
        assert bad.status_code == 422 and bad.json()["reason"] == "invalid_range"
        assert client.get("/v1/ledger/entries/999999", headers=admin).status_code == 404


def test_compliance_officer_may_read_the_ledger(hub: Hub) -> None:
    with TestClient(create_app(hub)) as client:
        officer = _auth(hub.keys.create(["compliance_officer"], principal="cora").token)
        hub.ledger.sync(force_checkpoint=True)
        size = client.get("/v1/ledger/checkpoints", headers=officer).json()[-1]["size"]
        for path in LEDGER_GETS:
            path = path.replace("from=1&to=1", f"from={size}&to={size}")
            assert client.get(path, headers=officer).status_code == 200, path
        assert client.post("/v1/ledger/verify", headers=officer).status_code == 200
        r = client.post("/v1/evidence?from=2000-01-01&to=2100-01-01", headers=officer)
        assert r.status_code == 200


# --------------------------------------------------------------------------------------------
# Tamper tests: each detected by `hub ledger verify` (exit 1, naming the first bad entry).


def cli(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*admin_args(data), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def synced(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data, checkpoint_every_leaves=8)
    try:
        publish(h, 40)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    assert out.startswith("OK ledger")
    return data


def _trade_leaf(data: Path, n: int = 5) -> tuple[int, int, int]:
    """(index, partition, offset) of the n-th trades leaf."""
    with sqlite3.connect(data / "ledger.sqlite") as db:
        return db.execute(  # type: ignore[no-any-return]
            "SELECT idx, part, off FROM leaves WHERE topic = 'trades' ORDER BY idx LIMIT 1 "
            "OFFSET ?",
            (n,),
        ).fetchone()


def _log_batch(data: Path, part: int, off: int) -> tuple[int, bytes, int]:
    with sqlite3.connect(data / "log.sqlite") as db:
        return db.execute(  # type: ignore[no-any-return]
            "SELECT b.id, b.data, b.base_offset FROM batches b JOIN topics t ON t.id = b.topic_id"
            " WHERE t.name = 'trades' AND b.part = ? AND b.base_offset <= ? "
            "ORDER BY b.base_offset DESC LIMIT 1",
            (part, off),
        ).fetchone()


def expect_invalid(data: Path, *words: str) -> str:
    code, out, err = cli(data, "ledger", "verify", "--full")  # tampering below the verified size
    assert code == 1, (out, err)
    assert err.startswith("INVALID: ")
    for w in words:
        if w.startswith("entry "):
            assert re.search(re.escape(w.strip()) + r"\b", err), (w, err)
        else:
            assert w in err, (w, err)
    return err


def test_tamper_event_byte_broken_crc(synced: Path) -> None:
    _idx, part, off = _trade_leaf(synced)
    batch_id, blob, _ = _log_batch(synced, part, off)
    with sqlite3.connect(synced / "log.sqlite") as db:
        b = bytearray(blob)
        b[-3] ^= 0x01
        db.execute("UPDATE batches SET data = ? WHERE id = ?", (bytes(b), batch_id))
    expect_invalid(synced, "fails its own authentication", "trades")


def test_tamper_event_value_with_a_valid_crc(synced: Path) -> None:
    idx, part, off = _trade_leaf(synced)
    batch_id, blob, base = _log_batch(synced, part, off)
    _n, ts, keys, values, headers = decode_batch(blob)
    values = list(values)
    v = bytearray(values[off - base])
    v[-1] ^= 0x01  # one byte of the Avro payload, the batch re-encoded with a fresh CRC
    values[off - base] = bytes(v)
    with sqlite3.connect(synced / "log.sqlite") as db:
        db.execute(
            "UPDATE batches SET data = ? WHERE id = ?",
            (encode_batch(keys, values, headers, list(ts)), batch_id),
        )
    # The log's MAC chain names the re-encoded batch (by its base offset) before the leaf does.
    err = expect_invalid(synced, f"(trades, {part}, {base})", "fails its MAC")
    assert idx >= int(re.search(r"entry (\d+)", err).group(1))  # type: ignore[union-attr]


def test_tamper_ledger_leaf_byte(synced: Path) -> None:
    idx, _part, _off = _trade_leaf(synced)
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        (h,) = db.execute("SELECT leaf_hash FROM leaves WHERE idx = ?", (idx,)).fetchone()
        db.execute(
            "UPDATE leaves SET leaf_hash = ? WHERE idx = ?", (bytes([h[0] ^ 1]) + h[1:], idx)
        )
    expect_invalid(synced, f"entry {idx} ", "leaf hash differs")


def test_tamper_tree_node_byte(synced: Path) -> None:
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        (data,) = db.execute("SELECT data FROM nodes WHERE level = 2 AND chunk = 0").fetchone()
        db.execute(
            "UPDATE nodes SET data = ? WHERE level = 2 AND chunk = 0",
            (data[:40] + bytes([data[40] ^ 1]) + data[41:],),
        )
    expect_invalid(synced, "node chunk (2, 0)")


def test_tamper_checkpoint_byte(synced: Path) -> None:
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        size, note = db.execute(
            "SELECT size, note FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1"
        ).fetchone()
        i = note.index(b"\n", note.index(b"\n") + 1) + 5  # a byte of the root line
        bad = note[:i] + bytes([note[i] ^ 0x02]) + note[i + 1 :]
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (bad, size))
    expect_invalid(synced, f"checkpoint {size}")


def test_tamper_drop_an_entry(synced: Path) -> None:
    idx, _, _ = _trade_leaf(synced)
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        db.execute("DELETE FROM leaves WHERE idx = ?", (idx,))
    expect_invalid(synced, f"entry {idx} ", "dropped")


def test_tamper_reorder_two_entries(synced: Path) -> None:
    a, _, _ = _trade_leaf(synced, 3)
    b, _, _ = _trade_leaf(synced, 4)
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        db.execute("UPDATE leaves SET idx = -1 WHERE idx = ?", (a,))
        db.execute("UPDATE leaves SET idx = ? WHERE idx = ?", (a, b))
        db.execute("UPDATE leaves SET idx = ? WHERE idx = -1", (b,))
    expect_invalid(synced, f"entry {a} ")


def test_tamper_insert_an_entry(synced: Path) -> None:
    idx, _part, _off = _trade_leaf(synced)
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        db.execute("DROP INDEX leaves_by_position")
        db.execute("UPDATE leaves SET idx = -(idx + 1) WHERE idx > ?", (idx,))
        db.execute("UPDATE leaves SET idx = -idx WHERE idx < 0")
        row = db.execute("SELECT * FROM leaves WHERE idx = ?", (idx,)).fetchone()
        db.execute("INSERT INTO leaves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (idx + 1, *row[1:]))
    expect_invalid(synced, f"entry {idx + 1} ")


def test_tamper_drop_a_checkpoint(synced: Path) -> None:
    with sqlite3.connect(synced / "ledger.sqlite") as db:
        (size,) = db.execute(
            "SELECT size FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1"
        ).fetchone()
        db.execute("DELETE FROM checkpoints WHERE size = ?", (size,))
    expect_invalid(synced, "checkpoint")
