"""Ingest over HTTP: per-record JSON and wire-format Avro, schema evolution, stats, quarantine
replay and rules as config events."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from core.avro import serde
from domain.catalog import schema_text
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.integration.accounts import open_accounts

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
    open_accounts(hub, ["ACC-1"])
    return hub


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    token = hub.keys.create(["admin"], principal="root").token
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def frame(*values: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(v)) + v for v in values)


def test_json_per_record_and_duplicates(client: TestClient, admin) -> None:
    events = [
        {"value": T, "event_id": "01890000-0000-7000-8000-000000000001"},
        {"value": {**T, "trade_id": "T-2", "quantity": "0"}},
        {"value": {**T, "trade_id": "T-3"}, "event_id": "01890000-0000-7000-8000-000000000001"},
        {"value": T},
    ]
    r = client.post("/v1/ingest/trades", json={"events": events}, headers=admin)
    body = r.json()
    assert r.status_code == 200, body
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (1, 1, 2)
    assert body["rejections"][0]["rule_id"] == "trade.quantity.positive"
    # the same event id later: still a duplicate (window), not appended twice
    r = client.post("/v1/ingest/trades", json={"events": events[:1]}, headers=admin)
    assert r.json()["duplicates"] == 1
    stats = client.get("/v1/quality/stats", headers=admin).json()
    # accepted: every record on a data topic (the fixture's account ACC-1 and this trade)
    assert stats["totals"] == {"accepted": 2, "rejected": 1, "duplicate": 3}
    assert any(x["rule"] == "trade.quantity.positive" for x in stats["by_rule"])
    assert b"hub_ingest_records_total" in client.get("/metrics", headers=admin).content


def test_quality_stats_come_from_the_log(client: TestClient, admin, hub: Hub) -> None:
    # (issue 11.6) stats counted only HTTP ingest since the server started.
    published = client.post(
        "/v1/topics/trades/events",
        json={"events": [{"value": {**T, "trade_id": f"P-{i}"}} for i in range(4)]},
        headers=admin,
    )
    assert published.status_code in (200, 201), published.json()
    events = [{"value": {**T, "trade_id": "I-1"}}, {"value": {**T, "quantity": "-1"}}]
    client.post("/v1/ingest/trades", json={"events": events}, headers=admin)
    stats = client.get("/v1/quality/stats", headers=admin).json()
    assert stats["totals"]["accepted"] == 6 and stats["totals"]["rejected"] == 1  # + ACC-1
    trades = next(x for x in stats["by_topic"] if x["topic"] == "trades")
    assert (trades["accepted"], trades["rejected"]) == (5, 1)
    assert stats["by_rule"] == [{"topic": "trades", "rule": "trade.quantity.positive", "count": 1}]
    # A restart keeps them: a fresh fold over the same log gives the same counts.
    from ingest.stats import QualityStats

    fresh = QualityStats(hub.log, hub.registry).snapshot()
    assert (fresh["accepted"], fresh["rejected"], fresh["by_rule"]) == (6, 1, stats["by_rule"])


def test_ndjson_keeps_bad_lines_byte_exact(client: TestClient, admin, hub: Hub) -> None:
    bad = b'{"value": {"trade_id": "\xff"}}'
    body = json.dumps({"value": T}).encode() + b"\n" + bad + b"\n"
    r = client.post(
        "/v1/ingest/trades",
        content=body,
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    shown = client.get("/v1/quarantine/0", headers=admin).json()
    assert base64.b64decode(shown["original_base64"]) == bad
    assert shown["reason_code"] == "not_utf8"
    # a body that is not JSON at all fails the request: there is nothing per record
    r = client.post("/v1/ingest/trades", content=b"\xff\xfe", headers=admin)
    assert r.status_code == 422 and r.json()["reason"] == "malformed_json"


def test_ndjson_and_json_batches_accept_bare_records(client: TestClient, admin) -> None:
    # (issue 11.4) bare records (no "value" envelope) were all quarantined with HTTP 200.
    lines = [
        json.dumps({**T, "trade_id": "B-1"}),
        json.dumps({"value": {**T, "trade_id": "B-2"}, "key": "k"}),  # an envelope still works
        json.dumps({**T, "trade_id": "B-3", "quantity": "0"}),  # a bare record failing a rule
        json.dumps([1, 2]),
        json.dumps({"value": "not a record"}),
    ]
    r = client.post(
        "/v1/ingest/trades",
        content="\n".join(lines).encode(),
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 3), body
    reasons = {x["index"]: (x["rule_id"], x["reason"]) for x in body["rejections"]}
    assert reasons[2][0] == "trade.quantity.positive"
    assert reasons[3][1] == (
        'Event 3 must be a JSON object: the record itself, or an envelope whose "value" is the '
        "record (got a JSON list)."
    )
    assert 'got "value" of type str' in reasons[4][1]
    r = client.post("/v1/ingest/trades", json={"events": [{**T, "trade_id": "B-4"}]}, headers=admin)
    assert r.json()["accepted"] == 1


def test_avro_route_documents_its_framing(client: TestClient, admin) -> None:
    ops = client.get("/openapi.json", headers=admin).json()["paths"]
    avro = ops["/v1/ingest/{topic}/avro"]["post"]["description"]
    assert "4-byte big-endian" in avro and "magic byte 0" in avro
    assert "bare record" in ops["/v1/ingest/{topic}"]["post"]["description"]


def test_wire_format_and_schema_evolution(client: TestClient, admin, hub: Hub) -> None:
    v1_id = hub.registry.get_version("trades-value", "latest").id
    v1 = hub.registry.parsed(v1_id)
    s2 = json.loads(schema_text("hub.trading.TradeExecuted"))
    s2["fields"].append({"name": "strategy", "type": "string", "default": "none"})
    v2_id = hub.registry.register("trades-value", json.dumps(s2)).id
    v2 = hub.registry.parsed(v2_id)
    old = serde.encode(v1_id, v1, serde.from_json({**T, "trade_id": "T-old"}, v1.parsed))
    new = serde.encode(
        v2_id, v2, serde.from_json({**T, "trade_id": "T-new", "strategy": "x"}, v2.parsed)
    )
    # an unrelated schema registered elsewhere: its writer is incompatible with the reader
    other = hub.registry.register(
        "other-value",
        json.dumps(
            {
                "type": "record",
                "name": "hub.trading.TradeExecuted",
                "fields": [{"name": "trade_id", "type": "long"}],
            }
        ),
    ).id
    bad = serde.encode(other, hub.registry.parsed(other), {"trade_id": 5})
    r = client.post(
        "/v1/ingest/trades/avro", content=frame(old, new, bad, b"\x00\x00"), headers=admin
    )
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 2), body
    reasons = {x["index"]: x for x in body["rejections"]}
    assert reasons[2]["reason_code"] == "incompatible_schema" and "trade_id" in reasons[2]["reason"]
    # v1 written, read as v2 (the latest): the old record was resolved and re-encoded as v2
    stored = [r for p in range(3) for r in hub.log.read("trades", p, 0, 10)]
    by_id = {}
    for s in stored:
        sid, _ = serde.split_wire(s.value)
        by_id[serde.decode(s.value, hub.registry.parsed(sid))["trade_id"]] = (sid, s)
    assert by_id["T-old"][0] == v2_id
    assert by_id["T-new"][1].value == new  # latest writer: kept byte for byte
    # and v2 read with the v1 reader (forward): the new field is dropped
    assert "strategy" not in serde.decode(new, v2, v1)
    r = client.post("/v1/ingest/trades/avro", content=b"\x00\x00\x00\x09abc", headers=admin)
    assert r.status_code == 422 and r.json()["reason"] == "malformed_frame"


def test_replay_after_a_rule_fix_and_rules_are_config_events(
    client: TestClient, admin, hub: Hub
) -> None:
    r = client.post(
        "/v1/ingest/trades",
        json={"events": [{"value": {**T, "instrument": "lower-case"}}]},
        headers=admin,
    )
    assert r.json()["rejections"][0]["rule_id"] == "trade.instrument.format"
    listed = client.get("/v1/quarantine", headers=admin).json()["records"]
    assert listed[0]["rule_id"] == "trade.instrument.format"
    rules = client.get("/v1/rules/trades-value", headers=admin).json()
    assert rules["version"] == "shipped"
    rules["rules"] = [x for x in rules["rules"] if x["id"] != "trade.instrument.format"]
    put = client.put("/v1/rules/trades-value", json={"rules": rules["rules"]}, headers=admin)
    assert put.status_code == 200 and put.json()["version"].startswith("hub.config@")
    changes = hub.reader.read("hub.config", 0, 0, 100)
    assert any(c["value"]["key"] == "quality.rules.trades-value" for c in changes)
    assert client.get("/v1/quarantine", headers=admin).json()["records"][0]["status"] == "pending"
    out = client.post("/v1/quarantine/replay", json={"offsets": [0]}, headers=admin).json()
    assert out["trades"]["accepted"] == 1
    # (issue 11.5) the entry is marked replayed, with where it landed...
    (entry,) = client.get("/v1/quarantine", headers=admin).json()["records"]
    assert entry["status"] == "replayed"
    landed = entry["replayed_to"]
    assert landed["topic"] == "trades" and landed["outcome"] == "accepted"
    stored = hub.log.read("trades", landed["partition"], landed["offset"], 1)[0]
    assert dict(stored.headers)["ce_id"].decode() == entry["event_id"]
    # ...and replaying it again is refused, naming that offset (it was a silent duplicate).
    again = client.post("/v1/quarantine/replay", json={"offsets": [0]}, headers=admin)
    assert again.status_code == 422 and again.json()["reason"] == "already_replayed"
    assert (
        f"on topic 'trades' partition {landed['partition']} offset {landed['offset']}"
        in again.json()["message"]
    ), again.json()
    bad = client.put("/v1/rules/trades-value", json={"rules": [{"id": "x"}]}, headers=admin)
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_rules"


def test_trades_for_unknown_accounts_are_quarantined_by_the_ref_rule(
    client: TestClient, admin, hub: Hub, tmp_path
) -> None:
    # (issue 11.8) a trade for an account that does not exist (A1) was accepted.
    r = client.post(
        "/v1/ingest/trades",
        json={"events": [{**T, "trade_id": "R-1", "account_id": "A1"}, {**T, "trade_id": "R-2"}]},
        headers=admin,
    ).json()
    assert (r["accepted"], r["rejected"]) == (1, 1)
    (rej,) = r["rejections"]
    assert (rej["rule_id"], rej["field_path"]) == ("trade.account.known", "/account_id")
    assert "('A1') is not the key of any record on topic 'accounts'" in rej["reason"]
    # once the account is opened, the index catches up and the replay passes
    open_accounts(hub, ["A1"])
    (entry,) = client.get("/v1/quarantine", headers=admin).json()["records"]
    out = client.post("/v1/quarantine/replay", json={"offsets": [entry["offset"]]}, headers=admin)
    assert out.json()["trades"]["accepted"] == 1
    # the columnar Parquet path checks it too, and only the failing row goes row by row
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.files import publish_file

    rows = [
        {**T, "trade_id": f"PQ-{i}", "account_id": acc, "quantity": Decimal(1), "price": 1.5}
        for i, acc in enumerate(["A1", "NOBODY", "ACC-1"])
    ]
    for row in rows:
        row["executed_at"] = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    f = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), f)
    done = publish_file(hub.ingest, f, "trades")
    assert (done.result.accepted, done.result.rejected) == (2, 1)
    assert done.result.rejections[0].rule_id == "trade.account.known"
    assert done.result.rejections[0].index == 1
