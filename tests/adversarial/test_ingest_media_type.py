"""``POST /v1/ingest/{topic}`` reads its body by its media type as HTTP defines it (session 16
review): case-insensitive, parameters apart, and whole. The route matched prefixes of the raw
header: ``APPLICATION/VND.APACHE.ARROW.STREAM`` (a valid spelling) was parsed as JSON and
answered "not UTF-8", while ``application/vnd.apache.arrow.streamX`` or
``application/x-ndjson-seq`` (other types) were read as Arrow or NDJSON."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from tests.adversarial._api import Api

ROW = {
    "trade_id": ["T1"],
    "account_id": ["A1"],
    "instrument": ["XS1"],
    "side": ["BUY"],
    "quantity": ["1"],
    "price": ["1"],
    "currency": ["USD"],
    "executed_at": ["2026-01-01T00:00:00Z"],
}


def _arrow() -> bytes:
    table = pa.table(ROW)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@pytest.mark.parametrize(
    "ctype",
    [
        "application/vnd.apache.arrow.stream",
        "APPLICATION/VND.APACHE.ARROW.STREAM",
        "Application/Vnd.Apache.Arrow.Stream ; charset=binary",
    ],
)
def test_the_arrow_media_type_in_any_case_is_read_as_arrow(shared_api: Api, ctype: str) -> None:
    r = shared_api.client.post(
        "/v1/ingest/trades",
        content=_arrow(),
        headers={**shared_api.as_role("publisher"), "Content-Type": ctype},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] + r.json()["rejected"] == 1


@pytest.mark.parametrize(
    "ctype", ["application/vnd.apache.arrow.streamX", "application/vnd.apache.arrow.stream2"]
)
def test_another_media_type_is_not_read_as_arrow(shared_api: Api, ctype: str) -> None:
    r = shared_api.client.post(
        "/v1/ingest/trades",
        content=_arrow(),
        headers={**shared_api.as_role("publisher"), "Content-Type": ctype},
    )
    assert r.status_code == 422 and r.json()["reason"] == "malformed_json", r.text


def test_ndjson_is_matched_whole_and_in_any_case(shared_api: Api) -> None:
    pub = shared_api.as_role("publisher")
    line = b'{"trade_id": "T2"}\n'
    r = shared_api.client.post(
        "/v1/ingest/trades", content=line, headers={**pub, "Content-Type": "Application/X-NDJSON"}
    )
    assert r.status_code == 200, r.text
    r = shared_api.client.post(
        "/v1/ingest/trades", content=line, headers={**pub, "Content-Type": "application/x-ndjsonz"}
    )
    assert r.status_code == 422 and r.json()["reason"] == "invalid_batch", r.text
