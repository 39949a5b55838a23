"""Session 17 hostile-input review: query parameters that size or place work
(docs/benchmarks/s17-redteam-hostile.md). Each test is an attack that worked before its fix."""

from __future__ import annotations

import pytest

from ._api import Api

EDGES = [
    "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00Z: before datetime's range
    "9999-12-31T23:59:59-14:00",  # 10000-01-01T13:59:59Z: after it
    "9" * 20,  # epoch milliseconds whose microseconds pass 64 bits
]


@pytest.mark.parametrize("value", EDGES)
def test_an_event_time_outside_the_datetime_range_is_a_4xx(shared_api: Api, value: str) -> None:
    """``GET /v1/projections/{name}/at?event_time=`` parsed the time, then subtracted the epoch:
    an offset near year 1 or 9999 raised OverflowError, a 500 "this is a bug" (any key with
    ``projection.rebuild``; the fuzzers send only numbers). Now 422 ``invalid_event_time``; so
    is the POST ``/at/query`` body's ``event_time``, and epoch milliseconds past 64 bits."""
    api = shared_api
    r = api.client.get("/v1/projections/trades/at", params={"event_time": value}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_event_time", r.text
    assert "within years 1..9999" in r.json()["message"]
    r = api.client.post(
        "/v1/projections/trades/at/query",
        json={"sql": "SELECT 1", "event_time": value},
        headers=api.admin,
    )
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_event_time", r.text


def test_the_ends_of_the_range_are_still_times(shared_api: Api) -> None:
    from projections.service import point_in_time_us

    assert point_in_time_us("0001-01-01T00:00:00Z") == -62_135_596_800_000_000
    assert point_in_time_us("9999-12-31T23:59:59Z") == 253_402_300_799_000_000
    assert point_in_time_us(str(2**63 // 1000 - 1)) == (2**63 // 1000 - 1) * 1000


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("market_bars_late", "trades|abc|1|v"),  # int("abc"): ValueError
        ("market_bars_late", "trades|-|1|v"),
        ("market_bars_late", "trades|" + "9" * 30 + "|1|v"),  # past Int64: the views failed
        ("ohlcv_1m", "default|AAPL|USD|" + "9" * 30),
        ("ohlcv_1m", "default|AAPL|USD|" + "9" * 5000),  # past Python's 4,300 digits
    ],
)
def test_a_row_key_that_is_no_64_bit_integer_is_a_4xx(
    shared_api: Api, table: str, key: str
) -> None:
    """``GET /v1/projections/{name}/rows/{key}/sources`` (any analyst key) parsed integer key
    parts with ``int()``: text raised ValueError, a number past 64 bits made the views' query
    fail; both answered 500. Now 422 ``invalid_key`` naming the key part."""
    r = shared_api.client.get(
        f"/v1/projections/market_bars/rows/{key}/sources",
        params={"table": table},
        headers=shared_api.admin,
    )
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_key", r.text
    assert "must be a 64-bit integer" in r.json()["message"]
