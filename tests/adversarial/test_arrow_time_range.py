"""Arrow IPC bodies of ``POST /v1/ingest/{topic}`` with times outside Python's datetime range
(s15 red team, third pass).

Before: a timestamp column holding 2**62 microseconds (or 2**60 seconds) passed every check of
``arrow_batch``; the row then went to the per-record path, whose ``to_pylist`` raised
OverflowError: a 500 "internal error" for a publisher's bad input. Now the body is refused whole
with a 422 ``invalid_arrow`` naming the column and the row, as other unsafe bodies are.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.ingest_batch import ARROW_STREAM
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from tests.service.test_ingest_http_arrow import TYPES, post

ROW = {
    "trade_id": "T1",
    "account_id": "ACC-1",
    "instrument": "X",
    "venue": "XNAS",
    "side": "BUY",
    "quantity": Decimal("1"),
    "price": Decimal("1"),
    "currency": "USD",
    "fees": Decimal("0"),
    "trader_id": "tr",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    env = {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    open_accounts(h, ["ACC-1"])
    token = h.keys.create(["admin"], principal="tester").token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        yield c
    h.close()


def body(values: list[int], ts_type: pa.DataType) -> bytes:
    cols = {k: pa.array([ROW[k]] * len(values), TYPES[k]) for k in ROW}
    cols["executed_at"] = pa.array(values, pa.int64()).cast(ts_type)
    t = pa.table(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("values", "ts_type"),
    [
        ([0, 2**62], pa.timestamp("us", tz="UTC")),
        ([2**60], pa.timestamp("s")),
        ([-(2**55)], pa.timestamp("ms", tz="UTC")),
    ],
    ids=["us-far-future", "s-far-future", "ms-far-past"],
)
def test_times_beyond_year_9999_get_a_clear_422(
    client: TestClient, values: list[int], ts_type: pa.DataType
) -> None:
    r = post(client, body(values, ts_type), ARROW_STREAM)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_arrow"
    row = len(values) - 1
    assert f"'executed_at' with a value outside years 1..9999 at row {row}" in r.json()["message"]


def test_the_edges_of_the_range_are_accepted(client: TestClient) -> None:
    # nanoseconds span 1677..2262 only: every int64 is in range
    r = post(client, body([-(2**63) + 1], pa.timestamp("ns", tz="UTC")), ARROW_STREAM)
    assert r.status_code == 200, r.text
