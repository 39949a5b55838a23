"""Issue 11, analyst items 9-13: per-currency bars and positions, mark-to-market P&L from quotes,
time travel by event time with SQL at that point, documented view columns, and one
representation per logical type in every store and format."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.ports.views import Target, ViewGrant
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections.catalog import MARK_TO_MARKET_SQL, PAYMENTS, by_name, table_columns
from projections.runner import ProjectionRunner
from projections.types import canonical, render
from tests.cli_keys import admin_args

OPERATOR = Principal("ops", frozenset({"admin"}))  # a service-level caller in tests

pytest.importorskip("chdb")

DAY = "2026-11-24"


def make_hub(data: Path, **kw):
    kw.setdefault("projection_autostart", False)
    return bootstrap(load_settings(environ={}, data_dir=data, **kw))


def us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000


def trade(i, at, price="100", qty="10", side="BUY", currency="USD", account="A1"):
    return OutgoingEvent(
        value={
            "trade_id": f"t{i}",
            "account_id": account,
            "instrument": "XS1",
            "side": side,
            "quantity": qty,
            "price": price,
            "currency": currency,
            "executed_at": f"{DAY}T{at}Z",
        }
    )


def quote(bid, ask, at, currency="USD"):
    return OutgoingEvent(
        value={
            "instrument": "XS1",
            "bid": bid,
            "ask": ask,
            "bid_size": "5",
            "ask_size": "5",
            "currency": currency,
            "quoted_at": f"{DAY}T{at}Z",
        }
    )


def admin_headers(h):
    token = h.keys.create(["admin"], principal="admin-t", tenant="default").token
    return {"Authorization": f"Bearer {token}"}


def test_bars_and_positions_never_blend_currencies(tmp_path):
    """Item 9: one XXX trade at price 1 must not turn the USD hourly bar into an XXX one."""
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish(
            "trades",
            [
                trade(0, "10:00:00", "100"),
                trade(1, "10:10:00", "110"),
                trade(2, "10:20:00", "1", "1", currency="XXX"),
            ],
            producer="t",
            tenant="acme",
        )
        ps = h.projections
        ps.run(["market_bars", "positions"])
        bars = ps.query(
            h.policy,
            OPERATOR,
            "SELECT currency, open, low, close, vwap, events FROM ohlcv_1h ORDER BY currency",
        ).to_pylist()
        assert [b["currency"] for b in bars] == ["USD", "XXX"]
        usd = bars[0]
        assert (usd["open"], usd["low"], usd["close"]) == (D(100), D(100), D(110))
        assert usd["vwap"] == D(105) and usd["events"] == 2
        pos = ps.query(
            h.policy, OPERATOR, "SELECT currency, quantity, avg_cost FROM positions ORDER BY 1"
        ).to_pylist()
        assert [(p["currency"], p["quantity"], p["avg_cost"]) for p in pos] == [
            ("USD", D(20), D(105)),
            ("XXX", D(1), D(1)),
        ]
    finally:
        h.close()


def test_mark_to_market_pnl_against_the_latest_quote(tmp_path):
    """Item 10: latest quote per instrument and currency (by quote time, a late older quote does
    not replace it); unrealised P&L = (mid - average cost) x quantity, longs and shorts."""
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish(
            "trades",
            [
                trade(0, "10:00:00", "100", "10"),
                trade(1, "10:01:00", "110", "10"),  # A1 long 20 @ 105
                trade(2, "10:02:00", "120", "4", side="SELL", account="A2"),  # A2 short 4 @ 120
                trade(3, "10:03:00", "7", "3", currency="EUR", account="A3"),  # no EUR quote
            ],
            producer="t",
            tenant="acme",
        )
        h.publisher.publish(
            "quotes",
            [quote("119", "121", "11:00:00"), quote("99", "101", "10:30:00")],  # 2nd is older
            producer="t",
            tenant="acme",
        )
        ps = h.projections
        ps.run(["positions", "quotes"])
        (q,) = ps.query(h.policy, OPERATOR, "SELECT * FROM latest_quotes").to_pylist()
        assert (q["mid"], q["quotes"]) == (D(120), 2)
        assert q["quoted_at"] == datetime(2026, 11, 24, 11, tzinfo=UTC)
        rows = ps.query(h.policy, OPERATOR, MARK_TO_MARKET_SQL).to_pylist()
        got = {r["account_id"]: (r["mark"], r["unrealised_pnl"]) for r in rows}
        assert got == {"A1": (D(120), D(300)), "A2": (D(120), D(0))}  # A3: no EUR mark
        short = ps.query(
            h.policy,
            OPERATOR,
            MARK_TO_MARKET_SQL.replace("ORDER BY", "WHERE p.account_id = 'A2' ORDER BY"),
        )
        assert short.num_rows == 1
        h.publisher.publish(
            "quotes", [quote("109", "111", "12:00:00")], producer="t", tenant="acme"
        )
        ps.run(["quotes"])
        rows = ps.query(h.policy, OPERATOR, MARK_TO_MARKET_SQL).to_pylist()
        got = {r["account_id"]: r["unrealised_pnl"] for r in rows}
        assert got == {"A1": D(100), "A2": D(40)}  # (110-105)*20 and (110-120)*(-4)
    finally:
        h.close()


def test_time_travel_by_event_time_and_sql_at_that_point(tmp_path):
    """Item 11: the demo day is in the past by log time; event time selects by executed_at."""
    from hub.api.app import create_app

    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish(
            "trades",
            [
                trade(0, "10:00:00", "100"),
                trade(1, "10:30:00", "110"),
                trade(2, "11:30:00", "130"),
            ],
            producer="t",
            tenant="acme",
        )
        ps = h.projections
        noon_ms = us(f"{DAY}T10:45:00Z") // 1000
        by_log = ps.at("positions", time_ms=noon_ms)
        assert by_log["views"]["positions"] == []  # the records were appended after that
        (row,) = ps.at("positions", event_time_us=noon_ms * 1000)["views"]["positions"]
        assert (row["quantity"], row["avg_cost"], row["trades"]) == (D(20), D(105), 2)
        bars = ps.at("market_bars", event_time_us=noon_ms * 1000, table="ohlcv_1m")
        assert sum(r["events"] for r in bars["views"]["ohlcv_1m"]) == 2
        got = ps.at_query(
            h.policy,
            OPERATOR,
            "positions",
            "SELECT quantity, avg_cost FROM positions",
            event_time_us=noon_ms * 1000,
        ).to_pylist()
        assert got == [{"quantity": D(20), "avg_cost": D(105)}]
        client = TestClient(create_app(h))
        headers = admin_headers(h)
        resp = client.get(
            "/v1/projections/positions/at",
            params={"event_time": f"{DAY}T10:45:00Z"},
            headers=headers,
        )
        assert resp.status_code == 200
        (got,) = resp.json()["views"]["positions"]
        assert (got["trades"], got["quantity"]) == (2, "20.0000")
        assert got["last_trade_at"] == f"{DAY}T10:30:00.000000Z"  # ISO-8601, as in queries
        resp = client.post(
            "/v1/projections/positions/at/query",
            json={"sql": "SELECT quantity FROM positions", "event_time": str(noon_ms)},
            headers=headers,
        )
        assert resp.status_code == 200 and resp.json()["rows"] == [{"quantity": "20.0000"}]
        bad = client.get(
            "/v1/projections/positions/at", params={"event_time": "noon"}, headers=headers
        )
        assert bad.status_code == 422 and "noon" in bad.json()["message"]
        both = client.get(
            "/v1/projections/positions/at",
            params={"event_time": "1", "time_ms": 1},
            headers=headers,
        )
        assert both.status_code == 422 and both.json()["reason"] == "invalid_bound"
        other = client.post(
            "/v1/projections/positions/at/query",
            json={"sql": "SELECT * FROM ohlcv_1m", "event_time": str(noon_ms)},
            headers=headers,
        )
        assert other.status_code == 422  # only the replayed projection's views are visible
    finally:
        h.close()


def test_catalog_documents_every_view_column(tmp_path):
    """Item 12: descriptions for every projection, table and column; the AML threshold stated;
    the governance catalog serves the columns."""
    from hub.api.app import create_app

    for store in ("analytics", "transactional"):
        for table, cols in table_columns(store).items():
            assert cols and all(name and kind and doc for name, kind, doc in cols), table
    assert ("amount", "decimal(38, 2) null", "Amount (the settled one once settled).") in (
        table_columns("transactional")["payment_status"]
    )
    h = make_hub(tmp_path / "d")
    try:
        client = TestClient(create_app(h))
        found = client.get("/v1/catalog", headers=admin_headers(h)).json()
        items = found if isinstance(found, list) else found.get("datasets", found)
        projections = {d["name"]: d for d in items if d["kind"] == "projection"}
        assert set(projections) >= {"market_bars", "positions", "quotes", "payments"}
        assert all(d["description"] for d in projections.values())
        assert "10000" in projections["payment_aggregates"]["description"]
        tables = {t["name"]: t for d in projections.values() for t in d["tables"]}
        aml = {c["name"]: c for c in tables["aml_daily"]["columns"]}
        assert "9000 <= amount < 10000" in aml["near_threshold"]["description"]
        assert tables["ohlcv_1h"]["key"] == ["tenant", "instrument", "currency", "window_start"]
        assert all(c["description"] for t in tables.values() for c in t["columns"])
        mtm = projections["positions"]["queries"]["mark_to_market"]
        assert mtm["sql"] == MARK_TO_MARKET_SQL and "latest quote" in mtm["description"]
    finally:
        h.close()


def _payments():
    out = []
    for i in range(4):
        base = {"payment_id": f"P{i}", "account_id": f"A{i % 2}"}
        out.append(
            OutgoingEvent(
                event_type="hub.payments.PaymentInitiated",
                value={
                    **base,
                    "amount": f"{100 + i}.50",
                    "currency": "EUR",
                    "counterparty_name": "x",
                    "counterparty_iban": "y",
                    "counterparty_country": "DE",
                    "initiated_at": f"{DAY}T10:0{i}:00.25Z",
                },
            )
        )
    out.append(
        OutgoingEvent(
            event_type="hub.payments.PaymentSettled",
            value={
                "payment_id": "P0",
                "account_id": "A0",
                "amount": "100.50",
                "currency": "EUR",
                "initiated_at": f"{DAY}T10:00:00Z",
                "settled_at": f"{DAY}T11:00:00Z",
            },
        )
    )
    return out


TYPE_SQL = (
    "SELECT payment_id, amount, status, initiated_at, settled_at, failed_at "
    "FROM payment_status ORDER BY payment_id"
)
TYPE_SCHEMA = pa.schema(
    [
        ("payment_id", pa.string()),
        ("amount", pa.decimal128(38, 2)),
        ("status", pa.string()),
        ("initiated_at", pa.timestamp("us", tz="UTC")),
        ("settled_at", pa.timestamp("us", tz="UTC")),
        ("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def folded_elsewhere(h, store) -> pa.Table:
    """The payments projection folded into another view store, queried like the live one."""
    target = Target("payments", "typetest")
    runner = ProjectionRunner(PAYMENTS, h.log, store, h.projections.decoder, target=target)
    runner.open()
    runner.catch_up()
    try:
        grants = [
            replace_source(g, target)
            for g in h.projections.grants(h.policy, OPERATOR, "transactional")
            if g.name == "payment_status"
        ]
        return canonical(store.query(TYPE_SQL, grants))
    finally:
        store.drop(target, PAYMENTS.tables)


def assert_same_everywhere(a: pa.Table, b: pa.Table) -> None:
    assert a.schema.remove_metadata() == TYPE_SCHEMA
    assert b.schema.remove_metadata() == TYPE_SCHEMA
    assert a.to_pylist() == b.to_pylist()
    for fmt in ("json", "csv"):
        assert render(a, fmt)[0] == render(b, fmt)[0], fmt
    pa_a = pq.read_table(io.BytesIO(render(a, "parquet")[0]))
    pa_b = pq.read_table(io.BytesIO(render(b, "parquet")[0]))
    assert pa_a.schema.remove_metadata() == pa_b.schema.remove_metadata() == TYPE_SCHEMA
    assert pa_a.equals(pa_b)


def test_same_types_in_every_store_and_format(tmp_path):
    """Item 13: the payments views folded into chDB and into SQLite answer the same query with
    equal values and equal Arrow schemas, in JSON, CSV and Parquet."""
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("payments", _payments(), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["payments"])
        sqlite = ps.query(h.policy, OPERATOR, TYPE_SQL, "transactional")
        ch = folded_elsewhere(h, ps.store("analytics"))
        assert_same_everywhere(sqlite, ch)
        first = sqlite.to_pylist()[0]
        assert first["initiated_at"] == datetime(2026, 11, 24, 10, 0, 0, 250000, tzinfo=UTC)
        rows = json.loads(render(sqlite, "json")[0])["rows"]
        assert rows[0]["amount"] == "100.50"
        assert rows[0]["initiated_at"] == "2026-11-24T10:00:00.250000Z"
        assert rows[0]["failed_at"] is None
        assert "2026-11-24T10:00:00.250000Z" in render(sqlite, "csv")[0].decode()
    finally:
        h.close()


@pytest.mark.integration
def test_same_types_on_postgresql(tmp_path):
    """Item 13 on the distributed transactional store: PostgreSQL answers like SQLite."""
    from adapters.sqlalchemy_views import SqlAlchemyViewStore
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL type test")
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("payments", _payments(), producer="t", tenant="acme")
        h.projections.run(["payments"])
        sqlite = h.projections.query(h.policy, OPERATOR, TYPE_SQL, "transactional")
        for kwargs in fresh_schema(url):
            pg = SqlAlchemyViewStore(url, **kwargs)
            try:
                assert_same_everywhere(sqlite, folded_elsewhere(h, pg))
            finally:
                pg.close()
    finally:
        h.close()


def replace_source(g: ViewGrant, target: Target) -> ViewGrant:
    from dataclasses import replace

    return replace(g, source=target.table(g.name))


def test_a_data_folder_with_an_older_layout_is_replayed(tmp_path, caplog):
    """Changed view layouts (item 9 changes the bar and position keys): a folder written by
    older code (another layout recorded, or none at all) is dropped and replayed on first use."""
    import time

    import sqlalchemy as sa

    from core.ports.views import ViewState

    data = tmp_path / "d"
    h = make_hub(data)
    try:
        h.publisher.publish(
            "trades", [trade(0, "10:00:00"), trade(1, "10:01:00")], producer="t", tenant="acme"
        )
        h.publisher.publish("payments", _payments(), producer="t", tenant="acme")
        h.projections.run(["positions", "payments"])
        # what older hubs left: rows and positions with another layout (chDB) or none (SQLite)
        now = int(time.time() * 1000) + 1
        h.projections.store("analytics").save_state(
            ViewState("positions#layout", "layout", "v1-old", 0, "[]", None, now)
        )
        sql_store = h.projections.store("transactional")
        with sql_store._engine.begin() as conn:
            conn.execute(sa.delete(sql_store._states))
            conn.execute(sa.text("UPDATE payment_status SET status = 'STALE'"))
    finally:
        h.close()
    h = make_hub(data)
    try:
        with caplog.at_level("WARNING", logger="hub.projections"):
            rows = h.projections.query(h.policy, OPERATOR, "SELECT quantity FROM positions")
            assert rows.to_pylist() == [{"quantity": D(20)}]  # replayed, not lost
            status = h.projections.query(
                h.policy, OPERATOR, "SELECT DISTINCT status FROM payment_status", "transactional"
            )
            assert "STALE" not in status.column("status").to_pylist()  # replayed from the log
        changed = [r for r in caplog.records if "layout changed" in r.getMessage()]
        assert {r.projection for r in changed} >= {"positions", "payments"}
        (state,) = h.projections.store("analytics").states("positions#layout")
        assert state.digest != "v1-old"
        assert by_name("positions").table("positions").key[-1] == "currency"
    finally:
        h.close()


def test_cli_projection_at_event_time_with_sql(tmp_path):
    from click.testing import CliRunner

    from hub.cli import main

    data = tmp_path / "d"
    h = make_hub(data)
    try:
        h.publisher.publish(
            "trades",
            [trade(0, "10:00:00", "100"), trade(1, "11:00:00", "110")],
            producer="t",
            tenant="acme",
        )
    finally:
        h.close()

    def run(*args: str):
        result = CliRunner().invoke(main, [*admin_args(data), *args])
        return result.exit_code, result.stdout, result.stderr

    sql = "SELECT quantity, avg_cost, last_trade_at FROM positions"
    code, out, err = run(
        "projection", "at", "positions", "--event-time", f"{DAY}T10:30:00Z", "--sql", sql
    )
    assert code == 0, err
    assert out.strip().splitlines() == [
        '"quantity","avg_cost","last_trade_at"',
        f'"10.0000","100.00000000","{DAY}T10:00:00.000000Z"',
    ]
    code, out, err = run("projection", "at", "positions", "--event-time", "tomorrow")
    assert code != 0 and "tomorrow" in err
