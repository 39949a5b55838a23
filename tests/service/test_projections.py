"""Projections end to end: exactly-once across crashes at every numbered step, rebuild
determinism, time travel, late events, poison events, and policy-checked queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings

pytest.importorskip("chdb")
ROOT = Path(__file__).resolve().parents[2]


def make_hub(data: Path, **kw):
    kw.setdefault("projection_autostart", False)
    return bootstrap(load_settings(environ={}, data_dir=data, **kw))


def trades(n, tenant_accounts=4, start_minute=0):
    return [
        OutgoingEvent(
            value={
                "trade_id": f"t{i}",
                "account_id": f"A{i % tenant_accounts}",
                "instrument": f"XS{i % 2}",
                "side": "BUY" if i % 3 else "SELL",
                "quantity": f"{1 + i % 5}.5",
                "price": f"{100 + i % 7}.25",
                "currency": "USD",
                "fees": "0.10",
                "executed_at": f"2026-01-01T00:{(start_minute + i) % 60:02d}:{i % 60:02d}Z",
            }
        )
        for i in range(n)
    ]


def payments(n):
    out = []
    for i in range(n):
        base = {"payment_id": f"P{i}", "account_id": f"A{i % 3}"}
        out.append(
            OutgoingEvent(
                event_type="hub.payments.PaymentInitiated",
                value={
                    **base,
                    "amount": "9500.00" if i % 4 == 0 else f"{100 + i}.00",
                    "currency": "EUR",
                    "counterparty_name": f"Person {i}",
                    "counterparty_iban": "DE00123",
                    "counterparty_country": "DE",
                    "initiated_at": f"2026-01-0{1 + i % 2}T10:00:00Z",
                },
            )
        )
        if i % 2 == 0:
            out.append(
                OutgoingEvent(
                    event_type="hub.payments.PaymentSettled",
                    value={
                        **base,
                        "amount": "1.00",
                        "currency": "EUR",
                        "initiated_at": "2026-01-01T10:00:00Z",
                        "settled_at": "2026-01-01T11:00:00Z",
                    },
                )
            )
    return out


CRASH = r"""
import os, sys
from pathlib import Path
from hub.bootstrap import bootstrap
from hub.settings import load_settings
data, name, step, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
h = bootstrap(load_settings(environ={}, data_dir=Path(data), projection_batch_records=7,
                            projection_autostart=False))
seen = [0]
def hook(s):
    if s == step:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), 9)
runner = h.projections.runner(name)
runner.hook = hook
runner.catch_up()
os._exit(0)
"""

BARS_STEPS = [
    "read",
    "folded",
    "rows:ohlcv_1m",
    "rows:ohlcv_1h",
    "rows:ohlcv_5m_hop_1m",
    "rows:market_bars_late",
    "offsets",
    "mirrored",
]
PAYMENT_STEPS = [
    "read",
    "folded",
    "rows:payment_status",
    "rows:payment_history",
    "rows:payment_limits",
    "offsets",
    "commit",
    "mirrored",
]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A closed data folder per projection with its events published, built once: each crash
    test crashes and recovers a copy of it (publishing 16 times proved nothing more)."""
    folders = {}
    for name, topic, events in (
        ("market_bars", "trades", trades(40)),
        ("payments", "payments", payments(12)),
    ):
        data = tmp_path_factory.mktemp(name) / "data"
        h = make_hub(data)
        h.publisher.publish(topic, events, producer="t", tenant="acme")
        h.close()
        folders[name] = data
    return folders


def crash_then_recover(tmp_path: Path, published: dict[str, Path], name: str, step: str, check):
    """Copy the published folder, kill a catch-up of ``name`` at its 2nd ``step``, recover it in
    a new hub, prove live == replay (no loss, no double count), then ``check(hub)`` on it."""
    data = tmp_path / "data"
    shutil.copytree(published[name], data)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(data), name, step, "2"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    h = make_hub(data, projection_batch_records=7)
    try:
        ps = h.projections
        ps.run([name])
        live = ps.digest(name, save=False)
        replay = ps.at(name, offset=10**9)["digests"]
        assert {t: d["digest"] for t, d in live.items()} == replay  # no loss, no double count
        check(h)
    finally:
        h.close()


ADMIN = Principal("a", frozenset({"admin"}))


@pytest.mark.slow
@pytest.mark.parametrize("step", BARS_STEPS)
def test_exactly_once_in_chdb_across_a_crash_at_each_step(tmp_path, published, step):
    def check(h):
        got = h.projections.query(h.policy, ADMIN, "SELECT sum(events) AS n FROM ohlcv_1m")
        assert got.to_pylist() == [{"n": 40}]

    crash_then_recover(tmp_path, published, "market_bars", step, check)


