"""Attacks at the hub's edges found in session 15 (upstream inputs, files, secrets at rest).

1. A tenant's publisher ran ``hub publish FILE`` (or ``hub watch``): the records were stamped
   with tenant ``default``, not the key's own. The tenant's own readers lost them and tenant
   ``default``'s readers were given them. A file's records MUST carry the publishing key's tenant.
   ``hub connector run`` (db, http, debezium) did the same, and decided only
   ``connectors/<name>``, never the topic its config file names.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from domain.envelope import Envelope
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_key_file
from tests.service.accounts import open_accounts

TRADE = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12345678",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00.123456Z",
}


def _tenants(data: Path, topic: str) -> list[str]:
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        return [
            Envelope.from_headers(r.headers).tenant
            for p in range(h.log.topic(topic).partitions)
            for r in h.log.scan(topic, p)
        ]
    finally:
        h.close()


def _acme_publisher(data: Path) -> str:
    admin_key_file(data)  # hub init first
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1", "ACC-2"])
        return h.keys.create(["publisher"], owner="pat", tenant="acme").token
    finally:
        h.close()


def test_cli_publish_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = _acme_publisher(data)
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(TRADE) + "\n" + json.dumps({**TRADE, "trade_id": "T-2"}) + "\n")
    r = CliRunner().invoke(
        main, ["--data-dir", str(data), "--key", token, "publish", str(f), "-t", "trades"]
    )
    assert r.exit_code == 0, r.output
    assert _tenants(data, "trades") == ["acme", "acme"]


def test_cli_watch_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1"])
        # ingest.connector is an admin right; an admin of tenant acme watches acme's folder
        token = h.keys.create(["admin"], owner="ada", tenant="acme").token
    finally:
        h.close()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text(json.dumps(TRADE) + "\n")
    args = ["--data-dir", str(data), "--key", token, "watch", str(inbox), "-t", "trades", "--once"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "accepted=1" in r.output, r.output
    assert _tenants(data, "trades") == ["acme"]


def test_cli_db_connector_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1"])
        token = h.keys.create(["admin"], owner="ada", tenant="acme").token
    finally:
        h.close()
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"CREATE TABLE trades ({', '.join(k + ' TEXT' for k in TRADE)})")
    con.execute(f"INSERT INTO trades VALUES ({','.join('?' * len(TRADE))})", list(TRADE.values()))
    con.commit()
    con.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"kind: db\nurl: sqlite:///{db}\ntable: trades\ntopic: trades\n"
        "cursor: executed_at\nkey: trade_id\n"
    )
    args = [
        "--data-dir",
        str(data),
        "--key",
        token,
        "connector",
        "run",
        "src",
        "--config",
        str(cfg),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "accepted=1" in r.output.replace(" ", ""), r.output
    assert _tenants(data, "trades") == ["acme"]
