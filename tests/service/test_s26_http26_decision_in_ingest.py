"""Session 26 (issue 13, HTTP speed): on the embedded log, the ingest routes store the request's
policy decision in the log transaction of the request's batch (``authorize_in_loop`` holds the
allow, ``IngestPipeline._commit`` step 0 appends it): one commit and fsync per request instead
of two (the decision flusher's own append, then the batch's).

What must not change: every request's decision is recorded, refused ones included (alone, as
before); it is durable before the answer; it gets its ledger leaf; the stored records are the
ones the path before stored (the decision's place on ``hub.decisions`` apart: it now shares a
transaction, so a marker follows it). The crash side is
``tests/service/test_s26_http26_decision_sigkill.py``.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import governance.decisions as decisions_module
from adapters.sqlite_log.log import SqliteEventLog
from governance.decisions import DECISIONS_TOPIC
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.verify import verify_ledger
from tests.service.accounts import open_accounts
from tests.service.registry_twins import decisions
from tests.service.test_ingest_columnar import quarantined
from tests.service.test_ingest_http_columnar import ODD_BODIES, json_body
from tests.service.test_ingest_line_blocks import _batches
from tests.service.test_ingest_line_blocks import fixed as fixed

ACCOUNTS = ["A", *(f"ACC-{i}" for i in range(60))]
ARROW = "application/vnd.apache.arrow.stream"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def _hub(path: Path) -> Hub:
    h = bootstrap(load_settings(environ={}, data_dir=path))
    open_accounts(h, ACCOUNTS)
    return h


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = _hub(tmp_path / "hub")
    yield h
    h.close()


def _flusher_batches(h: Hub) -> int:
    return int(h.policy.committer.stats.batches)  # type: ignore[attr-defined]


def _arrow_body(n: int) -> bytes:
    import pyarrow as pa

    rows = {
        "trade_id": [f"T-arrow-{i}" for i in range(n)],
        "account_id": ["ACC-1"] * n,
        "instrument": ["AAPL"] * n,
        "side": ["BUY"] * n,
        "quantity": [f"{i + 1}" for i in range(n)],
        "price": ["189.5"] * n,
        "currency": ["USD"] * n,
        "executed_at": ["2026-11-25T14:30:00.123456Z"] * n,
    }
    table = pa.table(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def test_an_allowed_ingest_stores_its_decision_in_the_batch_transaction(hub: Hub) -> None:
    token = hub.keys.create(["admin"], principal="root").token
    with TestClient(create_app(hub)) as client:
        client.post(  # a first request: the flusher's one-time set-up is not counted below
            "/v1/ingest/trades",
            content=json_body(2, random.Random(1), 0.0, False),
            headers=_auth(token),
        )
        start = hub.log.end_offsets(DECISIONS_TOPIC)[0]
        flushed = _flusher_batches(hub)
        bodies = [
            ("application/json", json_body(40, random.Random(2), 0.2, False)),
            ("application/x-ndjson", b'{"trade_id": "T-x", "account_id": "A"}\nnot json\n'),
            (ARROW, _arrow_body(30)),
        ]
        for k, (media, body) in enumerate(bodies):
            headers = {**_auth(token), "Content-Type": media, "X-Hub-Purpose": f"req-{k}"}
            r = client.post("/v1/ingest/trades", content=body, headers=headers)
            assert r.status_code == 200, r.text
    # No flusher store for these requests: their decisions went with their batches.
    assert _flusher_batches(hub) == flushed
    got = [d for d in decisions(hub, start) if d["action"] == "ingest.publish"]
    assert [(d["purpose"], d["allow"], d["resource"]) for d in got] == [
        (f"req-{k}", True, "/v1/ingest/trades") for k in range(3)
    ]
    # The decision and the trades were committed in one transaction: each decision record
    # is followed by its transaction's marker on hub.decisions.
    ends = hub.log.end_offsets(DECISIONS_TOPIC)[0]
    offsets = [r.offset for r in hub.log.read(DECISIONS_TOPIC, 0, start, ends - start)]
    assert len(offsets) == 3 and all(b - a == 2 for a, b in pairwise(offsets))
    # Every one has its ledger leaf, and the ledger verifies.
    hub.ledger.sync()
    leaves = {(row[1], row[2], row[3]) for rows in hub.ledger.store.iter_leaves() for row in rows}
    assert all((DECISIONS_TOPIC, 0, o) in leaves for o in offsets)
    assert verify_ledger(hub.ledger).ok


def test_refused_and_failed_requests_record_their_decision_alone(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = hub.keys.create(["admin"], principal="root").token
    reader = hub.keys.create(["analyst"], principal="ann").token
    start = hub.log.end_offsets(DECISIONS_TOPIC)[0]
    trades = hub.log.end_offsets("trades")
    with TestClient(create_app(hub), raise_server_exceptions=False) as client:
        # 1. denied: nothing appended, the denial recorded
        r = client.post(
            "/v1/ingest/trades",
            content=json_body(3, random.Random(3), 0.0, False),
            headers={**_auth(reader), "X-Hub-Purpose": "denied"},
        )
        assert r.status_code == 403, r.text
        # 2. allowed, the body refused whole (422): the allow recorded alone
        r = client.post(
            "/v1/ingest/trades",
            content=b'{"events": [',
            headers={**_auth(admin), "X-Hub-Purpose": "malformed"},
        )
        assert r.status_code == 422, r.text
        # 3. allowed, an unknown topic (404)
        r = client.post(
            "/v1/ingest/no-such-topic",
            content=json_body(3, random.Random(3), 0.0, False),
            headers={**_auth(admin), "X-Hub-Purpose": "unknown-topic"},
        )
        assert r.status_code == 404, r.text
        # 4. allowed, the batch's transaction fails at its commit: the decision still stored
        real = SqliteEventLog.transaction

        def failing(self: SqliteEventLog, transactional_id: str) -> Any:
            if transactional_id.startswith("ingest:"):
                raise OSError("disk I/O error (test)")
            return real(self, transactional_id)

        monkeypatch.setattr(SqliteEventLog, "transaction", failing)
        r = client.post(
            "/v1/ingest/trades",
            content=json_body(3, random.Random(4), 0.0, False),
            headers={**_auth(admin), "X-Hub-Purpose": "commit-failed"},
        )
        assert r.status_code >= 500, r.text
        monkeypatch.setattr(SqliteEventLog, "transaction", real)
        # 5. an Avro body that ends inside a frame (422)
        r = client.post(
            "/v1/ingest/trades/avro",
            content=b"\x00\x00\x00\x09abc",
            headers={**_auth(admin), "X-Hub-Purpose": "avro-truncated"},
        )
        assert r.status_code == 422, r.text
    got = {
        d["purpose"]: d["allow"] for d in decisions(hub, start) if d["action"] == "ingest.publish"
    }
    assert got == {
        "denied": False,
        "malformed": True,
        "unknown-topic": True,
        "commit-failed": True,
        "avro-truncated": True,
    }
    assert hub.log.end_offsets("trades") == trades  # nothing of any of them appended


class _Ids:
    """The same decision ids and decision times on both hubs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._ids = count()
        monkeypatch.setattr(decisions_module, "new_decision_id", self._next)

    def _next(self) -> str:
        return "01900000-0000-7000-8000-%012d" % next(self._ids)  # noqa: UP031

    def restart(self) -> None:
        self._ids = count()