@pytest.mark.slow
@pytest.mark.parametrize("step", PAYMENT_STEPS)
def test_exactly_once_in_sqlite_across_a_crash_at_each_step(tmp_path, published, step):
    def check(h):
        sql = "SELECT count(*) AS n FROM payment_history"
        got = h.projections.query(h.policy, ADMIN, sql, "transactional").to_pylist()
        assert got == [{"n": len(payments(12))}]
        sql = "SELECT payments FROM payment_limits"
        used = h.projections.query(h.policy, ADMIN, sql, "transactional").to_pylist()
        assert sum(r["payments"] for r in used) == 12

    crash_then_recover(tmp_path, published, "payments", step, check)


def test_rebuild_is_deterministic_and_swaps_in(tmp_path):
    h = make_hub(tmp_path / "data", projection_batch_records=11)
    try:
        h.publisher.publish("trades", trades(60), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["market_bars", "positions"])
        first = ps.digest("market_bars")
        again = ps.rebuild("market_bars")["digests"]
        third = ps.rebuild("market_bars")["digests"]
        assert first == again == third
        assert (
            ps.rebuild("positions")["digests"]["positions"]["rows"] == 4
        )  # A0,A2: XS0; A1,A3: XS1
        states = {s.table: s for s in ps.store("analytics").states("market_bars")}
        assert states["ohlcv_1m"].digest == first["ohlcv_1m"]["digest"]
        # the live runner continues after the swap: no loss, no double count
        h.publisher.publish("trades", trades(5, start_minute=30), producer="t", tenant="acme")
        ps.run(["market_bars"])
        assert ps.digest("market_bars", save=False) == {
            t: {"digest": d, "rows": ps.digest("market_bars", save=False)[t]["rows"]}
            for t, d in ps.at("market_bars", offset=10**9)["digests"].items()
        }
    finally:
        h.close()


def test_time_travel_answers_as_of_a_past_time(tmp_path):
    h = make_hub(tmp_path / "data")
    try:
        h.publisher.publish("trades", trades(10), producer="t", tenant="acme")
        time.sleep(0.01)
        cut = int(time.time() * 1000)
        time.sleep(0.01)
        h.publisher.publish("trades", trades(7, start_minute=20), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["market_bars"])
        past = ps.at("market_bars", time_ms=cut, table="ohlcv_1m")
        assert sum(r["events"] for r in past["views"]["ohlcv_1m"]) == 10
        now = ps.at("market_bars", offset=10**9, table="ohlcv_1m")
        assert sum(r["events"] for r in now["views"]["ohlcv_1m"]) == 17
        assert (
            ps.store("analytics")
            .checkpoint(__import__("core.ports.views", fromlist=["Target"]).Target("market_bars"))
            .batch_seq
            >= 1
        )  # the live view was untouched
    finally:
        h.close()


def late_trades():
    base = trades(2)
    a = base[0].value | {"account_id": "A1", "executed_at": "2026-01-01T00:05:00Z"}
    b = base[1].value | {"account_id": "A1", "executed_at": "2026-01-01T00:00:10Z"}
    return [OutgoingEvent(value=a), OutgoingEvent(value=b)]


@pytest.mark.parametrize("mode", ["update", "side"])
def test_late_events_update_their_window_or_go_to_the_side_table(tmp_path, mode):
    h = make_hub(tmp_path / "data", projection_allowed_lateness_s=0, projection_late_mode=mode)
    try:
        from core.ports.policy import Principal

        h.publisher.publish("trades", late_trades(), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["market_bars"])
        admin = Principal("a", frozenset({"admin"}))
        bars = ps.query(h.policy, admin, "SELECT window_start FROM ohlcv_1m").num_rows
        late = ps.query(h.policy, admin, "SELECT * FROM market_bars_late WHERE view = 'ohlcv_1m'")
        assert (bars, late.num_rows) == ((2, 0) if mode == "update" else (1, 1))
    finally:
        h.close()


def test_poison_event_is_quarantined_and_the_projection_keeps_going(tmp_path):
    h = make_hub(tmp_path / "data")
    try:
        h.publisher.publish("trades", trades(3), producer="t", tenant="acme")
        h.log.append("trades", [Record(value=b"\x00\x00\x00\x00\x63garbage", key=b"A1")])
        h.publisher.publish("trades", trades(3, start_minute=10), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["market_bars"])
        assert ps.runner("market_bars").lag() == 0
        q = [
            ev
            for p in range(h.log.topic("hub.quarantine").partitions)
            for ev in h.reader.read("hub.quarantine", p, 0, 100)
        ]
        assert [e["value"]["source"] for e in q] == ["projection:market_bars"]
        assert b"hub_projection_errors_total" in h.metrics.render()
    finally:
        h.close()


