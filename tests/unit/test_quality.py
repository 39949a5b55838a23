"""Quality rules as data: every kind, parsing errors, pure evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.quality import (
    RuleError,
    compile_rules,
    evaluate,
    natural_key,
    parse_rule,
    parse_rule_set,
    ref_violation,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def rs(*rules):
    return parse_rule_set({"subject": "s", "rules": list(rules)})


def ids(rule_set, record):
    return [(v.rule_id, v.field_path) for v in evaluate(rule_set, record, NOW)]


def test_required_range_regex_enum() -> None:
    r = rs(
        {"id": "req", "kind": "required", "fields": ["a", "b/c"]},
        {"id": "rng", "kind": "range", "field": "q", "min": "0", "min_exclusive": True, "max": 10},
        {"id": "re", "kind": "regex", "field": "s", "pattern": "^[A-Z]{2}$"},
        {"id": "en", "kind": "enum", "field": "e", "values": ["X", "Y"]},
    )
    good = {"a": 1, "b": {"c": "x"}, "q": Decimal("10"), "s": "GB", "e": "X"}
    assert ids(r, good) == []
    assert ids(r, {**good, "a": ""}) == [("req", "/a")]
    assert ids(r, {**good, "b": {}}) == [("req", "/b/c")]
    assert ids(r, {**good, "q": Decimal("0")}) == [("rng", "/q")]
    assert ids(r, {**good, "q": Decimal("10.01")}) == [("rng", "/q")]
    assert ids(r, {**good, "s": "gbr"}) == [("re", "/s")]
    assert ids(r, {**good, "e": "Z"}) == [("en", "/e")]
    # absent optional fields pass every rule but required
    assert ids(r, {"a": 1, "b": {"c": 1}}) == []


def test_compare_and_freshness() -> None:
    r = rs(
        {"id": "cmp", "kind": "compare", "left": "settled_at", "op": ">=", "right": "initiated_at"},
        {
            "id": "fresh",
            "kind": "freshness",
            "field": "settled_at",
            "max_age": "1h",
            "max_future": "5m",
        },
    )
    t = NOW - timedelta(minutes=10)
    assert ids(r, {"settled_at": t, "initiated_at": t - timedelta(seconds=1)}) == []
    [(rid, path)] = ids(r, {"settled_at": t, "initiated_at": t + timedelta(seconds=1)})
    assert (rid, path) == ("cmp", "/settled_at")
    late = evaluate(r, {"settled_at": NOW - timedelta(hours=2)}, NOW)
    assert [v.rule_id for v in late] == ["fresh"] and "late" in late[0].message
    assert ids(r, {"settled_at": NOW + timedelta(minutes=6)}) == [("fresh", "/settled_at")]


def test_unique_is_stateful_and_gives_natural_keys() -> None:
    rule = parse_rule({"id": "u", "kind": "unique", "fields": ["a", "b"], "window": "2h"})
    assert rule.window == timedelta(hours=2)
    assert natural_key(rule, {"a": 1, "b": "x"}) == "1\x1fx"
    assert natural_key(rule, {"a": 1}) is None
    assert evaluate(rs(rule.as_dict()), {"a": 1, "b": 2}, NOW) == []


def test_ref_rules_parse_round_trip_and_are_left_to_the_ingest() -> None:
    rule = parse_rule({"id": "k", "kind": "ref", "field": "account_id", "topic": "accounts"})
    assert (rule.topic, rule.field) == ("accounts", "account_id")
    assert parse_rule(rule.as_dict()) == rule
    ruleset = rs(rule.as_dict())
    assert ruleset.refs == (rule,)
    assert evaluate(ruleset, {"account_id": "NOPE"}, NOW) == []  # stateful: not checked here
    assert compile_rules(ruleset)({"account_id": "NOPE"}, NOW) == []
    v = ref_violation(rule, "A1")
    assert (v.rule_id, v.field_path) == ("k", "/account_id")
    assert v.message == (
        "/account_id ('A1') is not the key of any record on topic 'accounts': publish that "
        "record to 'accounts' first, or correct the value."
    )


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"id": "r", "kind": "ref", "field": "x"}, "needs 'topic'"),
        ({"id": "r", "kind": "ref", "fields": ["x", "y"], "topic": "t"}, "checks one 'field'"),
        ({"id": "r", "kind": "enum", "field": "x", "values": [1], "topic": "t"}, "ref rules only"),
        ({"kind": "range", "field": "x", "min": 1}, "needs an 'id'"),
        ({"id": "r", "kind": "between", "field": "x"}, "kind 'between'"),
        ({"id": "r", "kind": "range", "field": "x"}, "needs 'min'"),
        ({"id": "r", "kind": "regex", "field": "x", "pattern": "("}, "does not compile"),
        ({"id": "r", "kind": "compare", "left": "a", "op": "=~", "right": "b"}, "op '=~'"),
        ({"id": "r", "kind": "freshness", "field": "t", "max_age": "soon"}, "not a duration"),
        ({"id": "r", "kind": "enum", "field": "x", "values": []}, "non-empty list"),
        ({"id": "r", "kind": "required", "field": "x", "colour": 1}, "unknown attribute"),
    ],
)
def test_bad_rules_are_named(bad, words) -> None:
    with pytest.raises(RuleError, match=words):
        parse_rule(bad)


def test_rule_sets_round_trip_and_reject_duplicate_ids() -> None:
    r = rs({"id": "a", "kind": "range", "field": "x", "max": "5", "max_exclusive": True})
    assert parse_rule_set(r.as_dict()) == r
    with pytest.raises(RuleError, match="appear twice"):
        rs(
            {"id": "a", "kind": "required", "field": "x"},
            {"id": "a", "kind": "required", "field": "y"},
        )


def test_shipped_rule_sets_parse() -> None:
    from ingest.rules import shipped_rule_sets

    shipped = shipped_rule_sets()
    assert {"trades-value", "quotes-value", "hub.payments.PaymentSettled"} <= set(shipped)
