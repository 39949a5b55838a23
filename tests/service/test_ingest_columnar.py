"""The columnar path for Parquet gives exactly what the per-record path gives (differential).

The same file goes through ``publish_file(columnar=False)`` (one ``RawRecord`` per row) on one
hub and through the columnar path on another: accepted records (value bytes, keys, partitions,
offsets, headers except the per-event id and receipt time), quarantine entries (reason, rule id,
field path, original), counts, duplicate indexes and source positions must be identical.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.avro import serde
from core.pii import UNATTRIBUTED, encrypts
from domain.quality import compile_rules, evaluate, parse_rule_set
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.columnar import re2_pattern
from ingest.files import publish_file
from ingest.quarantine import decode_entry
from tests.service.accounts import open_accounts

VOLATILE = {"ce_id", "ce_correlationid", "ce_time"}
RECEIPT = re.compile(r"at receipt \([^)]*\)")
NOW = datetime.now(UTC)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Hub, Hub]]:
    a = bootstrap(load_settings(environ={}, data_dir=tmp_path / "a"))
    b = bootstrap(load_settings(environ={}, data_dir=tmp_path / "b"))
    for h in (a, b):  # the accounts the trades name (trade.account.known)
        open_accounts(h, ["A", "ACC-1", *(f"ACC-{i}" for i in range(100))])
    yield a, b
    a.close()
    b.close()


def stored(h: Hub, topic: str) -> list[tuple[Any, ...]]:
    out = []
    for p, end in sorted(h.log.end_offsets(topic).items()):
        for r in h.log.read(topic, p, 0, end + 1):
            headers = tuple((k, v) for k, v in r.headers if k not in VOLATILE)
            ids = dict(r.headers)
            assert ids["ce_id"] == ids["ce_correlationid"]
            value: Any = r.value
            if value is not None and encrypts(h.registry.parsed(serde.split_wire(value)[0]).text):
                value = h.reader.decode(r)["value"]  # fresh nonce per PII value: compare plaintext
            out.append((r.partition, r.offset, r.key, value, headers))
    return out


def quarantined(h: Hub) -> list[tuple[int, int, dict[str, Any]]]:
    out = []
    for p, end in sorted(h.log.end_offsets("hub.quarantine").items()):
        for r in h.log.read("hub.quarantine", p, 0, end + 1):
            assert r.value is not None
            e = decode_entry(h.ingest, r.offset)  # unseals originals kept under a subject's key
            e.pop("offset")
            e.pop("event_id")
            e.pop("received_at")
            if e.get("sealed_for", "").startswith(UNATTRIBUTED):
                # a record naming no data subject is sealed under a fresh subject per entry
                e["sealed_for"] = UNATTRIBUTED + "<entry id>"
            out.append((p, r.offset, e))
    return out


def positions(h: Hub) -> list[bytes | None]:
    return [
        r.value[5:] if r.value else None for r in h.log.read("hub.source-positions", 0, 0, 10**6)
    ]


def receipt_free(value: Any) -> Any:
    """Reasons name the receipt time, which differs between the two runs."""
    if isinstance(value, dict):
        return {k: receipt_free(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [receipt_free(v) for v in value]
    if isinstance(value, str):
        return RECEIPT.sub("at receipt (now)", value)
    return value


def differential(
    two: tuple[Hub, Hub],
    path: Path,
    topic: str,
    batch_size: int,
    event_type: str | None = None,
) -> tuple[Any, ...]:
    a, b = two
    slow: list[int] = []
    real = b.ingest.accept_one

    def counting(*args: Any, **kwargs: Any) -> Any:
        slow.append(1)
        return real(*args, **kwargs)

    b.ingest.accept_one = counting  # type: ignore[method-assign]
    ra = publish_file(
        a.ingest, path, topic, batch_size=batch_size, event_type=event_type, columnar=False
    )
    rb = publish_file(b.ingest, path, topic, batch_size=batch_size, event_type=event_type)
    assert receipt_free(ra.result.as_dict()) == receipt_free(rb.result.as_dict())
    assert (ra.records, ra.skipped) == (rb.records, rb.skipped)
    assert stored(a, topic) == stored(b, topic)
    assert receipt_free(quarantined(a)) == receipt_free(quarantined(b))
    pa_, pb_ = positions(a), positions(b)
    assert len(pa_) == len(pb_)
    ROW_BY_ROW.append(len(slow))
    return ra.result.accepted, ra.result.rejected, ra.result.duplicates


ROW_BY_ROW: list[int] = []  # rows the columnar run sent through the per-record path


TRADE_SCHEMA = pa.schema(
    [
        ("trade_id", pa.string()),
        ("account_id", pa.string()),
        ("instrument", pa.string()),
        ("side", pa.string()),
        ("quantity", pa.decimal128(24, 4)),
        ("price", pa.decimal128(18, 8)),
        ("currency", pa.string()),
        ("executed_at", pa.timestamp("us", tz="UTC")),
        ("trader_id", pa.string()),
    ]
)


def trade_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    instruments = ["AAPL", "BRK.B", "aapl", "TOOLONGSYMBOL1", "É", "AA PL", "X\n", "", None]
    out = []
    for i in range(n):
        r: dict[str, Any] = {
            "trade_id": f"T-{rnd.randrange(n)}" if rnd.random() < 0.2 else f"T-{i}",
            "account_id": f"ACC-{rnd.randrange(50)}",
            "instrument": "AAPL",
            "side": "BUY",
            "quantity": Decimal(rnd.randrange(1, 10_000)).scaleb(-2),
            "price": Decimal(rnd.randrange(1, 10**12)).scaleb(-8),
            "currency": "USD",
            "executed_at": NOW - timedelta(seconds=rnd.randrange(10**6)),
            "trader_id": rnd.choice([None, "alice", "bob", "é"]),
        }
        roll = rnd.random()
        if roll < 0.04:
            r["instrument"] = rnd.choice(instruments)
        elif roll < 0.07:
            r["side"] = rnd.choice(["SELL", "UNKNOWN", "HOLD", None])
        elif roll < 0.10:
            r["quantity"] = rnd.choice(
                [Decimal(0), Decimal("-0.0001"), Decimal("0.0001"), Decimal(10) ** 19, None]
            )
        elif roll < 0.13:
            r["price"] = rnd.choice(
                [Decimal(10_000_000), Decimal("10000000.00000001"), Decimal("-1"), Decimal(0)]
            )
        elif roll < 0.15:
            r["currency"] = rnd.choice(["EUR", "XXX", "usd", None])
        elif roll < 0.18:
            r["executed_at"] = NOW + rnd.choice(
                [timedelta(hours=2), timedelta(minutes=59), timedelta(days=-400)]
            )
        elif roll < 0.20:
            r[rnd.choice(["trade_id", "account_id"])] = rnd.choice(["", None])
        out.append(r)
    return out


def test_trades_columnar_equals_per_record(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(trade_rows(600, 1), schema=TRADE_SCHEMA), f)
    accepted, rejected, duplicates = differential(two, f, "trades", batch_size=64)
    assert accepted > 300 and rejected > 30 and duplicates > 30  # every path was exercised
    # only rows that fail (or that the masks cannot decide) went row by row
    assert rejected <= ROW_BY_ROW[-1] < rejected + 60


def test_trades_columnar_equals_per_record_second_seed(
    two: tuple[Hub, Hub], tmp_path: Path
) -> None:
    f = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(trade_rows(400, 2), schema=TRADE_SCHEMA), f)
    differential(two, f, "trades", batch_size=1000)


def test_clean_new_distinct_batches_equal_per_record(
    two: tuple[Hub, Hub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches where every row is valid, keyed, distinct and new take the column-wise dedupe
    (``KeyWindow.isdisjoint``); batches with an in-batch duplicate, a row seen in an earlier
    batch or a rejected row take the row loop. Both give what the per-record path gives."""
    from ingest.dedupe import KeyWindow

    def clean(start: int, n: int) -> list[dict[str, Any]]:
        return [
            {
                "trade_id": f"T-{i}",
                "account_id": f"ACC-{i % 50}",
                "instrument": "AAPL",
                "side": "BUY",
                "quantity": Decimal(i % 97 + 1),
                "price": Decimal("12.5"),
                "currency": "USD",
                "executed_at": NOW - timedelta(seconds=i),
                "trader_id": None,
            }
            for i in range(start, start + n)
        ]

    with_dup = clean(200, 50)
    with_dup[30] = dict(with_dup[3])
    rejected = clean(300, 50)
    rejected[7]["side"] = "HOLD"
    rows = [*clean(0, 50), *with_dup, *clean(10, 50), *rejected, *clean(400, 50)]
    fast = []
    real = KeyWindow.isdisjoint

    def counting(self: KeyWindow, keys: Any) -> bool:
        fast.append(real(self, keys))
        return fast[-1]

    monkeypatch.setattr(KeyWindow, "isdisjoint", counting)
    f = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRADE_SCHEMA), f)
    accepted, rejected_n, duplicates = differential(two, f, "trades", batch_size=50)
    assert (accepted, rejected_n, duplicates) == (50 + 49 + 10 + 49 + 50, 1, 1 + 40)
    assert fast.count(True) == 2  # the first and the last batch: all new and distinct


