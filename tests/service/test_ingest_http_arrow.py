"""Arrow IPC stream bodies of ``POST /v1/ingest/{topic}`` store what the same events in a JSON
body store (differential, through HTTP), and bodies that are not a safe flat stream are refused
whole with a clear 422 before anything is written.

Two hubs: one gets the events as ``{"events": [...]}``, the other as an Arrow IPC stream (one
or several record batches, columns in any order). Same answer counts and rejection reasons, the
same stored records byte for byte (but ids and receipt time) on the topic; the quarantined rows
keep their JSON rendering as the original, with the same reasons as the JSON body's.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.ingest_batch import ARROW_STREAM
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from tests.service.test_ingest_columnar import quarantined, receipt_free, stored

NOW = datetime.now(UTC).replace(microsecond=0)
TYPES = {
    "trade_id": pa.string(),
    "account_id": pa.string(),
    "instrument": pa.string(),
    "venue": pa.string(),
    "side": pa.string(),
    "quantity": pa.decimal128(18, 4),
    "price": pa.decimal128(18, 8),
    "currency": pa.string(),
    "fees": pa.decimal128(18, 2),
    "executed_at": pa.timestamp("us", tz="UTC"),
    "trader_id": pa.string(),
}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[tuple[Hub, TestClient], tuple[Hub, TestClient]]]:
    out = []
    for name in ("json", "arrow"):
        env = {"HUB_PROJECTION_AUTOSTART": "false"}  # two apps: one chDB session per process
        h = bootstrap(load_settings(environ=env, data_dir=tmp_path / name))
        open_accounts(h, [f"ACC-{i}" for i in range(40)])
        token = h.keys.create(["admin"], principal="tester").token
        client = TestClient(create_app(h))
        client.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        client.__enter__()
        out.append((h, client))
    yield out[0], out[1]
    for h, client in out:
        client.__exit__(None, None, None)
        h.close()


def trades(
    n: int, rnd: random.Random, base: int, bad: float, seen: list[str] | None = None
) -> list[dict[str, Any]]:
    """Trades as Python values; some fail a rule (an unknown account, a negative quantity, a
    future time, an unknown side) and some repeat an earlier trade id (duplicates)."""
    rows = []
    seen = [] if seen is None else seen
    for i in range(base, base + n):
        repeat = seen and rnd.random() < 0.1
        seen.append(rnd.choice(seen) if repeat else f"T-{i}")
        r: dict[str, Any] = {
            "trade_id": seen[-1],
            "account_id": f"ACC-{rnd.randrange(40)}",
            "instrument": rnd.choice(["AAPL", "BRK.B", "MSFT"]),
            "venue": rnd.choice(["XNAS", "XLON"]),
            "side": rnd.choice(["BUY", "SELL"]),
            "quantity": Decimal(rnd.choice(["100", "12.5", "0.0001", "7"])),
            "price": Decimal(rnd.choice(["12.5", "101.25", "99.12345678", "3"])),
            "currency": "USD",
            "fees": Decimal(rnd.choice(["0.5", "1", "0.01"])),
            "executed_at": NOW - timedelta(seconds=rnd.randrange(10**5), microseconds=i % 1000),
            "trader_id": rnd.choice([None, "alice", "é", "日本", "a\\b", "\U0001f600"]),
        }
        if rnd.random() < bad:
            field, value = rnd.choice(
                [
                    ("account_id", "ACC-UNKNOWN"),
                    ("quantity", Decimal("-5")),
                    ("executed_at", NOW + timedelta(days=3)),
                    ("side", "SIDEWAYS"),
                    ("instrument", "lower case!"),
                ]
            )
            r[field] = value
        rows.append(r)
    return rows


def json_body(rows: list[dict[str, Any]]) -> bytes:
    def text(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return v

    return json.dumps({"events": [{k: text(v) for k, v in r.items()} for r in rows]}).encode()


def arrow_body(
    rows: list[dict[str, Any]],
    rnd: random.Random | None = None,
    columns: list[str] | None = None,
    **options: Any,
) -> bytes:
    names = list(columns or TYPES)
    if rnd is not None:
        rnd.shuffle(names)
    schema = pa.schema([(k, TYPES[k]) for k in names])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    write = pa.ipc.IpcWriteOptions(**options)
    with pa.ipc.new_stream(sink, schema, options=write) as w:
        chunk = rnd.choice([7, 50, 10_000]) if rnd is not None else 10_000
        for b in table.to_batches(max_chunksize=chunk):
            w.write_batch(b)
    out: bytes = sink.getvalue().to_pybytes()
    return out


def post(client: TestClient, body: bytes, ctype: str, topic: str = "trades") -> Any:
    return client.post(f"/v1/ingest/{topic}", content=body, headers={"content-type": ctype})


def answer(r: Any) -> Any:
    assert r.status_code == 200, r.text
    got = r.json()
    got.pop("ledger")
    return receipt_free(got)


def test_arrow_body_stores_what_the_json_body_stores(two: Any) -> None:
    (a, ca), (b, cb) = two
    rnd = random.Random(15)
    totals = [0, 0, 0]
    seen: list[str] = []
    for k in range(10):
        n, bad = rnd.choice([1, 30, 400]), rnd.choice([0.0, 0.2, 0.4])
        rows = trades(n, rnd, 1000 * k, bad, seen)
        want = answer(post(ca, json_body(rows), "application/json"))
        got = answer(post(cb, arrow_body(rows, rnd), ARROW_STREAM))
        assert got == want
        totals = [
            x + want[y] for x, y in zip(totals, ("accepted", "rejected", "duplicates"), strict=True)
        ]
    assert totals[0] > 500 and totals[1] > 50 and totals[2] > 20, totals  # every outcome
    assert stored(a, "trades") == stored(b, "trades")
    qa, qb = receipt_free(quarantined(a)), receipt_free(quarantined(b))
    assert len(qa) == len(qb) == totals[1]
    for (_, _, ea), (_, _, eb) in zip(qa, qb, strict=True):
        assert (ea["reason"], ea["rule_id"], ea["topic"]) == (
            eb["reason"],
            eb["rule_id"],
            eb["topic"],
        )
        # The Arrow row's original is its JSON rendering: the same record, replayable as JSON.
        original = json.loads(eb["original"])
        assert original["trade_id"] == json.loads(ea["original"])["trade_id"]


def test_missing_column_takes_its_default(two: Any) -> None:
    """A column left out is a field left out of every JSON event: its default (venue XOFF)."""
    (a, ca), (b, cb) = two
    rows = trades(20, random.Random(3), 0, 0.0)
    for r in rows:
        del r["venue"]
    want = answer(post(ca, json_body(rows), "application/json"))
    got = answer(
        post(cb, arrow_body(rows, columns=[c for c in TYPES if c != "venue"]), ARROW_STREAM)
    )
    assert got == want and want["accepted"] > 10 and want["rejected"] == 0
    assert stored(a, "trades") == stored(b, "trades")


def test_unsafe_or_malformed_arrow_bodies_are_refused_whole(two: Any) -> None:
    _, (b, cb) = two
    rows = trades(50, random.Random(4), 0, 0.0)
    good = arrow_body(rows)

    def refused(body: bytes, words: str, topic: str = "trades") -> None:
        r = post(cb, body, ARROW_STREAM, topic)
        assert r.status_code == 422, r.text
        assert r.json()["reason"] == "invalid_arrow" and words in r.json()["message"], r.text

    refused(b"", "is empty")
    refused(b"not arrow at all", "not readable")
    refused(good[: len(good) // 2], "not readable")  # truncated inside a batch
    refused(arrow_body(rows, compression="zstd"), "compressed")
    refused(arrow_body(rows, compression="lz4"), "compressed")
    # A dictionary column: one long value repeated by index would decode far beyond the body.
    dict_rows = pa.table({"trade_id": pa.array(["x" * 1000] * 100).dictionary_encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, dict_rows.schema) as w:
        w.write_table(dict_rows)
    refused(sink.getvalue().to_pybytes(), "type dictionary")
    # A null column or no column at all claims rows without a byte for them.
    for t in (pa.table({"trade_id": pa.nulls(10**6)}), pa.table({})):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        refused(sink.getvalue().to_pybytes(), "null" if t.num_columns else "no columns")
    # Bit-packed columns: 8 rows a byte, more rows than a JSON body of that size could hold.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([("venue", pa.bool_())])) as w:
        w.write_table(pa.table({"venue": pa.array([True] * 200_000)}))
    refused(sink.getvalue().to_pybytes(), "200000 rows in")
    # Columns the schema does not have, nested ones, the same name twice.
    for t, words in [
        (pa.table({"trade_id": ["T-1"], "bogus": [1]}), "'bogus', not field(s)"),
        (pa.table({"trade_id": [["T-1"]]}), "only flat columns"),
        (pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], ["trade_id"] * 2), "twice"),
    ]:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        refused(sink.getvalue().to_pybytes(), words)
    # Invalid UTF-8 in a string column (IPC readers do not check it): the full validation does.
    bad = good.replace(b"T-1", b"T\xff1", 1)
    assert bad != good
    refused(bad, "not readable")
    # An internal topic after a readable body: refused as the JSON body's reference refuses it.
    r = post(cb, good, ARROW_STREAM, "hub.quarantine")
    assert r.status_code in (403, 422) and "internal" in r.text, r.text
    assert stored(b, "trades") == [] and quarantined(b) == []


def test_mutated_arrow_bodies_are_read_or_refused_never_crash() -> None:
    """Bytes flipped, runs overwritten and cuts anywhere in a valid stream: each body is read
    (then a valid batch) or refused with ``invalid_arrow``, never another error or a crash of
    the process (the IPC reader trusts offsets and lengths unless validated)."""
    from core.errors import InvalidInput
    from hub.api.ingest_batch import arrow_batch

    rnd = random.Random(9)
    good = arrow_body(trades(40, rnd, 0, 0.0))
    outcomes = {"read": 0, "refused": 0}
    for k in range(1500):
        body = bytearray(good)
        if k % 3 == 0:
            body = body[: rnd.randrange(len(body))]
        else:
            for _ in range(rnd.randrange(1, 4)):
                at = rnd.randrange(len(body))
                body[at : at + 4] = bytes(rnd.randrange(256) for _ in range(4))[: len(body) - at]
        try:
            rb = arrow_batch(bytes(body))
        except InvalidInput as exc:
            assert exc.code == "invalid_arrow"
            outcomes["refused"] += 1
            continue
        rb.validate(full=True)
        outcomes["read"] += 1
    assert outcomes["read"] > 50 and outcomes["refused"] > 500, outcomes
