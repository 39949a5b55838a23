"""The Debezium change -> hub record mapping (``ingest.debezium.change_record``), pure: the
shapes Debezium 3.6 writes through Connect's JsonConverter (captured from a real run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from ingest.debezium import DebeziumSourceConfig, change_record

ROW = {"account_id": "a1", "email": "ann@x.com", "balance": "10.50"}
DECLARED = frozenset({"op", "lsn", "tx_id", "committed_at", "before", "after"})
AT = {"topic": "cdc.public.accounts", "partition": 0, "offset": 7}


def change(op: str, before: object, after: object, lsn: int = 26531096) -> bytes:
    source = {
        "version": "3.6.1.Final",
        "connector": "postgresql",
        "name": "cdc",
        "ts_ms": 1796198391899,
        "ts_us": 1796198391899921,
        "snapshot": "false",
        "db": "hub",
        "schema": "public",
        "table": "accounts",
        "txId": 739,
        "lsn": lsn,
    }
    return json.dumps({"before": before, "after": after, "source": source, "op": op}).encode()


KEY = b'{"account_id":"a1"}'


def test_an_update_keeps_both_images_lsn_commit_time_and_only_declared_metadata() -> None:
    raw = change("u", ROW, {**ROW, "balance": "11.00"})
    rec = change_record(KEY, raw, DECLARED, AT)
    assert rec is not None and rec.error is None
    assert rec.value == {
        "op": "u",
        "lsn": 26531096,
        "tx_id": 739,
        "committed_at": "2026-12-02T07:59:51.899921Z",
        "before": ROW,
        "after": {**ROW, "balance": "11.00"},
    }  # no source_table: the schema does not declare it
    assert rec.key == "a1" and rec.original == raw
    assert rec.occurred_at == "2026-12-02T07:59:51.899921Z"
    assert rec.position == {**AT, "lsn": 26531096}


def test_the_event_id_is_the_change_itself_so_a_re_emitted_change_is_a_duplicate() -> None:
    a = change_record(KEY, change("c", None, ROW), DECLARED, AT)
    again = change_record(KEY, change("c", None, ROW), DECLARED, {**AT, "offset": 99})
    other_lsn = change_record(KEY, change("c", None, ROW, lsn=26531264), DECLARED, AT)
    other_op = change_record(KEY, change("d", ROW, None), DECLARED, AT)
    other_key = change_record(b'{"account_id":"a2"}', change("c", None, ROW), DECLARED, AT)
    assert a is not None and again is not None
    assert a.event_id == again.event_id  # same change read at another Kafka offset
    ids = {r.event_id for r in (a, other_lsn, other_op, other_key) if r is not None}
    assert len(ids) == 4  # snapshot rows share an LSN: the key tells them apart


def test_a_composite_key_is_canonical_json() -> None:
    rec = change_record(b'{"b":2,"a":1}', change("c", None, ROW), DECLARED, AT)
    assert rec is not None and rec.key == '{"a":1,"b":2}'


def test_a_tombstone_is_skipped() -> None:
    assert change_record(KEY, None, DECLARED, AT) is None


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (b"\xff not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"schema": {}, "payload": {}}', "schemas.enable=false"),
        (b'{"op": "x", "source": {}}', "not a Debezium change event"),
        (
            json.dumps({"op": "c", "before": None, "after": None, "source": {"lsn": 1}}).encode(),
            "no row image",
        ),
        (json.dumps({"op": "c", "after": ROW, "source": {"lsn": "1"}}).encode(), "source.lsn"),
    ],
)
def test_what_is_not_a_change_is_quarantined_with_its_bytes(value: bytes, names: str) -> None:
    rec = change_record(KEY, value, DECLARED, AT)
    assert rec is not None and rec.error is not None and names in rec.error
    assert rec.error_code == "not_a_change_event" and rec.original == value
    assert rec.position == AT


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="HUB_KAFKA_BOOTSTRAP_SERVERS"):
        DebeziumSourceConfig(name="cdc", source_topic="t", topic="x")
    with pytest.raises(ConfigError, match="batch_size 0"):
        DebeziumSourceConfig(
            name="cdc", source_topic="t", topic="x", bootstrap_servers="b:1", batch_size=0
        )


def test_follow_is_refused_for_sources_that_end(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    cfg = tmp_path / "db.yaml"
    cfg.write_text("kind: db\nurl: sqlite:///x.db\ntable: t\ntopic: trades\ncursor: c\nkey: k\n")
    r = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path / "d"), "connector", "run", "x", "--config", str(cfg),
               "--follow"],
    )  # fmt: skip
    assert r.exit_code == 1 and "--follow applies to kind: debezium only" in r.output