def test_quotes_compare_range_and_freshness(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    rnd = random.Random(3)
    rows = []
    for i in range(300):
        bid = Decimal(rnd.randrange(-5, 1000)).scaleb(-2)
        rows.append(
            {
                "instrument": rnd.choice(["AAPL", "MSFT", "", None]) if i % 17 == 0 else "AAPL",
                "venue": rnd.choice(["XNAS", "XNYS"]),
                "bid": bid,
                "ask": bid + Decimal(rnd.randrange(-3, 50)).scaleb(-3),
                "bid_size": Decimal(rnd.randrange(-2, 100)),
                "ask_size": Decimal(rnd.randrange(0, 100)),
                "currency": rnd.choice(["USD", "EUR", "XXX"]),
                "quoted_at": NOW + timedelta(minutes=rnd.choice([-5, 30, 61, 120])),
            }
        )
    schema = pa.schema(
        [
            ("instrument", pa.string()),
            ("venue", pa.string()),
            ("bid", pa.decimal128(18, 2)),  # scale 2 < the schema's 8: rescaled exactly
            ("ask", pa.decimal128(18, 3)),
            ("bid_size", pa.decimal128(10, 0)),
            ("ask_size", pa.decimal128(10, 0)),
            ("currency", pa.string()),
            ("quoted_at", pa.timestamp("ms", tz="UTC")),
        ]
    )
    f = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), f)
    accepted, rejected, _ = differential(two, f, "quotes", batch_size=50)
    assert accepted and rejected
    assert ROW_BY_ROW[-1] < 300 - accepted // 2


