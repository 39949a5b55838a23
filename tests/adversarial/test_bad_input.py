"""Issue 10 item 6: no input produces a 5xx. Each case the review and the fuzzer found, plus
hostile cases of our own, answers a 4xx in the shared error shape with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.api.deps import MAX_JSON_DEPTH, json_depth_exceeds

from ._api import Api

HUGE = "18446744073709551617"  # 2**64 + 1
DEEP = b"[" * 10_000 + b"]" * 10_000
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


def deep_events() -> bytes:
    return b'{"events":' + DEEP + b"}"


# (method, url, body, headers, expected status, expected reason or None)
CASES: list[tuple[str, str, bytes | None, dict[str, str] | None, int, str | None]] = [
    # integers beyond 64 bits (OverflowError before)
    ("GET", "/v1/quarantine/3596479283789072816930816", None, None, 422, "invalid_request"),
    ("GET", f"/v1/ledger/checkpoints?min_size={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/ledger/checkpoints?max_size={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/ledger/entries/{HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/ledger/entries?after={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/ledger/consistency?from=0&to={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/topics/trades/events?offset={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/topics/trades/events?partition={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/quarantine?offset={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/v1/projections/trades/at?offset={HUGE}", None, None, 422, "invalid_request"),
    ("GET", f"/schemas/ids/{HUGE}", None, None, 422, "invalid_input"),
    ("GET", f"/subjects?limit={HUGE}", None, None, 422, "invalid_input"),
    ("GET", f"/subjects/trades-value/versions/{HUGE}", None, None, 422, "invalid_version"),
    ("DELETE", f"/subjects/trades-value/versions/{HUGE}", None, None, 422, "invalid_version"),
    # negative and huge limits
    ("GET", "/v1/quarantine?limit=-1", None, None, 422, "invalid_request"),
    ("GET", "/v1/topics/trades/events?limit=100000000", None, None, 422, "invalid_request"),
    ("GET", "/v1/lineage/events?limit=-5", None, None, 422, "invalid_request"),
    # JSON nested 10,000 deep (RecursionError before)
    ("POST", "/v1/topics/trades/events", deep_events(), JSON, 422, "malformed_json"),
    ("POST", "/v1/ingest/trades", deep_events(), JSON, 422, "malformed_json"),
    ("PUT", "/v1/rules/trades-value", DEEP, JSON, 422, "malformed_json"),
    ("POST", "/v1/quarantine/replay", DEEP, JSON, 422, "malformed_json"),
    ("POST", "/subjects/x-value/versions", b'{"schema":' + DEEP + b"}", None, 422, None),
    ("POST", "/compatibility/subjects/trades-value/versions", DEEP, None, 422, None),
    ("POST", "/v1/legal-holds", DEEP, JSON, 422, "malformed_json"),
    ("POST", "/v1/config/changes", DEEP, JSON, 422, "malformed_json"),
    ("POST", "/v1/policy/changes", DEEP, JSON, 422, "malformed_json"),
    # malformed and non-UTF-8 bodies on raw-body routes
    ("PUT", "/v1/rules/trades-value", b"\xff\xfe{", JSON, 422, "malformed_json"),
    ("PUT", "/v1/rules/trades-value", b"{bad", JSON, 422, "malformed_json"),
    ("PUT", "/v1/rules/trades-value", b"", JSON, 422, "malformed_json"),
    ("POST", "/v1/quarantine/replay", b"{bad", JSON, 422, "malformed_json"),
    ("POST", "/v1/quarantine/replay", b"\xff", JSON, 422, "malformed_json"),
    ("POST", "/v1/quarantine/replay", b'{"offsets":[' + HUGE.encode() + b"]}", JSON, 422, None),
    ("POST", "/v1/quarantine/replay", b'{"offsets":[-1]}', JSON, 422, "invalid_replay"),
    ("POST", "/v1/quarantine/replay", b'{"offsets":[true]}', JSON, 422, "invalid_replay"),
    ("POST", "/v1/topics/trades/events", b"\xc3\x28", JSON, 422, "malformed_json"),
    ("POST", "/v1/legal-holds", b"\xff\xfe", JSON, 422, None),
    # NaN, Infinity, duplicate members
    ("POST", "/v1/topics/trades/events", b'{"events":[{"value":{"a":NaN}}]}', JSON, 422, None),
    (
        "POST",
        "/v1/topics/trades/events",
        b'{"events":[{"value":{"a":-Infinity}}]}',
        JSON,
        422,
        None,
    ),
    ("PUT", "/v1/rules/trades-value", b'{"rules":[],"rules":[]}', JSON, 422, "duplicate_key"),
    ("POST", "/subjects/x-value/versions", b'{"schema":"\\"int\\"","schema":"1"}', None, 422, None),
    ("PUT", "/config/trades-value", b'{"compatibility":1e999}', None, 422, None),
    # unknown topics and partitions on read: 404, not 500
    ("GET", "/v1/topics/no-such-topic/events", None, None, 404, "topic_not_found"),
    ("GET", "/v1/topics/tr%00ades/events", None, None, 404, "topic_not_found"),
    ("GET", "/v1/topics/%F0%9F%92%A5/events", None, None, 404, "topic_not_found"),
    ("GET", "/v1/topics/trades/events?partition=999", None, None, 422, "partition_out_of_range"),
    ("POST", "/v1/topics/no%00such/events", b'{"events":[{"value":{}}]}', JSON, 404, None),
    # unicode and NUL in other path parameters
    ("GET", "/subjects/%F0%9F%98%80/versions", None, None, 404, "subject_not_found"),
    ("GET", "/v1/config/values/%00", None, None, 422, None),
]


@pytest.mark.parametrize(("method", "url", "body", "headers", "status", "reason"), CASES)
def test_bad_input_answers_4xx_with_a_reason(
    shared_api: Api,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str] | None,
    status: int,
    reason: str | None,
) -> None:
    api = shared_api  # the cases change nothing, so one hub serves them all
    r = api.client.request(method, url, content=body, headers={**api.admin, **(headers or {})})
    assert r.status_code == status, (r.status_code, r.text[:300])
    got = r.json()
    assert set(got) >= {"error_code", "reason", "message"}, got
    assert got["message"].endswith(".") and len(got["message"]) > 20, got
    if reason is not None:
        assert got["reason"] == reason, got


def test_a_huge_header_is_not_a_5xx(api: Api) -> None:
    headers = {**api.admin, "X-Hub-Purpose": "p" * 200_000, "X-Other": "x" * 200_000}
    assert api.client.get("/v1/topics", headers=headers).status_code == 200
    key = {"Authorization": "Bearer " + "k" * 100_000 + ":" + "s" * 100_000}
    assert api.client.get("/v1/topics", headers=key).status_code == 401


def test_an_ndjson_line_nested_too_deep_is_quarantined_alone(api: Api) -> None:
    good = {"value": {"a": 1}}
    body = json.dumps(good).encode() + b"\n" + DEEP + b"\n"
    r = api.client.post("/v1/ingest/trades", content=body, headers={**api.admin, **NDJSON})
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == 2  # {"a": 1} fails the trades schema; the deep line too


def test_duplicate_members_in_a_data_batch_are_refused(api: Api) -> None:
    """Publish refused a repeated member like the control-plane bodies (above) since s19: the
    last member won, while a first-wins reader of the kept original reads another record
    (tests/adversarial/test_s19_small_duplicate_keys.py)."""
    body = b'{"events":[{"value":{}}],"events":[]}'
    r = api.client.post("/v1/topics/trades/events", content=body, headers={**api.admin, **JSON})
    assert r.status_code == 422 and r.json()["reason"] == "duplicate_key", r.text
    assert "'events'" in r.text


def depth(value: Any) -> int:
    """The oracle: nesting depth by recursion over the parsed value."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


