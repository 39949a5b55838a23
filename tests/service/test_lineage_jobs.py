"""Lineage of every job (``governance/lineage.py``): file publish and watched folder, database and
HTTP pulls, quarantine replay, evidence and query exports each leave an OpenLineage run with the
right datasets; failures leave a FAIL event with the error message and no secret."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core import lineage
from core.errors import ConfigError
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.db import DbConnector, DbSourceConfig
from ingest.files import FileUnreadable, file_digest, file_source, publish_file, watch_once
from ingest.httppull import ConnectorFailed, HttpPullConfig, HttpPullConnector
from ingest.quarantine import entries, replay
from tests.cli_keys import admin_args
from tests.service.accounts import open_accounts

T = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.5",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00Z",
}
QUARANTINE = "dataset:hub://topics/hub.quarantine"
TRADES = "dataset:hub://topics/trades"


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """The shared hub with the account these trades name (``trade.account.known``)."""
    open_accounts(hub, ["ACC-1"])
    return hub


@pytest.fixture
def rt_hub(tmp_path: Path) -> Iterator[Hub]:
    # The role table until governance/policies/hub/data.json is regenerated from hub.authz.
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "data",
            policy_engine="roletable",
            projection_autostart=False,
        )
    )
    yield h
    h.close()


def auth(h: Hub, role: str) -> dict[str, str]:
    token = h.keys.create([role], principal=f"{role}-1").token
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def edges(g: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["from"], e["to"], e["kind"]) for e in g["edges"]}


def runs(h: Hub, job: str) -> list[tuple[str, list[str], list[str]]]:
    return [(e["event_type"], e["inputs"], e["outputs"]) for e in h.lineage.events(job)]


def error_of(h: Hub, job: str) -> str:
    last = h.lineage.events(job)[-1]
    assert last["event_type"] == "FAIL"
    return str(json.loads(last["openlineage"])["run"]["facets"]["errorMessage"]["message"])


def jsonl(path: Path, *values: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values))
    return path


# -- ingest ----------------------------------------------------------------------------------------
def test_file_publish_reads_the_file_and_writes_the_topic_and_the_quarantine(
    hub: Hub, tmp_path: Path
) -> None:
    f = jsonl(tmp_path / "t.jsonl", T, {**T, "trade_id": "T-neg", "quantity": "-5"})
    out = publish_file(hub.ingest, f, "trades")
    assert (out.result.accepted, out.result.rejected) == (1, 1)
    src = f"hub://sources/{f.resolve().as_uri()}"
    # START names what is known before reading; COMPLETE adds the quarantine.
    assert runs(hub, "ingest.files.trades") == [
        ("START", [src], ["hub://topics/trades"]),
        ("COMPLETE", [src], ["hub://topics/trades", "hub://topics/hub.quarantine"]),
    ]
    g = hub.lineage.graph()
    job = "job:hub/ingest.files.trades"
    assert {(f"dataset:{src}", job, "reads"), (job, TRADES, "writes")} <= edges(g)
    assert (job, QUARANTINE, "writes") in edges(g)
    source = {n["id"]: n for n in g["nodes"]}[f"dataset:{src}"]
    assert (source["namespace"], source["name"]) == ("hub://sources", f.resolve().as_uri())
    # A clean file writes no quarantine.
    clean = publish_file(
        hub.ingest, jsonl(tmp_path / "c.jsonl", {**T, "trade_id": "T-2"}), "trades"
    )
    assert clean.result.rejected == 0
    assert runs(hub, "ingest.files.trades")[-1][2] == ["hub://topics/trades"]


def test_a_failing_file_publish_leaves_fail_with_the_error(hub: Hub, tmp_path: Path) -> None:
    wrong = tmp_path / "w.csv"
    wrong.write_text("trade_id,colour\nT-1,red\n")
    with pytest.raises(FileUnreadable, match="colour"):
        publish_file(hub.ingest, wrong, "trades")
    assert [e[0] for e in runs(hub, "ingest.files.trades")] == ["START", "FAIL"]
    message = error_of(hub, "ingest.files.trades")
    assert message.startswith(
        "FileUnreadable: The CSV header of 'w.csv' names 1 column(s) ('colour')"
    )
    state = {n["id"]: n for n in hub.lineage.graph()["nodes"]}["job:hub/ingest.files.trades"]
    assert state["last_run"]["state"] == "FAIL"
    # Invocation errors fail before the run starts: no event for a path that is not a file.
    with pytest.raises(FileUnreadable, match="is not a file"):
        publish_file(hub.ingest, tmp_path / "missing.jsonl", "trades")
    assert len(runs(hub, "ingest.files.trades")) == 2


def test_lineage_that_cannot_be_recorded_fails_the_publish_before_it_appends(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise ConnectionError("hub.lineage is unavailable")

    monkeypatch.setattr(lineage, "emit", down)
    f = jsonl(tmp_path / "t.jsonl", T)
    with pytest.raises(ConnectionError, match="unavailable"):
        publish_file(hub.ingest, f, "trades")
    assert hub.ingest.positions.get(file_source(file_digest(f), "trades", "default")) is None
    assert sum(hub.log.end_offsets("trades").values()) == 0


def test_a_failing_job_keeps_its_error_when_the_fail_event_is_lost_too(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = lineage.emit

    def no_fail(*a: Any, **kw: Any) -> dict[str, Any]:
        if a[1] == "FAIL":
            raise ConnectionError("hub.lineage is unavailable")
        return real(*a, **kw)

    monkeypatch.setattr(lineage, "emit", no_fail)
    with pytest.raises(RuntimeError, match="boom") as caught, lineage.run(hub, "j"):
        raise RuntimeError("boom")
    assert "lineage FAIL event" in " ".join(caught.value.__notes__)


def test_watched_folder_is_one_run_per_file(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    a = jsonl(folder / "a.jsonl", T)
    (folder / "b.parquet").write_bytes(b"nope")
    a_uri, b_uri = a.resolve().as_uri(), (folder / "b.parquet").resolve().as_uri()
    watch_once(hub.ingest, folder, "trades")
    evs = hub.lineage.events("ingest.watch.trades")
    assert [(e["event_type"], e["inputs"]) for e in evs] == [
        ("START", [f"hub://sources/{a_uri}"]),
        ("COMPLETE", [f"hub://sources/{a_uri}"]),
        ("START", [f"hub://sources/{b_uri}"]),
        ("FAIL", [f"hub://sources/{b_uri}"]),
    ]
    assert len({e["run_id"] for e in evs}) == 2


def test_db_pull_names_the_database_without_credentials_and_the_table(
    hub: Hub, tmp_path: Path
) -> None:
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"CREATE TABLE trades ({', '.join(T)})")
    con.execute(f"INSERT INTO trades VALUES ({', '.join('?' * len(T))})", list(T.values()))
    con.commit()
    cfg = dict(table="trades", topic="trades", cursor="executed_at", key="trade_id")
    r = DbConnector(hub.ingest, DbSourceConfig(name="src", url=f"sqlite:///{db}?timeout=5", **cfg))
    assert r.run().accepted == 1
    src = f"hub://sources/sqlite:///{db}#trades"
    assert runs(hub, "ingest.db.src") == [
        ("START", [src], ["hub://topics/trades"]),
        ("COMPLETE", [src], ["hub://topics/trades"]),
    ]
    assert (f"dataset:{src}", "job:hub/ingest.db.src", "reads") in edges(hub.lineage.graph())
    # A failed pull is a FAIL.
    missing = DbSourceConfig(name="gone", url=f"sqlite:///{db}", **{**cfg, "table": "nope"})
    with pytest.raises(ConfigError, match="nope"):
        DbConnector(hub.ingest, missing).run()
    assert "'nope' does not exist" in error_of(hub, "ingest.db.gone")


def test_db_dataset_and_errors_keep_no_password() -> None:
    url = "postgresql+psycopg://loader:s3cret@DB.internal:5432/app?sslmode=require&password=x"
    ds = lineage.source_dataset(url, table="public.trades")
    assert ds.id == "hub://sources/postgresql+psycopg://db.internal:5432/app#public.trades"
    assert lineage.split_id(ds.id) == ("hub://sources", ds.name)
    doc = lineage.emit(
        _Sink(),
        "FAIL",
        "ingest.db.x",
        "r",
        error=ValueError(f"cannot connect to {url}"),
        redact={url: lineage.redact_url(url)},
    )
    message = doc["run"]["facets"]["errorMessage"]["message"]
    assert "s3cret" not in message and "db.internal:5432/app" in message


class _Sink:
    """A Publisher stand-in that drops what it is given (``emit`` only needs ``publish``)."""

    def publish(self, *_: Any, **__: Any) -> list[Any]:
        return []

    @property
    def publisher(self) -> _Sink:
        return self


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/denied"):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"bad key")
            return
        body = json.dumps({"data": [T], "next_cursor": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_pull_names_the_endpoint_without_query_secrets(hub: Hub, api: str) -> None:
    cfg = HttpPullConfig(
        name="api",
        url=f"{api}/trades?token=s3cret",
        topic="trades",
        allow_private_network=True,  # the test API listens on 127.0.0.1
    )
    assert HttpPullConnector(hub.ingest, cfg).run().accepted == 1
    src = f"hub://sources/{api}/trades"
    assert runs(hub, "ingest.http.api") == [
        ("START", [src], ["hub://topics/trades"]),
        ("COMPLETE", [src], ["hub://topics/trades"]),
    ]
    g = hub.lineage.graph()
    assert {(f"dataset:{src}", "job:hub/ingest.http.api", "reads")} <= edges(g)
    assert ("job:hub/ingest.http.api", TRADES, "writes") in edges(g)
    denied = HttpPullConfig(
        name="denied",
        url=f"{api}/denied?token=s3cret",
        topic="trades",
        params={"api_key": "k3y-k3y"},
        allow_private_network=True,
    )
    with pytest.raises(ConnectorFailed, match="401"):
        HttpPullConnector(hub.ingest, denied).run()
    message = error_of(hub, "ingest.http.denied")
    assert "HTTP 401" in message and f"{api}/denied" in message
    assert "s3cret" not in message and "k3y-k3y" not in message
    assert all("s3cret" not in e["openlineage"] for e in hub.lineage.events())


def test_quarantine_replay_reads_the_quarantine_and_writes_the_topics(
    hub: Hub, tmp_path: Path
) -> None:
    f = jsonl(tmp_path / "t.jsonl", {**T, "trade_id": "T-neg", "quantity": "-5"})
    publish_file(hub.ingest, f, "trades")
    (entry,) = entries(hub.ingest)
    result = replay(hub.ingest, [entry["offset"]], "ops")
    assert result["trades"].rejected == 1  # still failing: quarantined again
    assert runs(hub, "ingest.replay") == [
        ("START", ["hub://topics/hub.quarantine"], ["hub://topics/trades"]),
        (
            "COMPLETE",
            ["hub://topics/hub.quarantine"],
            ["hub://topics/trades", "hub://topics/hub.quarantine"],
        ),
    ]
    g = hub.lineage.graph()
    assert {
        (QUARANTINE, "job:hub/ingest.replay", "reads"),
        ("job:hub/ingest.replay", TRADES, "writes"),
    } <= edges(g)


# -- exports ---------------------------------------------------------------------------------------
def test_evidence_and_query_exports_over_http_are_in_the_graph_and_the_catalog(
    rt_hub: Hub,
) -> None:
    officer = auth(rt_hub, "compliance_officer")
    sql = "SELECT count(*) AS n FROM payment_status"
    with TestClient(create_app(rt_hub)) as client:
        r = client.post("/v1/evidence?from=2000-01-01&to=2100-01-01&controls=CC6", headers=officer)
        assert r.status_code == 200, r.text
        bundle = r.headers["content-disposition"].split('filename="')[1].rstrip('"')
        body = {"sql": sql, "format": "csv", "store": "transactional"}
        r = client.post("/v1/query", json=body, headers=officer)
        assert r.status_code == 200 and r.text.splitlines() == ['"n"', "0"], r.text
        bad = {"sql": "DROP TABLE x", "store": "transactional"}
        refused = client.post("/v1/query", json=bad, headers=officer)
        assert refused.status_code == 422
        g = client.get("/v1/lineage/graph", headers=officer).json()
    ev = "job:hub/export.evidence"
    assert (ev, f"dataset:hub://exports/{bundle}", "writes") in edges(g)
    # The topics of the CC6 control (hub.audit is created by the first export's own audit).
    assert ("dataset:hub://topics/hub.principals", ev, "reads") in edges(g)
    assert ("dataset:hub://topics/hub.config", ev, "reads") not in edges(g)  # CC8
    query = "query:transactional"  # one dataset per store, whatever the SQL and format
    q = "job:hub/export.query"
    assert ("dataset:hub://projections/payments", q, "reads") in edges(g)
    assert (q, f"dataset:hub://exports/{query}", "writes") in edges(g)
    evs = rt_hub.lineage.events("export.query")
    assert [e["event_type"] for e in evs] == ["START", "COMPLETE", "START", "FAIL"]
    assert evs[1]["inputs"] == ["hub://projections/payments"]  # the only view the SQL names
    assert error_of(rt_hub, "export.query").startswith("InvalidInput: Only read-only queries")
    exports = {d.name: d for d in rt_hub.catalog.datasets() if d.kind == "export"}
    # The refused query wrote nothing: only completed exports are in the catalog.
    assert set(exports) == {bundle, query}
    assert exports[query].inputs == ("hub://projections/payments",)
    assert exports[query].classification == "pii"  # payment_status has PII columns
    # CC6's population: keys, every access decision, investigation cases (issue 11 item 16).
    cc6 = ("hub://topics/hub.cases", "hub://topics/hub.decisions", "hub://topics/hub.principals")
    assert exports[bundle].inputs == cc6


def test_cli_evidence_and_query_exports_are_runs(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = {"HUB_POLICY_ENGINE": "roletable", "HUB_PROJECTION_AUTOSTART": "false"}
    out = tmp_path / "pack.zip"
    args = ["evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(out)]
    r = CliRunner().invoke(main, [*admin_args(data), *args], env=env)
    assert r.exit_code == 0, r.output
    sql = "SELECT count(*) AS n FROM payment_status, accounts_current"  # the inputs, parsed
    res = tmp_path / "r.parquet"
    args = ["query", sql, "--format", "parquet", "--out", str(res), "--store", "transactional"]
    r = CliRunner().invoke(main, [*admin_args(data), *args], env=env)
    assert r.exit_code == 0, r.output
    assert res.read_bytes()[:4] == b"PAR1"
    h = bootstrap(load_settings(environ={}, data_dir=Path(data), policy_engine="roletable"))
    try:
        (done,) = [e for e in h.lineage.events("export.evidence") if e["event_type"] == "COMPLETE"]
        assert len(done["outputs"]) == 1 and done["outputs"][0].startswith(
            "hub://exports/evidence-"
        )
        (q,) = [e for e in h.lineage.events("export.query") if e["event_type"] == "COMPLETE"]
        assert sorted(q["inputs"]) == ["hub://projections/accounts", "hub://projections/payments"]
        assert q["outputs"] == ["hub://exports/query:transactional"]
        names = {d.id for d in h.catalog.datasets() if d.kind == "export"}
        assert names == {done["outputs"][0], q["outputs"][0]}
    finally:
        h.close()
