"""JSON lines read by Arrow's JSON reader, and Avro container rows as Arrow columns, give exactly
what the per-record path gives.

The same JSONL file goes through ``publish_file(columnar=False)`` (``json.loads`` +
``serde.from_json`` per line, the reference) on one hub and through Arrow's reader and the
columnar path on another (``differential`` of ``test_ingest_columnar``): stored events byte for
byte (but ids and receipt time), quarantine entries with each bad line's original bytes and
reason, counts, duplicate indexes and positions. The files mix good lines with every kind of bad
or doubtful line Arrow and Python's ``json`` could read differently.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
from tests.service.accounts import open_accounts
from tests.service.test_ingest_columnar import (
    ROW_BY_ROW,
    differential,
    positions,
    quarantined,
    stored,
)

NOW = datetime.now(UTC)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Hub, Hub]]:
    a = bootstrap(load_settings(environ={}, data_dir=tmp_path / "a"))
    b = bootstrap(load_settings(environ={}, data_dir=tmp_path / "b"))
    for h in (a, b):  # the accounts the trades name (trade.account.known)
        open_accounts(h, ["A", *(f"ACC-{i}" for i in range(60))])
    yield a, b
    a.close()
    b.close()


# Lines that must each go row by row (or be refused by Arrow) and match the reference.
ODD: list[bytes] = [
    b"not json",
    b"[1, 2]",
    b"5",
    b'"a string"',
    b"null",
    b"{",
    b'{"trade_id": "T-x"} {"trade_id": "T-y"}',  # two documents on one line
    b'{"trade_id": "T-d", "trade_id": "T-e"}',  # duplicate key (Python keeps the last)
    b'{"trade_id": "\\ud800"}',  # lone surrogate
    b'{"trade_id": "caf\xc3"}',  # not UTF-8
    b'{"trade_id": "tab\there"}',  # raw control character in a string
    b"\xef\xbb\xbf" + b'{"trade_id": "T-bom"}',  # a byte-order mark
    b'{"trade_id": 5}',  # a number for a string
    b'{"unknown_field": 1}',
    b'{"quantity": NaN}',
    b'{"quantity": 1e400}',
]


def trade(i: int, rnd: random.Random) -> dict[str, Any]:
    r: dict[str, Any] = {
        "trade_id": f"T-{rnd.randrange(400)}" if rnd.random() < 0.15 else f"T-{i}",
        "account_id": f"ACC-{rnd.randrange(60)}",
        "instrument": rnd.choice(["AAPL", "BRK.B", "MSFT"]),
        "side": rnd.choice(["BUY", "SELL"]),
        "quantity": rnd.choice(["100", 100, 12.5, "0.0001", 7]),
        "price": rnd.choice(["12.5", 101.25, "99.12345678", 3]),
        "currency": "USD",
        "executed_at": (NOW - timedelta(seconds=rnd.randrange(10**5))).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        ),
    }
    if rnd.random() < 0.5:
        r["trader_id"] = rnd.choice([None, "alice", "é", "日本", "a\\b", "\U0001f600"])
    if rnd.random() < 0.3:
        r["venue"] = rnd.choice(["XNAS", "XLON"])
    if rnd.random() < 0.2:
        r["fees"] = rnd.choice(["0.5", 1, "0.001"])
    return r


def spoil(r: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    """One doubtful or wrong value, as a JSON file from elsewhere could hold it."""
    field, value = rnd.choice(
        [
            ("side", "HOLD"),
            ("side", None),
            ("currency", "usd"),
            ("quantity", "1e2"),
            ("quantity", "+5"),
            ("quantity", ".5"),
            ("quantity", "1_000"),
            ("quantity", " 5"),
            ("quantity", "1.00001"),
            ("quantity", 1.50000),
            ("quantity", True),
            ("quantity", -1),
            ("quantity", 10**30),
            ("price", "NaN"),
            ("price", None),
            ("price", "abc"),
            ("executed_at", "2026-02-30T10:00:00Z"),
            ("executed_at", "2026-11-25 14:30:00Z"),
            ("executed_at", "2026-11-25T14:30:00"),
            ("executed_at", "2026-11-25T14:30:00+02:00"),
            ("executed_at", "2026-11-25T14:30:00.5-01:30"),
            ("executed_at", 1_795_600_000_000_000),
            ("executed_at", (NOW + timedelta(hours=3)).isoformat()),
            ("trade_id", ""),
            ("trade_id", None),
            ("account_id", "ACC-UNKNOWN"),
            ("venue", None),
            ("fees", None),
            ("trader_id", 7),
            ("instrument", {"nested": 1}),
            ("instrument", ["AAPL"]),
        ]
    )
    out = dict(r)
    if value is None and rnd.random() < 0.5:
        out.pop(field, None)  # missing rather than null
    else:
        out[field] = value
    return out


def jsonl(path: Path, n: int, seed: int, bad: float = 0.15) -> Path:
    rnd = random.Random(seed)
    lines: list[bytes] = []
    if seed % 2:
        lines.append(b"\xef\xbb\xbf" + json.dumps(trade(0, rnd)).encode())  # BOM on line 1
    for i in range(1, n):
        roll = rnd.random()
        if roll < 0.03:
            lines.append(rnd.choice([b"", b"   ", b"\t"]))  # blank lines are skipped
        elif roll < 0.03 + bad / 3:
            lines.append(rnd.choice(ODD))
        elif roll < 0.03 + bad:
            lines.append(
                json.dumps(spoil(trade(i, rnd), rnd), ensure_ascii=rnd.random() < 0.5).encode()
            )
        else:
            r = trade(i, rnd)
            text = json.dumps(
                r,
                ensure_ascii=rnd.random() < 0.5,
                separators=rnd.choice([(",", ":"), (", ", ": ")]),
            )
            lines.append(text.encode())
    ends = [b"\n", b"\r\n"]
    path.write_bytes(b"".join(line + rnd.choice(ends) for line in lines))
    return path


def test_jsonl_arrow_equals_per_record(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    f = jsonl(tmp_path / "t.jsonl", 700, seed=1)
    accepted, rejected, duplicates = differential(two, f, "trades", batch_size=128)
    assert accepted > 300 and rejected > 60 and duplicates > 20  # every outcome was exercised
    # the good lines went column-wise: only doubtful or failing ones went row by row
    assert ROW_BY_ROW[-1] < rejected + duplicates + 120


def test_jsonl_all_good_lines_go_column_wise(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    f = jsonl(tmp_path / "t.jsonl", 300, seed=4, bad=0.0)
    accepted, _, duplicates = differential(two, f, "trades", batch_size=100)
    assert accepted > 200
    assert ROW_BY_ROW[-1] <= duplicates + 30  # refs to unknown accounts, future timestamps


def test_bad_line_keeps_its_original_bytes_and_reason(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    a, _ = two
    good = json.dumps(trade(1, random.Random(0))).encode()
    f = tmp_path / "t.jsonl"
    f.write_bytes(good + b"\n" + b'{"trade_id": 5}\n' + b"caf\xc3\n")
    res = publish_file(a.ingest, f, "trades")
    assert (res.result.accepted, res.result.rejected) == (1, 2)
    entries = [e for _, _, e in quarantined(a)]
    assert [e["original"] for e in entries] == [b'{"trade_id": 5}', b"caf\xc3"]
    assert entries[1]["reason_code"] == "not_utf8" and "Line 3" in entries[1]["reason"]


def avro_file(h: Hub, path: Path, n: int, seed: int) -> Path:
    """Trades as an Avro container file written with the registered schema; some rows fail
    rules (unknown account, negative quantity, empty id, a future time) or repeat an id."""
    import fastavro

    from core.avro import serde

    rnd = random.Random(seed)
    schema = h.registry.parsed(h.registry.get_version("trades-value", "latest").id)
    datums = []
    for i in range(n):
        r = trade(i, rnd)
        r.pop("fees", None)
        roll = rnd.random()
        if roll < 0.05:
            r["account_id"] = "ACC-UNKNOWN"
        elif roll < 0.10:
            r["quantity"] = "-1"
        elif roll < 0.13:
            r["trade_id"] = ""
        elif roll < 0.16:
            r["executed_at"] = (NOW + timedelta(hours=3)).isoformat()
        datums.append(serde.from_json(r, schema.parsed))
    with path.open("wb") as fo:
        fastavro.writer(fo, fastavro.parse_schema(json.loads(schema.text)), datums)
    return path


def test_avro_container_column_wise_equals_per_record(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    f = avro_file(two[0], tmp_path / "t.avro", 600, seed=7)
    accepted, rejected, duplicates = differential(two, f, "trades", batch_size=128)
    assert accepted > 300 and rejected > 40 and duplicates > 20
    assert ROW_BY_ROW[-1] < rejected + 60  # good rows went column-wise


CSV_COLUMNS = [
    "trade_id",
    "account_id",
    "instrument",
    "side",
    "quantity",
    "price",
    "currency",
    "executed_at",
    "trader_id",
    "venue",
]
CSV_ODD = [
    'T-q1,ACC-1,"AAPL",BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS',  # quoted
    'T-q2,ACC-1,"A,B",BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS',  # a comma inside quotes
    'T-q3,ACC-1,"multi\nline",BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS',  # a newline in quotes
    "T-short,ACC-1,AAPL,BUY,1",
    "T-long,ACC-1,AAPL,BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS,extra",
    "T-nul,ACC-1,AA\x00PL,BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS",
    "T-cr,ACC-1,AA\rPL,BUY,1,2,USD,2026-11-25T14:30:00Z,,XNAS",
]


def csv_value(field: str, rnd: random.Random, r: dict[str, Any]) -> str:
    if rnd.random() < 0.08:  # doubtful or wrong text
        return rnd.choice(
            {
                "quantity": ["1e2", "+5", ".5", "5.", " 5", "1_000", "", "-1", "1.00001", "NaN"],
                "price": ["12.123456789", "-0", "007.5", "", "abc"],
                "executed_at": [
                    "2026-02-30T10:00:00Z",
                    "2026-11-25 14:30:00Z",
                    "2026-11-25T14:30:00",
                    "2026-11-25T14:30:00.5+02:00",
                    "1795600000000000",
                    "",
                ],
                "side": ["HOLD", "buy", ""],
                "currency": ["usd", "", "XXX"],
                "trader_id": ["", "é", "日本"],
                "venue": ["", "XLON"],
                "trade_id": [""],
                "account_id": ["ACC-UNKNOWN", ""],
                "instrument": ["", "É"],
            }[field]
        )
    v = r.get(field)
    return "" if v is None else str(v)


def csv_file(path: Path, n: int, seed: int) -> Path:
    rnd = random.Random(seed)
    cols = CSV_COLUMNS[:]
    rnd.shuffle(cols)
    lines = [",".join(cols)]
    for i in range(n):
        roll = rnd.random()
        if roll < 0.03:
            lines.append(rnd.choice(["", "   "]))
        elif roll < 0.08:
            lines.append(rnd.choice(CSV_ODD))
        else:
            r = trade(i, rnd)
            lines.append(",".join(csv_value(c, rnd, r) for c in cols))
    bom = "\ufeff" if seed % 2 else ""
    path.write_bytes((bom + "\n".join(lines) + "\n").encode())
    return path


def test_csv_arrow_equals_per_record(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    f = csv_file(tmp_path / "t.csv", 700, seed=11)
    accepted, rejected, duplicates = differential(two, f, "trades", batch_size=128)
    assert accepted > 300 and rejected > 60 and duplicates > 10
    assert ROW_BY_ROW[-1] < rejected + duplicates + 120  # good rows went column-wise


@pytest.mark.parametrize("damage", ["sync", "utf8"])
def test_corrupt_avro_blocks_commit_what_the_reference_commits(
    two: tuple[Hub, Hub], tmp_path: Path, damage: str
) -> None:
    """A container file with a broken sync marker after its third block, or a string that is
    not UTF-8 inside it: the native block path (``ingest.avrofile``) refuses the file at the
    same record as fastavro's record reader (the per-record path), having committed the same
    batches and positions."""
    import fastavro

    from core.avro import serde
    from ingest.files import FileUnreadable

    a, b = two
    schema = a.registry.parsed(a.registry.get_version("trades-value", "latest").id)
    rnd = random.Random(3)
    rows = []
    for i in range(400):
        r = trade(i, rnd)
        r.pop("fees", None)
        r["trade_id"] = f"T-{i}"
        rows.append(serde.from_json(r, schema.parsed))
    buf = io.BytesIO()
    parsed = fastavro.parse_schema(json.loads(schema.text))
    fastavro.writer(buf, parsed, rows, sync_interval=4_000)
    data = bytearray(buf.getvalue())
    buf.seek(0)
    blocks = list(fastavro.block_reader(buf))
    assert len(blocks) > 4
    third = blocks[2]
    if damage == "sync":
        end = third.offset + third.size
        data[end - 1] ^= 0xFF
    else:  # the first trade id of the block: 'T' becomes an invalid UTF-8 byte
        at = data.index(b"T-%d" % sum(b.num_records for b in blocks[:2]), third.offset)
        data[at] = 0xC3
        data[at + 1] = 0x28
    path = tmp_path / "bad.avro"
    path.write_bytes(bytes(data))
    got = []
    for h, columnar in ((a, False), (b, True)):
        with pytest.raises(FileUnreadable, match="is corrupt"):
            publish_file(h.ingest, path, "trades", batch_size=64, columnar=columnar)
        got.append((stored(h, "trades"), len(positions(h))))
    assert got[0] == got[1]
    assert got[0][0]  # the batches before the damage were committed