def _requests(h: Hub, bodies: list[tuple[str, bytes]]) -> list[Any]:
    h.keys._new_id = lambda prefix: prefix + "0123456789abcdef"  # type: ignore[method-assign]
    token = h.keys.create(["admin"], principal="root").token
    stamp = iter(range(1_900_000_000_000_000_000, 2**62, 1_000_000_000))
    h.policy._clock_ns = lambda: next(stamp)  # type: ignore[attr-defined]
    out = []
    with TestClient(create_app(h)) as client:
        for media, body in bodies:
            r = client.post(
                "/v1/ingest/trades", content=body, headers={**_auth(token), "Content-Type": media}
            )
            answer = r.json()
            if r.status_code == 200:
                answer.pop("ledger")  # the tree sizes differ by the decisions' markers
                for rej in answer.get("rejections", []):
                    rej.pop("receipt", None)
            out.append((r.status_code, answer))
    return out


def _decision_records(h: Hub) -> list[tuple[Any, ...]]:
    """Every request's decision record as stored (key, value bytes, headers), in order."""
    h.policy.committer.flush()  # type: ignore[attr-defined]
    end = h.log.end_offsets(DECISIONS_TOPIC)[0]
    return [
        (r.key, r.value, r.headers)
        for r in h.log.read(DECISIONS_TOPIC, 0, 0, end)
        if b"ingest.publish" in (r.value or b"")
    ]


