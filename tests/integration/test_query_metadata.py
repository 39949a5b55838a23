"""The query API beyond SELECT: SHOW TABLES / DESCRIBE from the catalog, one lineage dataset
per store (no catalog dataset per query), CSV headers on empty results, and the error a second
process gets while ``hub serve`` holds chDB's folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import lineage
from core.events import OutgoingEvent
from governance.catalog import catalog
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.cli_keys import admin_args


def key(hub: Hub, role: str, tenant: str) -> dict[str, str]:
    token = hub.keys.create([role], principal=f"{role}-{tenant}", tenant=tenant).token
    return {"Authorization": f"Bearer {token}"}


def test_show_tables_and_describe_answer_from_the_catalog_in_each_store(hub: Hub) -> None:
    analyst = key(hub, "analyst", "acme")
    with TestClient(create_app(hub)) as client:

        def ask(sql: str, store: str) -> list[dict[str, object]]:
            r = client.post("/v1/query", json={"sql": sql, "store": store}, headers=analyst)
            assert r.status_code == 200, r.text
            rows: list[dict[str, object]] = r.json()["rows"]
            return rows

        tables = {r["name"] for r in ask("SHOW TABLES", "transactional")}
        assert {"accounts_current", "payment_status"} <= tables
        assert "positions" not in tables and "_projection_offsets" not in tables
        assert "positions" in {r["name"] for r in ask("show tables;", "analytics")}
        cols = {r["name"]: r for r in ask("DESCRIBE accounts_current", "transactional")}
        assert cols["email"]["masked"] is True and cols["email"]["type"] == "string"
        assert cols["account_id"]["masked"] is False
        assert set(cols["email"]) == {"name", "type", "nullable", "masked", "description"}
        assert "src_offsets" in cols and cols["src_offsets"]["description"]
        assert {r["name"] for r in ask("DESC TABLE positions", "analytics")} >= {"account_id"}
        missing = client.post(
            "/v1/query",
            json={"sql": "DESCRIBE sqlite_master", "store": "transactional"},
            headers=analyst,
        )
        assert missing.status_code == 404 and "SHOW TABLES" in missing.json()["message"]
    # Metadata is not an export: no lineage run.
    assert lineage.events(hub, "export.query") == []


def test_queries_write_one_lineage_dataset_per_store_not_one_per_query(hub: Hub) -> None:
    analyst = key(hub, "analyst", "acme")
    queries = [
        ("SELECT count(*) AS n FROM payment_status", "transactional", "csv"),
        ("SELECT count(*) AS n FROM accounts_current", "transactional", "json"),
        ("SELECT 1 AS one", "transactional", "parquet"),
        ("SELECT count() AS n FROM positions", "analytics", "csv"),
        ("SELECT count() AS n FROM ohlcv_1m", "analytics", "json"),
        ("SELECT 2 AS two", "analytics", "csv"),
    ]
    with TestClient(create_app(hub)) as client:
        for sql, store, fmt in queries:
            body = {"sql": sql, "store": store, "format": fmt}
            assert client.post("/v1/query", json=body, headers=analyst).status_code == 200
    done = [e for e in lineage.events(hub, "export.query") if e["event_type"] == "COMPLETE"]
    assert len(done) == len(queries)  # every query is a run ...
    exports = {d.name: d for d in catalog(hub) if d.kind == "export"}
    assert set(exports) == {"query:transactional", "query:analytics"}  # ... not a dataset
    assert set(exports["query:transactional"].inputs) == {
        "hub://projections/payments",
        "hub://projections/accounts",
    }
    assert exports["query:transactional"].classification == "pii"


def test_an_empty_csv_result_has_its_header_in_both_stores(hub: Hub) -> None:
    hub.publisher.publish(
        "payments",
        [
            OutgoingEvent(
                event_type="hub.payments.PaymentInitiated",
                value={
                    "payment_id": "P1",
                    "account_id": "A1",
                    "amount": "10.00",
                    "currency": "EUR",
                    "counterparty_name": "X",
                    "counterparty_iban": "DE00",
                    "counterparty_country": "DE",
                    "reference": None,
                    "initiated_at": "2026-01-01T10:00:00Z",
                },
            )
        ],
        producer="t",
        tenant="acme",
    )
    hub.projections.run(["payments"])
    analyst = key(hub, "analyst", "acme")
    with TestClient(create_app(hub)) as client:
        for sql, store in [
            ("SELECT payment_id, amount FROM payment_status WHERE 1 = 0", "transactional"),
            (
                "SELECT payment_id, amount FROM payment_status WHERE 1 = 0 AND payment_id = 'x'",
                "transactional",
            ),
            ("SELECT instrument, volume FROM ohlcv_1m WHERE 1 = 0", "analytics"),
        ]:
            body = {"sql": sql, "store": store, "format": "csv"}
            r = client.post("/v1/query", json=body, headers=analyst)
            assert r.status_code == 200, r.text
            (header,) = r.text.splitlines()  # the header, no rows
            assert header.replace('"', "").split(",")[0] in ("payment_id", "instrument")
        sql = "SELECT payment_id FROM payment_status WHERE 1 = 0"
        body = {"sql": sql, "store": "transactional"}
        empty_json = client.post("/v1/query", json=body, headers=analyst).json()
        assert empty_json == {"columns": ["payment_id"], "rows": []}


HOLD = """
import pyarrow, sys, time
from chdb import session
s = session.Session(sys.argv[1])
s.query("SELECT 1")
print("holding", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_the_cli_says_the_server_holds_chdb_and_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = data / "views" / "chdb"
    folder.mkdir(parents=True)
    cred = admin_args(data)  # the CLI's admin key, made before the folder is held
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        hub_cli = Path(sys.executable).with_name("hub")
        env = {**os.environ, "HUB_PROJECTION_AUTOSTART": "false"}
        started = time.monotonic()
        r = subprocess.run(
            [str(hub_cli), *cred, "query", "SELECT count() AS n FROM positions"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert time.monotonic() - started < 120
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1
    assert "error [views_locked]" in r.stderr, r.stderr
    assert "POST /v1/query" in r.stderr and "hub serve" in r.stderr
    assert "DB::Exception" not in r.stderr and "Code: 76" not in r.stderr
