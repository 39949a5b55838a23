"""JSON batches of ``POST /v1/ingest/{topic}`` on the columnar path give exactly what the
per-record path gives (differential).

The same random bodies (``{"events": [...]}`` and NDJSON, good events mixed with every kind of
doubtful or wrong one, bare records and envelopes, odd spacing) go through
``ingest_body(columnar=False)`` (the reference: the body parsed whole, one ``RawRecord`` per
event) on one hub and through ``ingest_body`` (Arrow's reader and ``ingest_arrow``) on another:
the same result or the same refusal per body; at the end the same stored records (but ids and
receipt time) and the same quarantine entries with their originals and positions.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.errors import HubError
from hub.api.app import create_app
from hub.api.ingest_batch import ingest_body
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from tests.service.test_ingest_arrow_readers import ODD, spoil, trade
from tests.service.test_ingest_columnar import quarantined, receipt_free, stored

KW = dict(source="http:tester", producer="tester", tenant="default")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Hub, Hub]]:
    a = bootstrap(load_settings(environ={}, data_dir=tmp_path / "a"))
    b = bootstrap(load_settings(environ={}, data_dir=tmp_path / "b"))
    for h in (a, b):  # the accounts the trades name (trade.account.known)
        open_accounts(h, ["A", *(f"ACC-{i}" for i in range(60))])
    yield a, b
    a.close()
    b.close()


# Elements of a JSON body that must go row by row, or send the body to the reference whole.
ODD_ELEMENTS = [
    b"5",
    b'"a string"',
    b"null",
    b"[1, 2]",
    b"{}",
    b'{"trade_id": 5}',
    b'{"trade_id": "T-d", "trade_id": "T-e"}',
    b'{"trade_id": "\\ud800"}',
    b'{"unknown_field": 1}',
    b'{"quantity": 1e400}',
    b'{"value": 5}',
    b'{"value": {"trade_id": "T-v"}, "other": 1}',
    b'{"value": {"trade_id": "x}, {y"}}',
]
# Bodies the reference refuses whole (or parses whole): each must meet the same answer.
ODD_BODIES = [
    b'{"events": []}',
    b'{"events": [1,]}',
    b'{"events": [{"quantity": NaN}]}',
    b'{"events": [{"a": "tab\there"}]}',
    b'{"events": [{"a": 1} {"b": 2}]}',
    b'{"events": [{"a": "caf\xc3"}]}',
    b'\xef\xbb\xbf{"events": [{"a": 1}]}',
    b'{"other": 1, "events": [{"trade_id": "T-o"}]}',
    b'{"events": [' + b"[" * 40 + b"]" * 40 + b"]}",
    b'{"events": [{"a": 1}], "events": [{"b": 2}]}',
    b"not json",
]


def event(i: int, rnd: random.Random, bad: float) -> Any:
    r = trade(i, rnd)
    if rnd.random() < 0.05:
        r["trade_id"] = f"T-{rnd.randrange(max(i, 1))}"  # maybe one seen before: a duplicate
    if rnd.random() < bad:
        r = spoil(r, rnd)
    roll = rnd.random()
    if roll < 0.15:
        return {"value": r}  # an envelope holding only the record
    if roll < 0.17:
        return {"value": r, "event_type": None, "key": None}
    return r


def json_body(n: int, rnd: random.Random, bad: float, envelopes: bool, base: int = 0) -> bytes:
    parts: list[bytes] = []
    for i in range(n):
        if rnd.random() < bad / 4:
            parts.append(rnd.choice(ODD_ELEMENTS))
            continue
        e = event(base + i, rnd, bad)
        if envelopes and rnd.random() < 0.05:
            e = {"value": e.get("value", e), "key": f"k-{i}"}
        parts.append(
            json.dumps(
                e,
                ensure_ascii=rnd.random() < 0.5,
                separators=rnd.choice([(",", ":"), (", ", ": ")]),
            ).encode()
        )
    sep = rnd.choice([b",", b", ", b",\n  ", b" ,\t"])
    return b'{"events": [' + sep.join(parts) + b"]}"


def ndjson_body(n: int, rnd: random.Random, bad: float, base: int = 0) -> bytes:
    lines: list[bytes] = []
    for i in range(n):
        roll = rnd.random()
        if roll < 0.03:
            lines.append(rnd.choice([b"", b"   ", b"\t"]))
        elif roll < 0.03 + bad / 4:
            lines.append(rnd.choice(ODD + ODD_ELEMENTS))
        else:
            lines.append(
                json.dumps(event(base + i, rnd, bad), ensure_ascii=rnd.random() < 0.5).encode()
            )
    return b"".join(line + rnd.choice([b"\n", b"\r\n"]) for line in lines)


def outcome(h: Hub, body: bytes, ndjson: bool, columnar: bool, topic: str = "trades") -> Any:
    try:
        r = ingest_body(h.ingest, topic, body, ndjson=ndjson, columnar=columnar, **KW)
    except HubError as exc:
        message = exc.message.replace(str(h.settings.data_dir), "<data dir>")
        return ("refused", type(exc).__name__, exc.code, message)
    return receipt_free(r.as_dict())


def test_http_batches_columnar_equal_per_record(two: tuple[Hub, Hub]) -> None:
    a, b = two
    slow: list[int] = []
    real = b.ingest.accept_one

    def counting(*args: Any, **kwargs: Any) -> Any:
        slow.append(1)
        return real(*args, **kwargs)

    b.ingest.accept_one = counting  # type: ignore[method-assign]
    rnd = random.Random(13)
    totals = [0, 0, 0]
    events = 0
    bodies: list[tuple[bytes, bool]] = [(body, False) for body in ODD_BODIES]
    for k in range(24):
        n = rnd.choice([1, 5, 40, 150])
        bad = rnd.choice([0.0, 0.1, 0.3])
        if k % 2:
            bodies.append((ndjson_body(n, rnd, bad, base=1000 * k), True))
        else:
            bodies.append((json_body(n, rnd, bad, envelopes=k % 6 == 0, base=1000 * k), False))
    for body, ndjson in bodies:
        want = outcome(a, body, ndjson, columnar=False)
        got = outcome(b, body, ndjson, columnar=True)
        assert got == want, body[:300]
        if isinstance(want, dict):
            events += want["accepted"] + want["rejected"] + want["duplicates"]
            totals[0] += want["accepted"]
            totals[1] += want["rejected"]
            totals[2] += want["duplicates"]
    assert stored(a, "trades") == stored(b, "trades")
    assert receipt_free(quarantined(a)) == receipt_free(quarantined(b))
    accepted, rejected, duplicates = totals
    print(f"accepted {accepted}, rejected {rejected}, duplicates {duplicates}, slow {len(slow)}")
    assert accepted > 500 and rejected > 100 and duplicates > 20  # every outcome exercised
    # Most events went column-wise: only doubtful, failing or enveloped-batch ones row by row.
    assert len(slow) < 0.5 * events


def test_route_takes_the_columnar_path(two: tuple[Hub, Hub]) -> None:
    """Through HTTP: 200 good bare records and envelopes are read by Arrow, none row by row;
    the answer is the reference's."""
    a, b = two
    rnd = random.Random(5)
    body = json.dumps(
        {"events": [event(i, rnd, 0.0) for i in range(200)]}, separators=(",", ":")
    ).encode()
    slow: list[int] = []
    real = b.ingest.accept_one

    def counting(*args: Any, **kwargs: Any) -> Any:
        slow.append(1)
        return real(*args, **kwargs)

    b.ingest.accept_one = counting  # type: ignore[method-assign]
    token = b.keys.create(["admin"], principal="tester").token
    auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    with TestClient(create_app(b)) as client:
        r = client.post("/v1/ingest/trades", content=body, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    want = ingest_body(a.ingest, "trades", body, ndjson=False, columnar=False, **KW).as_dict()
    assert receipt_free({k: got[k] for k in want}) == receipt_free(want)
    assert got["accepted"] > 150
    # Rows the columnar path leaves to the reference: rule failures only (unknown refs, times).
    assert len(slow) <= got["rejected"] + got["duplicates"]


def test_topics_without_a_layout_take_the_reference_whole(two: tuple[Hub, Hub]) -> None:
    """``accounts`` carries PII and resolves its schema by event type: the body goes to the
    per-record path whole, with the same answer and the same records."""
    a, b = two
    account = {
        "account_id": "ACC-X",
        "customer_name": "Holder",
        "email": "x@example.org",
        "date_of_birth": None,
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-01-01T00:00:00Z",
    }
    events = [
        {"value": account, "event_type": "hub.accounts.AccountOpened"},
        {"value": {**account, "account_id": "ACC-Y", "country": 7}},
        {**account, "account_id": "ACC-Z"},
    ]
    for ndjson in (False, True):
        body = (
            b"\n".join(json.dumps(e).encode() for e in events)
            if ndjson
            else json.dumps({"events": events}).encode()
        )
        want = ingest_body(a.ingest, "accounts", body, ndjson=ndjson, columnar=False, **KW)
        got = ingest_body(b.ingest, "accounts", body, ndjson=ndjson, columnar=True, **KW)
        assert got.as_dict() == want.as_dict()
        assert want.rejected == 2  # a wrong type; a bare record without its event type
    assert stored(a, "accounts") == stored(b, "accounts")
    # Refusals come in the reference's order: a malformed body before an internal or unknown topic.
    for topic in ("hub.quarantine", "no-such-topic"):
        for text in (b"not json", json.dumps({"events": events}).encode()):
            want = outcome(a, text, False, columnar=False, topic=topic)
            assert want[0] == "refused"
            assert outcome(b, text, False, columnar=True, topic=topic) == want
    assert receipt_free(quarantined(a)) == receipt_free(quarantined(b))


def test_bodies_of_envelopes_only_equal_per_record(two: tuple[Hub, Hub]) -> None:
    """Every event ``{"value": {...}}`` as ``json.dumps`` writes it (what a batch publisher
    sends, and what ``unwrapped_lines`` unwraps in numpy passes): results, refusals, stored
    records and quarantine entries as the per-record reference gives them, spoiled values and
    duplicates included."""
    a, b = two
    slow: list[int] = []
    real = b.ingest.accept_one

    def counting(*args: Any, **kwargs: Any) -> Any:
        slow.append(1)
        return real(*args, **kwargs)

    b.ingest.accept_one = counting  # type: ignore[method-assign]
    rnd = random.Random(24)
    events = 0
    for k in range(10):
        n = rnd.choice([1, 3, 60, 300])
        bad = rnd.choice([0.0, 0.1, 0.3])
        body = json.dumps(
            {"events": [{"value": trade(5000 * (k + 1) + i, rnd)} for i in range(n)]}
        ).encode()
        if bad:
            items = json.loads(body)["events"]
            for e in items:
                if rnd.random() < bad:
                    e["value"] = spoil(e["value"], rnd)
                if rnd.random() < 0.05:
                    e["value"]["trade_id"] = f"T-{rnd.randrange(5000 * (k + 1) + n)}"
            body = json.dumps({"events": items}, ensure_ascii=rnd.random() < 0.5).encode()
        want = outcome(a, body, False, columnar=False)
        got = outcome(b, body, False, columnar=True)
        assert got == want, body[:300]
        events += n
    assert stored(a, "trades") == stored(b, "trades")
    assert receipt_free(quarantined(a)) == receipt_free(quarantined(b))
    assert len(slow) < 0.5 * events  # the envelopes were read column-wise, not row by row