def test_query_api_filters_tenants_masks_pii_and_exports(tmp_path):
    from hub.api.app import create_app

    h = make_hub(tmp_path / "data")
    try:
        h.publisher.publish("payments", payments(6), producer="t", tenant="acme")
        h.publisher.publish("payments", payments(2), producer="t", tenant="globex")
        h.projections.run(["payments", "payment_aggregates"])
        client = TestClient(create_app(h))

        def key(role, tenant):
            token = h.keys.create([role], principal=f"{role}-{tenant}", tenant=tenant).token
            return {"Authorization": f"Bearer {token}"}

        acme, globex = key("analyst", "acme"), key("analyst", "globex")
        officer, admin = key("compliance_officer", "acme"), key("admin", "default")
        sql = "SELECT payment_id, tenant, counterparty_name FROM payment_status ORDER BY payment_id"
        body = {"sql": sql, "store": "transactional"}
        rows = client.post("/v1/query", json=body, headers=acme).json()["rows"]
        assert len(rows) == 6 and {r["tenant"] for r in rows} == {"acme"}
        assert {r["counterparty_name"] for r in rows} == {None}  # pii masked for analysts
        assert len(client.post("/v1/query", json=body, headers=globex).json()["rows"]) == 2
        rows = client.post("/v1/query", json=body, headers=officer).json()["rows"]
        assert rows[0]["counterparty_name"].startswith("Person")  # pii.read
        assert len(client.post("/v1/query", json=body, headers=admin).json()["rows"]) == 8
        agg = {"sql": "SELECT sum(near_threshold) AS n FROM aml_daily", "format": "csv"}
        assert client.post("/v1/query", json=agg, headers=acme).text.splitlines()[1] == "2"
        pq = client.post("/v1/query", json={**agg, "format": "parquet"}, headers=acme)
        assert pq.content[:4] == b"PAR1"
        bad = client.post("/v1/query", json={"sql": "DROP TABLE aml_daily"}, headers=acme)
        assert bad.status_code == 422 and bad.json()["reason"] == "query_not_select"
        sneaky = {"sql": "SELECT * FROM system.tables"}
        assert client.post("/v1/query", json=sneaky, headers=acme).status_code == 422
        pub = key("publisher", "acme")
        assert client.post("/v1/query", json=body, headers=pub).status_code == 403
        src = client.get(
            "/v1/projections/payments/rows/acme|P0/sources",
            params={"table": "payment_status"},
            headers=officer,
        ).json()
        assert src["complete"] and [e["offset"] for e in src["events"]]
        assert {e["value"]["payment_id"] for e in src["events"]} == {"P0"}
        assert client.post("/v1/projections/payments/rebuild", headers=acme).status_code == 403
    finally:
        h.close()


def test_sources_of_an_aggregate_row_are_exact(tmp_path):
    h = make_hub(tmp_path / "data")
    try:
        h.publisher.publish("trades", trades(30), producer="t", tenant="acme")
        ps = h.projections
        ps.run(["market_bars"])
        from core.ports.views import Target
        from projections.catalog import MARKET_BARS

        row = ps.store("analytics").rows(Target("market_bars"), MARKET_BARS.table("ohlcv_1h"))[0]
        key = f"acme|{row['instrument']}|{row['currency']}|{row['window_start']}"
        got = ps.sources("market_bars", "ohlcv_1h", key)
        assert got["complete"] and len(got["events"]) == row["events"]
        assert sum(D(e["value"]["quantity"]) for e in got["events"]) == row["volume"]
        # Each event behind the row comes with its ledger entry and an inclusion proof that
        # verifies against the signed checkpoint it names.
        h.ledger.sync(force_checkpoint=True)
        got = ps.sources("market_bars", "ohlcv_1h", key)
        from audit.leaf import encode as leaf_input
        from audit.merkle import leaf_hash, verify_inclusion

        for e in got["events"]:
            entry = e["proof"]
            assert (entry["topic"], entry["partition"], entry["offset"]) == (
                "trades",
                e["partition"],
                e["offset"],
            )
            record = h.log.read("trades", e["partition"], e["offset"], 1)[0]
            data = leaf_input(
                record.topic,
                record.partition,
                record.offset,
                record.timestamp_ms,
                record.key,
                record.headers,
                record.value,
            )
            assert leaf_hash(data).hex() == entry["leaf_hash"]
            verify_inclusion(
                bytes.fromhex(entry["leaf_hash"]),
                entry["index"],
                entry["checkpoint"]["size"],
                [bytes.fromhex(x) for x in entry["proof"]],
                bytes.fromhex(entry["checkpoint"]["root"]),
            )
    finally:
        h.close()