def test_payments_record_strategy_and_timestamp_compare(
    two: tuple[Hub, Hub], tmp_path: Path
) -> None:
    rows = [
        {
            "payment_id": f"P-{i % 90}",
            "account_id": "ACC-1",
            "amount": Decimal(i - 5).scaleb(-1),
            "currency": "EUR",
            "initiated_at": NOW - timedelta(hours=1),
            "settled_at": NOW - timedelta(hours=1) + timedelta(seconds=(i % 5) - 2),
        }
        for i in range(120)
    ]
    schema = pa.schema(
        [
            ("payment_id", pa.string()),
            ("account_id", pa.string()),
            ("amount", pa.decimal128(18, 2)),
            ("currency", pa.string()),
            ("initiated_at", pa.timestamp("us", tz="UTC")),
            ("settled_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    f = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), f)
    accepted, rejected, duplicates = differential(
        two, f, "payments", batch_size=32, event_type="hub.payments.PaymentSettled"
    )
    assert accepted and rejected and duplicates
    assert ROW_BY_ROW[-1] == rejected
    # without an event type on a multi-type topic every row is rejected, the same on both paths
    g = tmp_path / "p2.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:5], schema=schema), g)
    assert differential(two, g, "payments", batch_size=32) == (0, 5, 0)


def test_accounts_regex_with_whitespace_class_and_dates(
    two: tuple[Hub, Hub], tmp_path: Path
) -> None:
    emails = [
        "a@b.co",
        "a b@c.de",
        "a\u00a0b@c.de",
        "a\x0bb@c.de",
        "x@y.z",
        "é@x.fr",
        "a@b.CO",
        "a@@b.co",
        "",
        "a@b.co\n",
    ]
    rows = [
        {
            "account_id": f"ACC-{i}",
            "customer_name": "N",
            "email": emails[i % len(emails)],
            "date_of_birth": None if i % 3 else date(1980, 1, 1) + timedelta(days=i),
            "country": ["GB", "gb", "GBR", "DE", "\u00c9S"][i % 5],
            "kyc_level": ["BASIC", "NONE", "WEIRD"][i % 3],
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": NOW,
        }
        for i in range(80)
    ]
    schema = pa.schema(
        [
            ("account_id", pa.string()),
            ("customer_name", pa.string()),
            ("email", pa.string()),
            ("date_of_birth", pa.date32()),
            ("country", pa.string()),
            ("kyc_level", pa.string()),
            ("risk_rating", pa.string()),
            ("base_currency", pa.string()),
            ("opened_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    f = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), f)
    accepted, rejected, _ = differential(
        two, f, "accounts", batch_size=25, event_type="hub.accounts.AccountOpened"
    )
    assert accepted and rejected
    # AccountOpened holds PII, encrypted per data subject record by record: the columnar path
    # hands every row to the row path (the RE2 translation itself is tested by re2_pattern's
    # tests), and both runs still agree row for row.
    assert ROW_BY_ROW[-1] == len(rows)


def _float_price_file(tmp_path: Path, prices: list[Any], name: str) -> Path:
    """Trades as pandas writes them by default: price and quantity as float64 / int64."""
    rows = [
        {
            "trade_id": f"T-{i}",
            "account_id": "A",
            "instrument": "AAPL",
            "side": "BUY",
            "quantity": 100 + i,
            "price": p,
            "currency": "USD",
            "executed_at": NOW,
        }
        for i, p in enumerate(prices)
    ]
    types = {"quantity": pa.int64(), "price": pa.float64()}
    schema = pa.schema([(k, types.get(k) or TRADE_SCHEMA.field(k).type) for k in rows[0]])
    f = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), f)
    return f


def test_float64_prices_convert_exactly_column_wise(two: tuple[Hub, Hub], tmp_path: Path) -> None:
    # (issue 11.1) pandas' default float64 prices were refused row by row ("a bytes-like object
    # is required, not 'float'"); they convert exactly, like the same values as CSV text.
    prices = [101.25, 0.1, 99.99, 1e-8, None, 123456.12345678]
    f = _float_price_file(tmp_path, [1.5 if p is None else p for p in prices], "f.parquet")
    ROW_BY_ROW.clear()
    assert differential(two, f, "trades", batch_size=4) == (6, 0, 0)
    assert ROW_BY_ROW == [0]  # every row encoded column-wise
    a, _ = two
    got = {
        (Decimal(v["price"]), Decimal(v["quantity"]))
        for p in range(3)
        for v in (a.reader.decode(r)["value"] for r in a.log.read("trades", p, 0, 100))
    }
    assert {(Decimal("101.25"), Decimal(100)), (Decimal("1E-8"), Decimal(103))} <= got


def test_inexact_floats_are_quarantined_with_a_clear_reason(
    two: tuple[Hub, Hub], tmp_path: Path
) -> None:
    prices = [101.25, 101.123456789, float("nan"), float("inf"), 1e12]
    f = _float_price_file(tmp_path, prices, "g.parquet")
    assert differential(two, f, "trades", batch_size=10) == (1, 4, 0)
    reasons = [e["reason"] for _, _, e in quarantined(two[0])]
    assert reasons[0] == (
        "/price: 101.123456789 has more than 8 decimal places (decimal(18,8)); round it before "
        "publishing."
    )
    assert "nan is not a finite number" in reasons[1]
    assert "inf is not a finite number" in reasons[2]
    assert "more than 18 significant digits" in reasons[3]


def test_compiled_rules_equal_evaluate() -> None:
    rs = parse_rule_set(
        {
            "subject": "s",
            "rules": [
                {"id": "req", "kind": "required", "fields": ["a", "b/c"]},
                {
                    "id": "rng",
                    "kind": "range",
                    "field": "q",
                    "min": "0",
                    "min_exclusive": True,
                    "max": 10,
                },
                {"id": "re", "kind": "regex", "field": "s", "pattern": "^[A-Z]{2}$"},
                {"id": "en", "kind": "enum", "field": "e", "values": ["X", "Y", 1]},
                {"id": "cmp", "kind": "compare", "left": "t1", "op": "<", "right": "t2"},
                {
                    "id": "fr",
                    "kind": "freshness",
                    "field": "t1",
                    "max_age": "1h",
                    "max_future": "5m",
                },
                {"id": "u", "kind": "unique", "fields": ["a"]},
            ],
        }
    )
    run = compile_rules(rs)
    rnd = random.Random(5)
    pool: list[Any] = [
        None,
        "",
        "GB",
        "gb",
        0,
        1,
        True,
        1.5,
        Decimal("10"),
        Decimal("0"),
        "x",
        NOW,
        NOW - timedelta(hours=2),
        datetime(2026, 1, 1),
        {"c": "x"},
        {},
    ]
    for _ in range(3000):
        rec = {
            k: rnd.choice(pool) for k in ("a", "b", "q", "s", "e", "t1", "t2") if rnd.random() < 0.8
        }
        assert run(rec, NOW) == evaluate(rs, rec, NOW)
    assert run("not a mapping", NOW) == evaluate(rs, "not a mapping", NOW)


@pytest.mark.parametrize(
    "pattern",
    [
        "^[A-Z0-9.]{1,12}$",
        "^[A-Z]{2}$",
        "^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$",
        "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$",
        "a|b$",
        "(ab)+c?",
    ],
)
def test_re2_translation_agrees_with_python(pattern: str) -> None:
    import pyarrow.compute as pc

    translated = re2_pattern(pattern)
    assert translated is not None
    samples = [
        "",
        "A",
        "AB",
        "ab",
        "AB\n",
        "a@b.co",
        "a b@c.de",
        "a\u00a0b@c.de",
        "a\x1fb@c.de",
        "a\u3000b@c.de",
        "a\u2028b@c.de",
        "ü@x.de",
        "GB82WEST12345698765432",
        "abab",
        "ababc",
        "b",
        "a",
        "b\n",
        "BRK.B",
        "x" * 40,
    ]
    got = pc.match_substring_regex(pa.array(samples), pattern=translated).to_pylist()
    assert got == [re.fullmatch(pattern, s) is not None for s in samples]


def test_re2_refuses_what_it_cannot_translate() -> None:
    for p in ["\\d+", "\\w", "(?i)abc", "a$b", "[[:alpha:]]", "é", "a{,3}", "a*+", "(?=a)"]:
        assert re2_pattern(p) is None, p
