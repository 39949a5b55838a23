"""File sources through the ingest pipeline: every format, bad input, resume, CLI, watch folder."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from domain.catalog import schema_text
from hub.bootstrap import Hub
from hub.cli import main
from ingest.files import FileUnreadable, publish_file
from ingest.quarantine import decode_entry, entries
from tests.cli_keys import admin_args
from tests.service.accounts import open_accounts

T = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12345678",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00.123456Z",
}


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """The shared hub with the accounts these trades name (``trade.account.known``)."""
    open_accounts(hub, ["ACC-1", *(f"ACC-{i}" for i in range(100))])
    return hub


def trades(n: int, start: int = 0) -> list[dict]:
    return [{**T, "trade_id": f"T-{i}"} for i in range(start, start + n)]


def count(hub: Hub, topic: str) -> int:
    """Records stored (not end offsets: transaction markers take offsets too)."""
    return sum(
        sum(1 for _ in hub.log.scan(topic, p)) for p in range(hub.log.topic(topic).partitions)
    )


def test_jsonl_per_record_quarantine_keeps_bytes_exact(hub: Hub, tmp_path: Path) -> None:
    bad_utf8 = b'{"trade_id": "T-x\xff"}'
    bad_rule = json.dumps({**T, "trade_id": "T-neg", "quantity": "-5"}).encode()
    lines = [json.dumps(r).encode() for r in trades(5)] + [bad_utf8, b"{not json", bad_rule]
    f = tmp_path / "t.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = publish_file(hub.ingest, f, "trades", batch_size=3)
    assert (out.result.accepted, out.result.rejected) == (5, 3)
    assert count(hub, "trades") == 5
    got = [decode_entry(hub.ingest, e["offset"]) for e in entries(hub.ingest)]
    assert [g["original"] for g in got] == [bad_utf8, b"{not json", bad_rule]
    assert [g["reason_code"] for g in got] == ["not_utf8", "malformed_json", "rule_failed"]
    assert got[2]["rule_id"] == "trade.quantity.positive" and got[2]["field_path"] == "/quantity"
    # The file is done: publishing it again appends nothing.
    again = publish_file(hub.ingest, f, "trades")
    assert again.already_done and count(hub, "trades") == 5


def _trades_file(tmp_path: Path, fmt: str, n: int) -> Path:
    f = tmp_path / f"t.{fmt}"
    if fmt == "jsonl":
        f.write_text("\n".join(json.dumps(r) for r in trades(n)) + "\n")
    elif fmt == "csv":
        rows = trades(n)
        f.write_text("\n".join([",".join(rows[0]), *(",".join(r.values()) for r in rows)]) + "\n")
    else:
        from core.avro.serde import from_json

        parsed = fastavro.parse_schema(json.loads(schema_text("hub.trading.TradeExecuted")))
        with f.open("wb") as out:
            fastavro.writer(out, parsed, [from_json(r, parsed) for r in trades(n)])
    return f


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "avro"])
@pytest.mark.parametrize("columnar", [True, False])
def test_resume_after_a_crash_midway(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, columnar: bool
) -> None:
    f = _trades_file(tmp_path, fmt, 10)
    real = hub.ingest._commit  # every batch of every path commits here
    calls = []

    def crashing(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real(*a, **kw)

    monkeypatch.setattr(hub.ingest, "_commit", crashing)
    with pytest.raises(RuntimeError):
        publish_file(hub.ingest, f, "trades", batch_size=4, columnar=columnar)
    assert count(hub, "trades") == 8  # two batches committed, the third never ran
    monkeypatch.setattr(hub.ingest, "_commit", real)
    # Batches of 3 on the resume: the committed 8 end inside the third batch, which is cut there.
    out = publish_file(hub.ingest, f, "trades", batch_size=3, columnar=columnar)
    assert out.skipped == 8 and out.records == 2 and out.result.accepted == 2
    assert count(hub, "trades") == 10
    ids = [r["value"]["trade_id"] for r in hub.reader.read("trades", 0, 0, 100)]
    assert sorted(ids) == sorted(f"T-{i}" for i in range(10))  # each once, none skipped


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_when_only_the_done_mark_was_lost(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Every batch committed, the crash hit the closing position-only commit: the restart skips
    the whole file (counted as skipped, none ingested again) and marks it done."""
    f = _trades_file(tmp_path, fmt, 10)
    real = hub.ingest._commit
    calls = []

    def crashing(*a, **kw):
        calls.append(1)
        if len(calls) == 4:  # batches of 4, 4 and 2, then the done mark
            raise RuntimeError("power cut")
        return real(*a, **kw)

    monkeypatch.setattr(hub.ingest, "_commit", crashing)
    with pytest.raises(RuntimeError):
        publish_file(hub.ingest, f, "trades", batch_size=4)
    monkeypatch.setattr(hub.ingest, "_commit", real)
    out = publish_file(hub.ingest, f, "trades", batch_size=3)
    assert (out.skipped, out.records, out.result.accepted) == (10, 0, 0)
    assert count(hub, "trades") == 10
    assert publish_file(hub.ingest, f, "trades").already_done


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_read_ahead_error_comes_after_the_batches_before_it(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """JSON lines and CSV batches are parsed one ahead in a worker thread (``files._ahead``):
    an error parsing the third batch is raised to the caller only after the first two were
    committed, nothing after it is appended, and no worker thread is left behind."""
    import threading

    from ingest import arrowread, files

    monkeypatch.setattr(files, "READ_AHEAD", frozenset({"jsonl", "csv"}))
    f = _trades_file(tmp_path, fmt, 10)
    name = "json_batch" if fmt == "jsonl" else "csv_batch"
    real = getattr(arrowread, name)
    parsed = []

    def failing(rows, *a, **kw):
        parsed.append(len(rows))
        if len(parsed) == 3:
            raise MemoryError("no room for the third batch")
        return real(rows, *a, **kw)

    monkeypatch.setattr(arrowread, name, failing)
    with pytest.raises(MemoryError, match="third batch"):
        publish_file(hub.ingest, f, "trades", batch_size=4)
    assert count(hub, "trades") == 8 and parsed == [4, 4, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("hub-file-read")]
    monkeypatch.setattr(arrowread, name, real)
    out = publish_file(hub.ingest, f, "trades", batch_size=4)  # resumes at the third batch
    assert (out.skipped, out.result.accepted) == (8, 2) and count(hub, "trades") == 10


def test_csv_typed_by_schema_and_bad_rows(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    header = "trade_id,account_id,instrument,side,quantity,price,currency,executed_at,trader_id"
    rows = [
        "T-1,ACC-1,AAPL,BUY,100,1.5,USD,2026-11-25T14:30:00Z,",
        'T-2,ACC-1,"AAPL",SELL,5,2.25,USD,2026-11-25T14:31:00Z,alice',
        "T-3,ACC-1,AAPL,BUY,100",
    ]
    f.write_text("\n".join([header, *rows]) + "\n")
    out = publish_file(hub.ingest, f, "trades")
    assert (out.result.accepted, out.result.rejected) == (2, 1)
    q = decode_entry(hub.ingest, 0)
    assert q["original"] == rows[2].encode() and q["reason_code"] == "malformed_csv"
    wrong = tmp_path / "w.csv"
    wrong.write_text("trade_id,colour\nT-1,red\n")
    with pytest.raises(FileUnreadable, match="colour"):
        publish_file(hub.ingest, wrong, "trades")


def test_csv_row_quarantined_by_a_rule_replays_after_the_fix(hub: Hub, tmp_path: Path) -> None:
    from ingest.quarantine import entries, replay

    f = tmp_path / "t.csv"
    header = "trade_id,account_id,instrument,side,quantity,price,currency,executed_at"
    f.write_text(header + "\nT-9,ACC-1,AAPL,BUY,-100,1.5,USD,2026-11-25T14:30:00Z\n")
    out = publish_file(hub.ingest, f, "trades")
    assert (out.result.accepted, out.result.rejected) == (0, 1)
    (entry,) = entries(hub.ingest)
    assert entry["rule_id"] == "trade.quantity.positive"
    # Still failing: replay quarantines it again (parsed from its CSV bytes, not "malformed").
    again = replay(hub.ingest, [entry["offset"]])["trades"]
    assert again.rejected == 1
    assert entries(hub.ingest)[-1]["reason_code"] == "rule_failed"
    # The operator relaxes the rule; replaying the new entry now appends the row, typed by the
    # schema (the first entry is marked requarantined: replaying it again is refused).
    current = hub.ingest.rules.get("trades-value").as_dict()
    current["rules"] = [r for r in current["rules"] if r["id"] != "trade.quantity.positive"]
    hub.ingest.rules.set("trades-value", current, changed_by="ops", reason="short sales")
    done = replay(hub.ingest, [entries(hub.ingest)[-1]["offset"]])["trades"]
    assert done.accepted == 1
    (rec,) = [r for p in range(3) for r in hub.reader.read("trades", p, 0, 10)]
    assert rec["value"]["quantity"] == "-100.0000" and rec["value"]["price"] == "1.50000000"


def write_parquet(path: Path, rows: list[dict]) -> None:
    from decimal import Decimal

    from core.avro.serde import from_json

    schema = hub_schema = None  # noqa: F841
    table = pa.table(
        {
            "trade_id": [r["trade_id"] for r in rows],
            "account_id": [r["account_id"] for r in rows],
            "instrument": [r["instrument"] for r in rows],
            "side": [r["side"] for r in rows],
            "quantity": pa.array([Decimal(r["quantity"]) for r in rows], pa.decimal128(18, 4)),
            "price": pa.array([Decimal(r["price"]) for r in rows], pa.decimal128(18, 8)),
            "currency": [r["currency"] for r in rows],
            "executed_at": pa.array(
                [
                    from_json(r["executed_at"], {"type": "long", "logicalType": "timestamp-micros"})
                    for r in rows
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    pq.write_table(table, path)


def test_parquet_streams_and_truncated_is_unreadable(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    rows = [*trades(50), {**T, "trade_id": "T-bad", "price": "-1"}]
    write_parquet(f, rows)
    out = publish_file(hub.ingest, f, "trades", batch_size=16)
    assert (out.result.accepted, out.result.rejected) == (50, 1)
    first = hub.reader.read("trades", 0, 0, 1) or hub.reader.read("trades", 1, 0, 1)
    assert first[0]["value"]["currency"] == "USD"
    q = decode_entry(hub.ingest, 0)
    assert json.loads(q["original"])["trade_id"] == "T-bad"
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(FileUnreadable, match="truncated"):
        publish_file(hub.ingest, cut, "trades")


def test_avro_ocf_registered_and_unregistered(hub: Hub, tmp_path: Path) -> None:
    schema = json.loads(schema_text("hub.trading.TradeExecuted"))
    from core.avro.serde import from_json

    parsed = fastavro.parse_schema(schema)
    datums = [from_json(r, parsed) for r in trades(20)]
    f = tmp_path / "t.avro"
    with f.open("wb") as out:
        fastavro.writer(out, parsed, datums)
    res = publish_file(hub.ingest, f, "trades", batch_size=7)
    assert res.result.accepted == 20 and count(hub, "trades") == 20
    other = {
        **schema,
        "fields": [*schema["fields"], {"name": "extra", "type": "string", "default": ""}],
    }
    g = tmp_path / "u.avro"
    with g.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(other), [{**d, "extra": "x"} for d in datums])
    with pytest.raises(FileUnreadable, match="not registered"):
        publish_file(hub.ingest, g, "trades")


def test_record_over_the_size_limit_is_quarantined_truncated(tmp_path: Path) -> None:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", max_record_bytes=2048))
    try:
        open_accounts(h, ["ACC-1"])
        big = json.dumps({**T, "trade_id": "X" * 5000}).encode()
        f = tmp_path / "big.jsonl"
        f.write_bytes(json.dumps(T).encode() + b"\n" + big + b"\n")
        out = publish_file(h.ingest, f, "trades")
        assert (out.result.accepted, out.result.rejected) == (1, 1)
        q = decode_entry(h.ingest, 0)
        assert q["reason_code"] == "payload_too_large" and q["truncated"]
        assert q["original"] == big[:2048] and q["original_size"] == len(big)
    finally:
        h.close()


def test_cli_publish_and_watch(tmp_path: Path) -> None:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    open_accounts(h, ["ACC-1"])
    h.close()
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in trades(3)) + "\n")
    r = CliRunner().invoke(main, [*admin_args(data), "publish", str(f), "-t", "trades"])
    assert r.exit_code == 0, r.output
    assert "accepted=3 rejected=0 duplicates=0" in r.stdout
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    r = CliRunner().invoke(main, [*admin_args(data), "publish", str(bad), "-t", "trades"])
    assert r.exit_code == 1 and "file_unreadable" in r.stderr
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({**T, "trade_id": "W-1"}) + "\n")
    (folder / "b.parquet").write_bytes(b"nope")
    (folder / "c.jsonl").write_bytes(f.read_bytes())  # same content as t.jsonl: already done
    r = CliRunner().invoke(
        main, [*admin_args(data), "watch", str(folder), "-t", "trades", "--once", "--settle", "0"]
    )
    assert r.exit_code == 0, r.output
    assert (folder / "done" / "a.jsonl").exists() and (folder / "failed" / "b.parquet").exists()
    assert "c.jsonl: already ingested" in r.stdout