def test_the_records_stored_are_the_path_befores(
    tmp_path: Path, fixed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(26)
    bodies: list[tuple[str, bytes]] = [("application/json", b) for b in ODD_BODIES]
    for k in range(12):
        n = rnd.choice([1, 20, 150])
        body = json_body(n, rnd, rnd.choice([0.0, 0.2]), envelopes=k % 4 == 0, base=1000 * k)
        bodies.append(("application/json", body))
    bodies.append((ARROW, _arrow_body(25)))
    bodies.append(("application/json", json.dumps({"events": []}).encode()))
    ids = _Ids(monkeypatch)
    seen = []
    for name in ("before", "after"):  # one after the other: one chDB session per process
        fixed()
        ids.restart()
        h = _hub(tmp_path / name)
        try:
            with monkeypatch.context() as m:
                if name == "before":  # the path before: the decision stored by its flusher
                    m.setattr(h.log, "commits_locally", False)
                flushed = h.policy.committer.stats.records  # type: ignore[attr-defined]
                answers = _requests(h, bodies)
                flushed = h.policy.committer.stats.records - flushed  # type: ignore[attr-defined]
            h.ledger.sync()
            assert verify_ledger(h.ledger).ok
            seen.append(
                (answers, _batches(h, "trades"), quarantined(h), _decision_records(h), flushed)
            )
        finally:
            h.close()
    before, after = seen
    assert sum(1 for status, _ in before[0] if status == 200) >= 12
    assert len(before[3]) == len(bodies)
    assert after[0] == before[0]  # the answers
    assert after[1] == before[1]  # the trades' stored batches, byte for byte
    assert after[2] == before[2]  # the quarantine entries with their originals
    assert after[3] == before[3]  # every request's decision record, byte for byte
    # Before, the flusher stored every request's decision; now only those of the requests
    # whose batch stored nothing of theirs (refused whole).
    refused = sum(1 for status, _ in before[0] if status != 200)
    assert before[4] >= len(bodies) and after[4] <= before[4] - (len(bodies) - refused)


def test_a_group_commit_stores_each_batchs_decision_once_and_a_failed_ones_alone(
    hub: Hub,
) -> None:
    """Three batches queue together with their requests' held decisions; the group's
    transaction fails (batch 0's replay marks raise), each is committed again alone: batches 1
    and 2 store their decisions with their records, batch 0's stays pending and is stored alone
    by its ``settle``. Each decision is on ``hub.decisions`` exactly once."""
    from core.ports.policy import Principal
    from tests.service.test_ingest_concurrent import body
    from tests.service.test_ingest_groupcommit import queued_together

    policy: Any = hub.policy
    root = Principal("root", frozenset({"admin"}), "default")
    start = hub.log.end_offsets(DECISIONS_TOPIC)[0]
    held = []
    for k in range(3):
        decision, h = policy.decide_held(root, "ingest.publish", "/v1/ingest/trades", {"k": k})
        assert decision.allow and h is not None
        held.append(h)
    flushed = _flusher_batches(hub)

    class Boom(Exception):
        pass

    def marks(found: Any) -> Any:
        raise Boom("the replay marks could not be written")

    companions = [h.companion() for h in held]

    def one(k: int) -> Any:
        from hub.api.ingest_batch import reference_records

        return lambda: hub.ingest.ingest(
            "trades",
            reference_records(body(k), ndjson=False),
            source="t",
            producer="t",
            marks=marks if k == 0 else None,
            companions=[companions[k]],
        )

    answers = queued_together(hub, [one(k) for k in range(3)])
    assert isinstance(answers[0], Boom), answers[0]
    assert [c.pending for c in companions] == [True, False, False]
    assert _flusher_batches(hub) == flushed  # batches 1 and 2 took theirs along
    for h in held:
        h.settle()  # the route's exit: stores batch 0's alone, nothing for the others
    assert _flusher_batches(hub) == flushed + 1
    ids = [d["decision_id"] for d in decisions(hub, start)]
    assert sorted(ids) == sorted(h.decision_id for h in held)
