"""The `hub` CLI on a data folder: keys, schemas, topics, tail, and its error exits."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from core.events import OutgoingEvent
from domain.catalog import schema_text
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args


def run(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*admin_args(data), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_keys_create_prints_a_working_key(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "keys", "create", "--role", "analyst")
    assert code == 0
    token = out.strip()
    key_id, secret = token.split(":")
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path))
    try:
        assert h.keys.verify(key_id, secret).roles == {"analyst"}
    finally:
        h.close()
    code, out, _ = run(tmp_path, "keys", "list")
    assert key_id in out
    assert secret not in out
    code, _, err = run(tmp_path, "keys", "create", "--role", "wizard")
    assert code == 1
    assert "wizard" in err


def test_schema_register_check_list(tmp_path: Path) -> None:
    v1 = json.loads(schema_text("hub.trading.TradeExecuted"))
    v2 = {**v1, "fields": [*v1["fields"], {"name": "strategy", "type": "string", "default": ""}]}
    bad = {
        **v1,
        "fields": [
            f
            if f["name"] != "price"
            else {
                "name": "price",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6},
            }
            for f in v1["fields"]
        ],
    }
    (tmp_path / "v2.avsc").write_text(json.dumps(v2))
    (tmp_path / "bad.avsc").write_text(json.dumps(bad))
    code, out, _ = run(tmp_path, "schema", "check", "trades-value", str(tmp_path / "v2.avsc"))
    assert code == 0, out
    assert "compatible" in out
    # Confluent's default (Avro Java) ignores logical types: a decimal scale change passes...
    code, out, _ = run(tmp_path, "schema", "check", "trades-value", str(tmp_path / "bad.avsc"))
    assert code == 0, out
    # ...and the opt-in strict mode names the field and the rule.
    strict = {"HUB_REGISTRY_STRICT_LOGICAL_TYPES": "true"}
    bad_avsc = str(tmp_path / "bad.avsc")
    code, out, err = run(tmp_path, "schema", "check", "trades-value", bad_avsc, env=strict)
    assert code == 1
    assert "price" in err
    assert "SCALE" in err.upper()
    code, out, _ = run(tmp_path, "schema", "register", "trades-value", str(tmp_path / "v2.avsc"))
    assert code == 0
    assert json.loads(out)["version"] == 2
    code, out, err = run(tmp_path, "schema", "register", "trades-value", bad_avsc, env=strict)
    assert code == 1
    assert "incompatible" in err.lower()
    code, out, _ = run(tmp_path, "schema", "list")
    assert "trades-value\tv2" in out
    assert "hub.payments.PaymentSettled\tv1" in out


def test_topics_and_tail(tmp_path: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path))
    try:
        h.publisher.publish(
            "quotes",
            [
                OutgoingEvent(
                    value={
                        "instrument": f"I{i}",
                        "bid": "1.5",
                        "ask": "1.6",
                        "bid_size": "10",
                        "ask_size": "12",
                        "currency": "EUR",
                        "quoted_at": "2026-11-25T09:00:00Z",
                    }
                )
                for i in range(5)
            ],
            producer="feed",
        )
    finally:
        h.close()
    code, out, _ = run(tmp_path, "topics")
    assert code == 0
    assert "quotes\tpartitions=3\tend_offsets=" in out
    code, out, _ = run(tmp_path, "tail", "quotes", "-n", "100")
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 5
    assert {x["value"]["instrument"] for x in lines} == {f"I{i}" for i in range(5)}
    assert lines[0]["value"]["bid"] == "1.50000000"


def test_tail_prints_exactly_n_records_and_pages_past_1000(tmp_path: Path) -> None:
    # (issue 11.7) -n 2/3/5/10 printed 3/5/10/23 lines (N per partition, markers counted), and
    # --offset 0 -n 100000 stopped silently at 1,000.
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path))
    quote = {
        "bid": "1.5",
        "ask": "1.6",
        "bid_size": "10",
        "ask_size": "12",
        "currency": "EUR",
        "quoted_at": "2026-11-25T09:00:00Z",
    }
    try:
        for batch in range(5):  # several transactions: markers take offsets in every partition
            h.publisher.publish(
                "quotes",
                [OutgoingEvent(value={**quote, "instrument": f"I{batch}-{i}"}) for i in range(500)],
                producer="feed",
            )
        time.sleep(0.01)  # a later broker timestamp than every other record
        h.publisher.publish(
            "quotes", [OutgoingEvent(value={**quote, "instrument": "LAST"})], producer="feed"
        )
    finally:
        h.close()
    for n in (0, 1, 2, 3, 5, 10, 23):
        code, out, _ = run(tmp_path, "tail", "quotes", "-n", str(n))
        assert code == 0
        lines = [json.loads(x) for x in out.splitlines()]
        assert len(lines) == n
        if n:
            assert lines[-1]["value"]["instrument"] == "LAST"  # the latest record, last
    code, out, _ = run(tmp_path, "tail", "quotes", "--offset", "0", "-n", "100000")
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 2501
    assert len({(x["partition"], x["offset"]) for x in lines}) == 2501
    code, out, _ = run(tmp_path, "tail", "quotes", "--offset", "0", "-n", "1500")
    assert len(out.splitlines()) == 1500
    code, out, _ = run(tmp_path, "tail", "quotes", "--partition", "1", "-n", "7")
    assert [json.loads(x)["partition"] for x in out.splitlines()] == [1] * 7
    code, _, err = run(tmp_path, "tail", "nope")
    assert code == 1
    assert "nope" in err


def test_schema_register_refuses_internal_subjects_as_the_api_does(tmp_path: Path) -> None:
    # A data-folder admin must not be able to do through the CLI what the registry API refuses
    # every role: a version under an internal subject would change what the hub's own services
    # write with (or, under _schemas, shadow the registry's own log).
    record = {"type": "record", "name": "Thing", "namespace": "acme", "fields": []}
    (tmp_path / "thing.avsc").write_text(json.dumps(record))
    avsc = str(tmp_path / "thing.avsc")
    for subject in ("hub.audit-value", "HUB.keys-value", "_schemas", "flink.x-value"):
        code, out, err = run(tmp_path, "schema", "register", subject, avsc)
        assert code == 1, (subject, out)
        assert "internal topic" in err, err
        assert out == ""
    code, out, _ = run(tmp_path, "schema", "list")
    for subject in ("hub.audit-value", "HUB.keys-value", "_schemas", "flink.x-value"):
        assert f"{subject}\t" not in out
    # A domain subject still registers.
    code, out, err = run(tmp_path, "schema", "register", "acme.things-value", avsc)
    assert code == 0, err
    assert json.loads(out)["version"] == 1
