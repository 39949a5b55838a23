"""s26 (trust): a refusal echoes a bounded prefix of the bad value, not the whole of it.

Session 25's red team: a decimal of thousands of digits was echoed whole in its refusal, so the
HTTP answer, the quarantine record's reason and the log line were each as large as the value (a
publisher could make every rejection 1 MB of text). Now every value a refusal echoes (ingest's
record conversion, the quality rules, CSV cells, registry and log arguments) shows at most 80
characters of it, then ``... (N characters)``; the path of the value is still named whole.
A number too large for a float is refused naming its path (it raised ``OverflowError``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.avro import serde
from core.avro.schema import parse_schema
from core.errors import SerializationError
from domain.quality import evaluate, parse_rule_set
from hub.bootstrap import Hub
from tests.adversarial._api import QUOTE, basic, issue_key, quiet_api

BOUND = 400  # characters: what a refusal with its path, a prefix and its fix needs
DIGITS = "9" * 5000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    with quiet_api(tmp_path / "d") as pair:
        yield pair


def test_a_decimal_of_thousands_of_digits_is_not_echoed_whole(
    api: tuple[Hub, TestClient],
) -> None:
    hub, c = api
    publisher = basic(issue_key(hub, "publisher", "pub", "acme"))
    r = c.post(
        "/v1/ingest/quotes",
        json={"events": [{"value": {**QUOTE, "bid": DIGITS}}]},
        headers=publisher,
    )
    assert r.status_code == 200, r.text[:500]
    rejection = r.json()["rejections"][0]
    reason = rejection["reason"]
    # main: a reason of 5,057 characters, the whole value
    assert len(reason) < BOUND, len(reason)
    assert reason.startswith("/bid: 9999") and "... (5000 characters)" in reason, reason
    assert "significant digits" in reason, reason
    assert len(r.text) < 2 * BOUND, len(r.text)
    quarantined = c.get("/v1/quarantine", headers=basic(issue_key(hub, "admin", "root")))
    assert quarantined.status_code == 200, quarantined.text[:500]
    [record] = [q for q in quarantined.json()["records"] if q["topic"] == "quotes"]
    assert record["reason"] == reason
    assert record["original_size"] > 5000  # the original bytes are kept whole


DEC = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
SCHEMA = {
    "type": "record",
    "name": "D",
    "fields": [
        {"name": "p", "type": DEC},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "u", "type": ["null", "long"]},
        {"name": "i", "type": "int"},
        {"name": "b", "type": "bytes"},
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "f", "type": "float"},
        {"name": "x", "type": "double"},
    ],
}
OK = {
    "p": "1.00",
    "e": "A",
    "t": "2026-01-01T00:00:00Z",
    "u": None,
    "i": 1,
    "b": "",
    "d": "2026-01-01",
    "f": 1.0,
    "x": 1.0,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("p", DIGITS),
        ("p", DIGITS + ".5"),
        ("p", "x" * 5000),
        ("p", int("9" * 4200)),
        ("e", "Z" * 5000),
        ("t", "2" * 5000),
        ("u", "9" * 5000),
        ("u", {"a": "9" * 5000}),
        ("i", int("9" * 4200)),
        ("i", "9" * 5000),
        ("b", "!" * 5000),
        ("d", "1" * 5000),
        ("f", [1] * 3000),
        ("f", 10**400),
        ("x", 10**400),
        ("f", 10**39),
        ("zz" * 3000, 1),
    ],
    ids=[
        "decimal-digits",
        "decimal-fraction",
        "decimal-text",
        "decimal-int",
        "enum",
        "timestamp",
        "union",
        "union-object",
        "int-huge",
        "int-text",
        "bytes",
        "date",
        "float-list",
        "float-past-double",
        "double-past-double",
        "float-past-float32",
        "unknown-field",
    ],
)
def test_every_record_refusal_is_bounded_and_names_the_path(field: str, value: Any) -> None:
    parsed = parse_schema(json.dumps(SCHEMA)).parsed
    with pytest.raises(SerializationError) as err:
        serde.from_json({**OK, field: value}, parsed)
    message = err.value.message
    assert len(message) < BOUND, (len(message), message[:200])
    assert message.startswith(f"/{field}:" if len(field) == 1 else "/:"), message


def test_a_quality_rule_echoes_a_bounded_value() -> None:
    rules = parse_rule_set(
        {
            "subject": "t-value",
            "rules": [
                {"id": "code", "kind": "regex", "field": "code", "pattern": "^[A-Z]{3}$"},
                {"id": "side", "kind": "enum", "field": "side", "values": ["buy", "sell"]},
            ],
        },
    )
    long = "q" * 10_000
    violations = evaluate(rules, {"code": long, "side": long}, datetime.now(UTC))
    assert len(violations) == 2
    for v in violations:
        assert len(v.message) < BOUND, (len(v.message), v.message[:200])
        assert "... (10000 characters)" in v.message, v.message
