"""Session 17 hostile-input review: schemas and logical values a publisher key can send.

Each test is an attack that worked before its fix (see docs/benchmarks/s17-redteam-hostile.md).
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any

import pytest

from core.avro.schema import parse_schema
from core.errors import InvalidSchema

from ._api import Api

MAX_DECIMAL_PRECISION = 4096  # core.avro.schema.MAX_DECIMAL_PRECISION


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _topic(api: Api, topic: str, fields: list[dict[str, Any]]) -> Any:
    """Create ``topic`` (an admin's step) and register its schema as the publisher does."""
    r = api.client.post("/v1/topics", headers=api.admin, json={"name": topic, "partitions": 1})
    assert r.status_code == 201, r.text
    schema = {"type": "record", "name": "R", "fields": fields}
    return api.client.post(
        f"/subjects/{topic}-value/versions",
        json={"schema": json.dumps(schema)},
        headers=api.as_role("publisher"),
    )


# -- decimal precision --------------------------------------------------------------------------
def test_a_decimal_wider_than_the_hub_takes_is_refused_at_registration(api: Api) -> None:
    """A publisher registered decimal(900000, 900000) and sent one value, "0.5": the request
    held a worker for more than 100 s (quantizing and encoding a 900,000-digit number). The
    registry now refuses precisions past ``MAX_DECIMAL_PRECISION``, naming it."""
    field = {"type": "bytes", "logicalType": "decimal", "precision": 900_000, "scale": 900_000}
    start = time.monotonic()
    r = _topic(api, "dec", [{"name": "a", "type": field}])
    assert r.status_code == 422, r.text
    assert "decimal precision 900000" in r.json()["message"]
    assert str(MAX_DECIMAL_PRECISION) in r.json()["message"]
    assert time.monotonic() - start < 5


def test_the_widest_decimal_taken_is_published_and_read_back_quickly(api: Api) -> None:
    """The bound keeps the work per value small: decimal(4096, 4096) takes a value in well
    under a second and reads it back exactly."""
    p = MAX_DECIMAL_PRECISION
    field = {"type": "bytes", "logicalType": "decimal", "precision": p, "scale": p}
    assert _topic(api, "dec", [{"name": "a", "type": field}]).status_code == 200
    value = "0." + "7" * p
    start = time.monotonic()
    r = api.client.post(
        "/v1/topics/dec/events",
        json={"events": [{"value": {"a": value}}]},
        headers=api.as_role("publisher"),
    )
    assert r.status_code == 201, r.text
    assert time.monotonic() - start < 2
    read = api.client.get("/v1/topics/dec/events", headers=api.admin).json()["records"]
    assert read[0]["value"] == {"a": value}


def test_a_fixed_decimal_of_a_gigabyte_is_sized_without_building_its_integer() -> None:
    """A fixed of 10**9 bytes annotated as decimal(2000, 0): checking the precision fits built
    2**(8 * 10**9), a gigabyte-sized integer (10**8 bytes took 20 s and more; 10**7, 2.7 s).
    Such a schema reaches the parser from the registry and from an Avro file's header."""
    before = _rss_mb()
    start = time.monotonic()
    for size in (10**9, 10**18):
        text = json.dumps(
            {
                "type": "fixed",
                "name": "F",
                "size": size,
                "logicalType": "decimal",
                "precision": 2000,
            }
        )
        parse_schema(text)
    assert time.monotonic() - start < 1
    assert _rss_mb() - before < 50
    # the bound itself is unchanged where it binds
    with pytest.raises(InvalidSchema, match=r"at most 6 digits"):
        parse_schema(
            json.dumps(
                {"type": "fixed", "name": "F", "size": 3, "logicalType": "decimal", "precision": 7}
            )
        )
    parse_schema(
        json.dumps(
            {"type": "fixed", "name": "F", "size": 3, "logicalType": "decimal", "precision": 6}
        )
    )


# -- logical values fastavro writes but cannot read ------------------------------------------
LOGICAL_FIELDS = [
    {"name": "d", "type": {"type": "int", "logicalType": "date"}},
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "t", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
]
GOOD = {"d": 0, "ms": 0, "us": 0, "t": 0, "u": "0b8e8a44-5b53-4f5e-9a1c-31b8b1d2a001"}
UNREADABLE = [
    ({"d": 2**31 - 1}, "/d: 2147483647 is outside the range of a date"),
    ({"d": -(2**31)}, "/d: -2147483648 is outside the range of a date"),
    ({"ms": 2**63 - 1}, "/ms: 9223372036854775807 is outside the range of a timestamp-millis"),
    ({"us": -(2**63)}, "/us: -9223372036854775808 is outside the range of a timestamp-micros"),
    ({"ms": "9999-12-31T23:59:59.999-01:00"}, "after year 9999 in UTC"),
    ({"us": "0001-01-01T00:00:00+01:00"}, "before year 1"),
    ({"t": 86_400_000}, "/t: 86400000 is outside the range of a time-millis"),
    ({"t": -86_400_001}, "/t: -86400001 is outside the range of a time-millis"),
    ({"u": "not-a-uuid"}, "/u: 'not-a-uuid' is not a UUID"),
]


@pytest.mark.parametrize(("change", "reason"), UNREADABLE)
@pytest.mark.parametrize("route", ["events", "ingest"])
def test_a_logical_value_that_cannot_be_read_back_is_refused(
    api: Api, route: str, change: dict[str, Any], reason: str
) -> None:
    """fastavro writes any int for a date or timestamp, and any string for a uuid, but raises
    reading one outside what it converts to (a date past year 9999, a time past midnight, a
    malformed UUID). Such a record was accepted (201) and then every read of it failed with
    "Cannot decode a value": stored, covered by the ledger, and unreadable by the API,
    projections and exports. It is now refused at the door with the field and the range."""
    assert _topic(api, "lt", LOGICAL_FIELDS).status_code == 200
    pub = api.as_role("publisher")
    event = {**GOOD, **change}
    if route == "events":
        r = api.client.post(
            "/v1/topics/lt/events", json={"events": [{"value": event}]}, headers=pub
        )
        assert r.status_code == 422, r.text
        assert reason in r.json()["message"], r.text
    else:
        r = api.client.post("/v1/ingest/lt", json={"events": [event]}, headers=pub)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 0 and r.json()["rejected"] == 1, r.text
        assert reason in r.json()["rejections"][0]["reason"], r.text
    records = api.client.get("/v1/topics/lt/events", headers=api.admin).json()["records"]
    assert [x for x in records if x.get("error")] == []


def test_the_ends_of_each_readable_range_are_taken_and_read_back(api: Api) -> None:
    """Refusing the unreadable does not refuse the edges: year 1 and year 9999, the last
    millisecond of a day."""
    assert _topic(api, "lt", LOGICAL_FIELDS).status_code == 200
    edges = [
        {**GOOD, "d": 2_932_896, "ms": 253_402_300_799_999, "us": -62_135_596_800_000_000},
        {**GOOD, "d": -719_162, "ms": "9999-12-31T23:59:59.999Z", "t": 86_399_999},
        {**GOOD, "us": "0001-01-01T00:00:00Z", "ms": "9999-12-31T22:00:00-01:00"},
    ]
    for route in ("events", "ingest"):
        body = {"events": [{"value": e} for e in edges] if route == "events" else edges}
        url = "/v1/topics/lt/events" if route == "events" else "/v1/ingest/lt"
        r = api.client.post(url, json=body, headers=api.as_role("publisher"))
        assert r.status_code in (200, 201), r.text
        assert r.json().get("rejected", 0) == 0, r.text
    records = api.client.get("/v1/topics/lt/events", headers=api.admin).json()["records"]
    assert len(records) == 6
    assert [x for x in records if x.get("error")] == []
    assert records[0]["value"]["d"] == "9999-12-31"
    assert records[1]["value"]["d"] == "0001-01-01"


# -- numbers too large for their type -----------------------------------------------------------
NUMBERS = [
    {"name": "x", "type": "double"},
    {"name": "f", "type": "float"},
]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"x": "1e400", "f": "1"}, "/x: 1E+400 is out of the range of a double"),
        ({"x": "-1e400", "f": "1"}, "/x: -1E+400 is out of the range of a double"),
        ({"x": "1", "f": "1e39"}, "/f: 1E+39 is out of the range of a float"),
    ],
)
@pytest.mark.parametrize("route", ["events", "ingest", "ndjson"])
def test_a_json_number_past_its_type_is_refused_not_stored_as_infinity(
    api: Api, route: str, event: dict[str, str], reason: str
) -> None:
    """The literals NaN and Infinity are refused, but the number 1e400 was taken into a double
    (1e39 into a float): stored as infinity, and read back as null, in a field that is not
    nullable. Now refused naming the field."""
    assert _topic(api, "num", NUMBERS).status_code == 200
    pub = api.as_role("publisher")
    record = "{" + ",".join(f'"{k}":{v}' for k, v in event.items()) + "}"
    if route == "events":
        body, url, ctype = '{"events":[{"value":' + record + "}]}", "/v1/topics/num/events", "json"
    elif route == "ingest":
        body, url, ctype = '{"events":[' + record + "]}", "/v1/ingest/num", "json"
    else:
        body, url, ctype = record + "\n", "/v1/ingest/num", "x-ndjson"
    r = api.client.post(
        url, content=body.encode(), headers={**pub, "content-type": f"application/{ctype}"}
    )
    if route == "events":
        assert r.status_code == 422, r.text
        assert reason in r.json()["message"], r.text
    else:
        assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
        assert reason in r.json()["rejections"][0]["reason"], r.text
    assert api.client.get("/v1/topics/num/events", headers=api.admin).json()["records"] == []


def test_the_largest_numbers_of_each_type_are_taken(api: Api) -> None:
    assert _topic(api, "num", NUMBERS).status_code == 200
    body = b'{"events":[{"value":{"x":1.7976931348623157e308,"f":3.4028235e38}}]}'
    r = api.client.post(
        "/v1/topics/num/events",
        content=body,
        headers={**api.as_role("publisher"), "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    (rec,) = api.client.get("/v1/topics/num/events", headers=api.admin).json()["records"]
    assert rec["value"]["x"] == 1.7976931348623157e308
    assert rec["value"]["f"] is not None and rec["value"]["f"] > 3.4e38