NASTY_TEXT = st.text(alphabet='[]{}"\\ab:,', max_size=6)
JSON_VALUES = st.recursive(
    st.none() | st.integers() | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES, st.integers(min_value=0, max_value=8))
def test_the_depth_scan_agrees_with_a_recursive_oracle(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert json_depth_exceeds(body, limit) == (depth(value) > limit)


def test_the_depth_limit_is_exact() -> None:
    at = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not json_depth_exceeds(at)
    assert json_depth_exceeds(b"[" + at + b"]")
    assert not json_depth_exceeds(json.dumps({"s": "[" * 500}).encode())


@pytest.mark.parametrize(
    "event",
    [
        {"value": {}, "headers": [None, None]},  # found by schemathesis
        {"value": {}, "event_type": {}},
        {"value": {}, "event_id": 7},
        {"value": {}, "key": []},
    ],
)
def test_mistyped_event_members(shared_api: Api, event: dict[str, Any]) -> None:
    api = shared_api
    r = api.client.post("/v1/topics/trades/events", json={"events": [event]}, headers=api.admin)
    assert r.status_code == 422 and r.json()["reason"] == "invalid_batch", r.text
    r = api.client.post("/v1/ingest/trades", json={"events": [event]}, headers=api.admin)
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text


def _serve(app: Any, port: int) -> Any:
    import threading
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    return server, thread


def _raw(port: int, request: bytes, *, half_close: bool = False) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and not half_close:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_content_length_lies_over_real_http(shared_api: Api) -> None:
    """Served by uvicorn on 127.0.0.1:24081: a body shorter or longer than its Content-Length,
    or a Content-Length that is not a number, never gets a 5xx."""
    port = 24081
    server, thread = _serve(shared_api.client.app, port)
    auth = shared_api.admin["Authorization"].encode()
    body = b'{"rules": []}'
    head = b"PUT /v1/rules/trades-value HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth
    try:
        short = _raw(port, head + b"\r\nContent-Length: 500\r\n\r\n" + body, half_close=True)
        long = _raw(port, head + b"\r\nContent-Length: 3\r\n\r\n" + body)
        nan = _raw(port, head + b"\r\nContent-Length: lots\r\n\r\n" + body)
        for answer in (short, long, nan):
            status = answer.split(b"\r\n", 1)[0]
            assert not status.startswith(b"HTTP/1.1 5"), answer[:300]
        # The 3 bytes are not JSON (422 from the app, uvicorn's h11 parser), or the bytes after
        # them are not a request (400 from uvicorn's httptools parser, which the lock installs
        # since the ML stack came in): a 4xx either way, never the body read past its length.
        assert long.startswith((b"HTTP/1.1 422", b"HTTP/1.1 400")), long[:300]
        assert nan.startswith(b"HTTP/1.1 400"), nan[:300]
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_an_unexpected_failure_is_logged_and_answers_the_error_shape(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.hub.log, "topics", broken)
    r = api.client.get("/v1/topics", headers=api.admin)
    assert r.status_code == 500
    assert r.json()["reason"] == "internal_error" and "RuntimeError" in r.json()["message"]
    assert any("disk on fire" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)
