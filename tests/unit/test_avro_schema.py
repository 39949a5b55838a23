"""parse_schema: validation messages, the canonical identity form, references, fastavro use."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.avro.schema import (
    ArrayNode,
    RecordNode,
    UnionNode,
    describe,
    parse_schema,
)
from core.errors import InvalidSchema


def js(obj: Any) -> str:
    return json.dumps(obj)


def record(fields: list[dict[str, Any]], name: str = "Trade", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "com.hub", "fields": fields, **extra}


def dec(precision: Any, scale: Any = None, base: str = "bytes") -> dict[str, Any]:
    out: dict[str, Any] = {"type": base, "logicalType": "decimal", "precision": precision}
    if scale is not None:
        out["scale"] = scale
    return out


def roundtrip(parsed: Any, datum: Any) -> Any:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, datum)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, parsed, parsed)


# ----------------------------------------------------------------------------------------------
# ParsedSchema basics and the canonical form


def test_parsed_schema_fields() -> None:
    text = js(record([{"name": "id", "type": "long"}]))
    s = parse_schema(text)
    assert s.text == text
    assert s.name == "com.hub.Trade"
    assert s.canonical == (
        '{"type":"record","name":"com.hub.Trade","fields":[{"name":"id","type":"long"}]}'
    )
    import hashlib

    assert s.fingerprint == hashlib.sha256(s.canonical.encode()).hexdigest()
    assert isinstance(s.normalized, RecordNode)
    assert s.named_types.keys() == {"com.hub.Trade"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.text = "x"  # type: ignore[misc]


def test_primitive_and_union_top_level_have_no_name() -> None:
    assert parse_schema('"string"').name is None
    assert parse_schema('["null", "string"]').name is None
    assert parse_schema('{"type": "int"}').canonical == '"int"'


def test_canonical_ignores_whitespace_key_order_and_namespace_spelling() -> None:
    a = parse_schema(
        '{"namespace": "com.hub", "name": "Trade", "type": "record",\n'
        '  "fields": [{"type": {"type": "long"}, "name": "id"}]}'
    )
    b = parse_schema(
        '{"type":"record","name":"com.hub.Trade","fields":[{"name":"id","type":"long"}]}'
    )
    assert a.canonical == b.canonical
    assert a.fingerprint == b.fingerprint
    assert a == b and hash(a) == hash(b)


def test_canonical_keeps_field_order() -> None:
    a = parse_schema(js(record([{"name": "a", "type": "int"}, {"name": "b", "type": "int"}])))
    b = parse_schema(js(record([{"name": "b", "type": "int"}, {"name": "a", "type": "int"}])))
    assert a.fingerprint != b.fingerprint


def test_canonical_keeps_decimal_parameters_defaults_docs_and_custom_attributes() -> None:
    base = [{"name": "amount", "type": dec(10, 2)}]
    a = parse_schema(js(record(base)))
    b = parse_schema(js(record([{"name": "amount", "type": dec(12, 4)}])))
    assert a.fingerprint != b.fingerprint  # unlike Avro's Parsing Canonical Form

    with_attrs = parse_schema(
        js(
            record(
                [
                    {
                        "name": "iban",
                        "type": "string",
                        "doc": "account",
                        "default": "",
                        "classification": "pii",
                        "x-meta": {"b": 1, "a": [2, {"d": 0, "c": 1}]},
                    }
                ],
                doc="a trade",
                owner="risk",
            )
        )
    )
    canon = json.loads(with_attrs.canonical)
    f = canon["fields"][0]
    assert f["classification"] == "pii"
    assert f["doc"] == "account" and f["default"] == ""
    assert list(f["x-meta"]) == ["a", "b"]  # nested custom objects get sorted keys
    assert canon["owner"] == "risk" and canon["doc"] == "a trade"
    assert list(f)[:3] == ["name", "type", "default"]
    # Custom attributes also reach fastavro's parsed form (e.g. for later masking).
    parsed = with_attrs.parsed
    assert isinstance(parsed, dict)
    assert parsed["fields"][0]["classification"] == "pii"


def test_decimal_scale_defaults_to_zero_in_canonical_form() -> None:
    a = parse_schema(js(dec(10)))
    b = parse_schema(js(dec(10, 0)))
    assert a.canonical == b.canonical
    assert '"scale":0' in a.canonical


def test_custom_attributes_on_primitive_kept_but_do_not_change_reading() -> None:
    s = parse_schema(js({"type": "string", "classification": "pii"}))
    assert json.loads(s.canonical) == {"type": "string", "classification": "pii"}
    assert s.normalized is parse_schema('"string"').normalized


def test_unknown_logical_type_is_kept_and_ignored() -> None:
    s = parse_schema(js({"type": "string", "logicalType": "iban"}))
    assert json.loads(s.canonical)["logicalType"] == "iban"
    assert s.normalized.logical is None


def test_aliases_of_named_types_become_full_names() -> None:
    s = parse_schema(js(record([], aliases=["OldTrade", "legacy.Trade"])))
    assert json.loads(s.canonical)["aliases"] == ["com.hub.OldTrade", "legacy.Trade"]
    assert isinstance(s.normalized, RecordNode)
    assert s.normalized.aliases == {"com.hub.OldTrade", "legacy.Trade"}


def test_null_namespace_type_nested_in_namespaced_record_stays_explicit() -> None:
    s = parse_schema(
        js(
            record(
                [
                    {
                        "name": "x",
                        "type": {"type": "enum", "name": "X", "namespace": "", "symbols": ["A"]},
                    }
                ]
            )
        )
    )
    field_type = json.loads(s.canonical)["fields"][0]["type"]
    assert field_type["name"] == "X" and field_type["namespace"] == ""


def test_describe() -> None:
    s = parse_schema(
        js(
            record(
                [
                    {"name": "a", "type": dec(18, 2)},
                    {"name": "b", "type": {"type": "array", "items": ["null", "long"]}},
                    {
                        "name": "c",
                        "type": {"type": "fixed", "name": "F", "size": 8, **dec(10, 2, "fixed")},
                    },
                ]
            )
        )
    )
    assert isinstance(s.normalized, RecordNode)
    types = [describe(f.type) for f in s.normalized.fields]
    assert types == [
        "bytes decimal(18,2)",
        "array<union[null, long]>",
        "fixed com.hub.F(8) decimal(10,2)",
    ]


# ----------------------------------------------------------------------------------------------
# fastavro-parsed form


def test_parsed_form_round_trips_with_fastavro_including_logical_types() -> None:
    s = parse_schema(
        js(
            record(
                [
                    {"name": "amount", "type": dec(10, 2)},
                    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                    {"name": "next", "type": ["null", "Trade"], "default": None},
                ]
            )
        )
    )
    datum = {"amount": Decimal("12.34"), "at": 1_700_000_000_000, "next": None}
    out = roundtrip(s.parsed, datum)
    assert out["amount"] == Decimal("12.34")


# ----------------------------------------------------------------------------------------------
# References

MONEY = js(
    {
        "type": "record",
        "name": "Money",
        "namespace": "com.hub.common",
        "fields": [{"name": "units", "type": dec(18, 2)}, {"name": "ccy", "type": "Currency"}],
    }
)
CURRENCY = js(
    {"type": "enum", "name": "Currency", "namespace": "com.hub.common", "symbols": ["EUR", "USD"]}
)


def test_references_in_dependency_order_resolve_and_encode() -> None:
    refs = [("com.hub.common.Currency", CURRENCY), ("com.hub.common.Money", MONEY)]
    s = parse_schema(js(record([{"name": "price", "type": "com.hub.common.Money"}])), refs)
    assert s.references == tuple(refs)
    assert s.named_types.keys() == {"com.hub.Trade"}
    # The canonical form names the referenced type, it does not inline it.
    assert json.loads(s.canonical)["fields"][0]["type"] == "com.hub.common.Money"
    out = roundtrip(s.parsed, {"price": {"units": Decimal("1.50"), "ccy": "EUR"}})
    assert out == {"price": {"units": Decimal("1.50"), "ccy": "EUR"}}


def test_same_text_with_different_references_is_not_equal() -> None:
    text = js(record([{"name": "c", "type": "com.hub.common.Currency"}]))
    a = parse_schema(text, [("c", CURRENCY)])
    other = js({"type": "enum", "name": "com.hub.common.Currency", "symbols": ["GBP"]})
    b = parse_schema(text, [("c", other)])
    assert a.fingerprint == b.fingerprint and a != b


def test_references_out_of_order_fail_with_reference_name() -> None:
    with pytest.raises(InvalidSchema, match=r"reference 'com.hub.common.Money': .*'Currency'"):
        parse_schema('"string"', [("com.hub.common.Money", MONEY), ("cur", CURRENCY)])


def test_missing_reference_is_an_unknown_type() -> None:
    with pytest.raises(InvalidSchema, match=r"unknown type 'com\.hub\.common\.Money'"):
        parse_schema(js(record([{"name": "price", "type": "com.hub.common.Money"}])))


def test_schema_that_is_just_a_referenced_name() -> None:
    s = parse_schema('"com.hub.common.Currency"', [("c", CURRENCY)])
    assert s.name == "com.hub.common.Currency"
    assert roundtrip(s.parsed, "USD") == "USD"


def test_redefining_a_referenced_type_is_rejected() -> None:
    with pytest.raises(InvalidSchema, match="duplicate definition of named type"):
        parse_schema(CURRENCY, [("c", CURRENCY)])


# ----------------------------------------------------------------------------------------------
# Recursive types


def test_recursive_and_mutually_recursive_types_parse() -> None:
    s = parse_schema(
        js(
            {
                "type": "record",
                "name": "Tree",
                "fields": [
                    {"name": "value", "type": "long"},
                    {
                        "name": "children",
                        "type": {
                            "type": "array",
                            "items": {
                                "type": "record",
                                "name": "Edge",
                                "fields": [{"name": "to", "type": "Tree"}],
                            },
                        },
                    },
                ],
            }
        )
    )
    root = s.normalized
    assert isinstance(root, RecordNode)
    children = root.fields[1].type
    assert isinstance(children, ArrayNode)
    edge = children.items
    assert isinstance(edge, RecordNode) and edge.fields[0].type is root
    # Every node gets a closed structural key, even inside the cycle.
    assert root.key is not None and edge.key is not None and children.key is not None
    datum = {"value": 1, "children": [{"to": {"value": 2, "children": []}}]}
    assert roundtrip(s.parsed, datum) == datum


def test_structural_key_of_identical_types_is_equal_across_schemas() -> None:
    a = parse_schema(js(record([{"name": "a", "type": dec(10, 2)}], doc="one")))
    b = parse_schema(js(record([{"name": "a", "type": dec(10, 2), "doc": "x"}], doc="two")))
    assert a.fingerprint != b.fingerprint
    assert a.normalized.key == b.normalized.key  # docs do not affect reading
    c = parse_schema(js(record([{"name": "a", "type": dec(10, 3)}])))
    assert a.normalized.key != c.normalized.key


def test_union_default_on_recursive_field() -> None:
    s = parse_schema(
        js(
            {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
            }
        )
    )
    node = s.normalized
    assert isinstance(node, RecordNode) and isinstance(node.fields[0].type, UnionNode)


# ----------------------------------------------------------------------------------------------
# Invalid schemas: each gets a specific message

INVALID: list[tuple[str, Any, str]] = [
    ("not json", "{bad", r"^schema is not valid JSON: .* line 1 column 2$"),
    ("duplicate json key", '{"type": "int", "type": "long"}', "duplicate key 'type'"),
    ("not a schema", "42", "a schema must be a type name"),
    ("unknown type", '"Foo"', "^the schema: unknown type 'Foo'"),
    (
        "unknown field type",
        record([{"name": "a", "type": "Money"}]),
        "^field 'a' of record 'com.hub.Trade': unknown type 'Money'",
    ),
    ("no type", {"name": "x"}, "schema object has no 'type'"),
    ("type is an object", {"type": {"type": "int"}}, "'type' of a schema object must be a string"),
    (
        "decimal precision zero",
        record([{"name": "amount", "type": dec(0)}]),
        "^field 'amount' of record 'com.hub.Trade': decimal precision must be a positive "
        "integer, got 0$",
    ),
    ("decimal precision missing", dec(None), "decimal precision must be a positive integer"),
    ("decimal precision bool", dec(True), "decimal precision must be a positive integer, got true"),
    ("decimal scale > precision", dec(4, 5), r"scale must be an integer from 0 to the precision"),
    ("decimal negative scale", dec(4, -1), r"got -1$"),
    (
        "decimal fixed too small",
        {"type": "fixed", "name": "F", "size": 4, **dec(10, 2, "fixed")},
        r"decimal precision 10 does not fit in a fixed of 4 bytes \(at most 9 digits\)",
    ),
    (
        "logical type on wrong base",
        {"type": "string", "logicalType": "date"},
        "logical type 'date' must annotate int, not string",
    ),
    (
        "timestamp on int",
        {"type": "int", "logicalType": "timestamp-millis"},
        "must annotate long, not int",
    ),
    (
        "duration wrong size",
        {"type": "fixed", "name": "D", "size": 8, "logicalType": "duration"},
        "needs a fixed of size 12",
    ),
    ("logicalType not a string", {"type": "int", "logicalType": 1}, "logicalType must be a string"),
    (
        "enum default not a symbol",
        {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"], "default": "HOLD"},
        "^enum 'Side': enum default \"HOLD\" is not among the symbols",
    ),
    ("duplicate symbol", {"type": "enum", "name": "E", "symbols": ["A", "A"]}, "duplicate symbol"),
    ("bad symbol", {"type": "enum", "name": "E", "symbols": ["1A"]}, "invalid symbol '1A'"),
    ("bad record name", record([], name="1Trade"), "invalid name 'com.hub.1Trade'"),
    ("bad namespace", {"type": "fixed", "name": "a-b.F", "size": 1}, "invalid name 'a-b.F'"),
    (
        "bad field name",
        record([{"name": "a b", "type": "int"}]),
        'field 0 has invalid name "a b"',
    ),
    ("bad alias", record([], aliases=["no-dash"]), "invalid alias 'no-dash'"),
    ("no name", {"type": "record", "fields": []}, "needs a non-empty string 'name'"),
    (
        "duplicate field",
        record([{"name": "a", "type": "int"}, {"name": "a", "type": "long"}]),
        "^record 'com.hub.Trade': duplicate field name 'a'$",
    ),
    (
        "duplicate named type",
        record(
            [
                {"name": "a", "type": {"type": "fixed", "name": "F", "size": 1}},
                {"name": "b", "type": {"type": "fixed", "name": "F", "size": 2}},
            ]
        ),
        "duplicate definition of named type 'com.hub.F'",
    ),
    ("primitive redefined", {"type": "fixed", "name": "int", "size": 1}, "redefines the primitive"),
    ("fields not a list", {"type": "record", "name": "R"}, "'fields' must be a list"),
    ("fixed bad size", {"type": "fixed", "name": "F", "size": -1}, "size must be a non-negative"),
    ("array no items", {"type": "array"}, "array schema has no 'items'"),
    ("union duplicate", ["null", "int", "null"], "union branches 0 and 2 are both 'null'"),
    ("union in union", ["null", ["int"]], "union branch 1 is itself a union"),
    (
        "empty union with a default",
        record([{"name": "x", "type": [], "default": None}]),
        "an empty union has no values, so no default fits it",
    ),
    (
        "bad order",
        record([{"name": "a", "type": "int", "order": "up"}]),
        "order must be 'ascending', 'descending' or 'ignore'",
    ),
    (
        "int default is a string",
        record([{"name": "qty", "type": "int", "default": "1"}]),
        "^field 'qty' of record 'com.hub.Trade': default \"1\" does not match type int: "
        "expected an integer",
    ),
    (
        "int default out of range",
        record([{"name": "qty", "type": "int", "default": 2**31}]),
        "expected an integer from -2147483648 to 2147483647",
    ),
    (
        "boolean default for long",
        record([{"name": "qty", "type": "long", "default": True}]),
        "does not match type long",
    ),
    (
        "decimal default is a number",
        record([{"name": "fee", "type": dec(18, 2), "default": 0}]),
        r"default 0 does not match type bytes decimal\(18,2\): expected a string of characters",
    ),
    (
        "union default not first branch",
        record([{"name": "note", "type": ["string", "null"], "default": None}]),
        r"must match the union's first branch \(string\).*reorder the union",
    ),
    (
        "enum field default not a symbol",
        record(
            [
                {
                    "name": "side",
                    "type": {"type": "enum", "name": "Side", "symbols": ["BUY"]},
                    "default": "SELL",
                }
            ]
        ),
        r"expected one of the symbols \['BUY'\]",
    ),
    (
        "fixed default wrong length",
        record(
            [{"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}, "default": "abc"}]
        ),
        "expected exactly 2 bytes, got 3",
    ),
    (
        "record default missing a field",
        record(
            [
                {
                    "name": "leg",
                    "type": {
                        "type": "record",
                        "name": "Leg",
                        "fields": [{"name": "qty", "type": "int"}],
                    },
                    "default": {},
                }
            ]
        ),
        "no value for field 'qty', which has no default of its own",
    ),
    (
        "array default element",
        record([{"name": "xs", "type": {"type": "array", "items": "int"}, "default": [1, "x"]}]),
        "element 1: expected an integer",
    ),
    (
        "map default value",
        record([{"name": "m", "type": {"type": "map", "values": "string"}, "default": {"k": 1}}]),
        "value of key 'k': expected a string",
    ),
]


@pytest.mark.parametrize(
    ("schema", "pattern"), [(s, p) for _, s, p in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_schema_has_specific_message(schema: Any, pattern: str) -> None:
    text = schema if isinstance(schema, str) else js(schema)
    with pytest.raises(InvalidSchema, match=pattern) as info:
        parse_schema(text)
    assert info.value.code == "invalid_schema"


VALID_DEFAULTS: list[tuple[Any, Any]] = [
    ("null", None),
    ("boolean", False),
    ("int", -(2**31)),
    ("long", 2**63 - 1),
    ("float", 1),
    ("double", 1.5),
    ("bytes", "\u00ff\u0000"),
    ("string", "é"),
    (["null", "string"], None),
    (["string", "null"], "x"),
    ({"type": "array", "items": "long"}, [1, 2]),
    ({"type": "map", "values": ["int", "null"]}, {"a": 1}),
    ({"type": "fixed", "name": "F", "size": 2}, "ab"),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, "B"),
    (
        {
            "type": "record",
            "name": "Leg",
            "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 1}],
        },
        {"a": 0},
    ),
    (dec(10, 2), "\u0000\u0001"),
]


@pytest.mark.parametrize(("ftype", "default"), VALID_DEFAULTS)
def test_valid_defaults_are_accepted(ftype: Any, default: Any) -> None:
    parse_schema(js(record([{"name": "f", "type": ftype, "default": default}])))


def test_forward_reference_is_rejected_but_self_reference_works() -> None:
    with pytest.raises(InvalidSchema, match="unknown type 'Later'"):
        parse_schema(
            js(
                record(
                    [
                        {"name": "a", "type": ["null", "Later"]},
                        {"name": "b", "type": {"type": "fixed", "name": "Later", "size": 1}},
                    ]
                )
            )
        )


def test_no_fallback_to_null_namespace_unlike_avro_java() -> None:
    # Avro Java resolves 'F' to the null-namespace type; fastavro and the spec do not.
    with pytest.raises(InvalidSchema, match="the type 'F' of the null namespace cannot"):
        parse_schema(
            js(
                {
                    "type": "record",
                    "name": "Outer",
                    "fields": [
                        {"name": "a", "type": {"type": "fixed", "name": "F", "size": 1}},
                        {
                            "name": "b",
                            "type": {
                                "type": "record",
                                "name": "Inner",
                                "namespace": "x.y",
                                "fields": [{"name": "f", "type": "F"}],
                            },
                        },
                    ],
                }
            )
        )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(
        [
            "int",
            "long",
            "string",
            "bytes",
            "null",
            "record",
            "enum",
            "fixed",
            "array",
            "map",
            "R",
            "decimal",
            "date",
            "A",
            "a.b",
            "",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "name",
                    "namespace",
                    "fields",
                    "symbols",
                    "items",
                    "values",
                    "size",
                    "default",
                    "logicalType",
                    "precision",
                    "scale",
                    "aliases",
                    "order",
                    "doc",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_gives_a_schema_or_invalid_schema(value: Any) -> None:
    try:
        s = parse_schema(json.dumps(value))
    except InvalidSchema as exc:
        assert exc.message
        return
    # Whatever is accepted is usable: canonical form re-parses to the same identity.
    assert parse_schema(s.canonical).fingerprint == s.fingerprint


def test_deeply_nested_schema_is_rejected_cleanly() -> None:
    text = '{"type": "array", "items": ' * 5000 + '"int"' + "}" * 5000
    with pytest.raises(InvalidSchema, match="nested too deeply"):
        parse_schema(text)
