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
