"""Register stores its ``schema.write`` decision and its ``_schemas`` record in ONE transaction.

Over real HTTP against the hub app on the embedded log: the registration's record is not
appended on its own, the decision is durable before every answer (errors and validation
answers included), and when the schema's append fails the decision is still stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from core.errors import TopicNotFound
from core.ports.eventlog import Record, Transaction
from core.ports.policy import Principal
from governance.decisions import DECISIONS_TOPIC, RecordingPolicyEngine
from hub.bootstrap import Hub
from ingest.publish import EventReader
from registry.service import SCHEMAS_TOPIC

from .conftest import _serve

TYPE = "application/vnd.schemaregistry.v1+json"
V1 = json.dumps(
    {"type": "record", "name": "P", "namespace": "t", "fields": [{"name": "a", "type": "string"}]}
)
BREAKS_V1 = json.dumps(
    {"type": "record", "name": "P", "namespace": "t", "fields": [{"name": "b", "type": "long"}]}
)


class Served:
    def __init__(self, hub: Hub, url: str, token: str) -> None:
        self.hub = hub
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )
        self.appends: list[str] = []  # topics appended outside a transaction
        self.unbuilt_at_start: list[str] = []
        self.slow_once = threading.Event()
        self.slow_until = 0  # companions queued behind the slow commit before it goes on
        self.app_routes: list[Any] = []
        self.transactions = 0
        real_append, real_txn = hub.log.append, hub.log.transaction

        def append(topic: str, records: Any, **kw: Any) -> Any:
            self.appends.append(topic)
            return real_append(topic, records, **kw)

        def transaction(tid: str) -> AbstractContextManager[Transaction]:
            self.transactions += 1
            if self.slow_once.is_set():  # a slow disk, once: the next batch fills meanwhile
                self.slow_once.clear()
                committer = getattr(hub.policy, "committer", None)
                deadline = time.monotonic() + 3  # less than a decision's wait (5 s)
                while time.monotonic() < deadline and committer is not None:
                    batches = [committer._batch, *committer._storing]
                    if sum(len(b.companions) for b in batches) >= self.slow_until:
                        break
                    time.sleep(0.01)
            return real_txn(tid)

        hub.log.append = append  # type: ignore[method-assign]  # a spy: the real append runs
        hub.log.transaction = transaction  # type: ignore[method-assign]

    def register(self, subject: str, body: bytes, query: str = "") -> httpx.Response:
        return self.http.post(
            f"/subjects/{subject}/versions{query}", content=body, headers={"Content-Type": TYPE}
        )

    def decisions(self) -> list[dict[str, Any]]:
        """What is stored on hub.decisions now (nothing flushed first: durable ones only)."""
        reader = EventReader(self.hub.log, self.hub.registry)
        end = self.hub.log.end_offsets(DECISIONS_TOPIC)[0]
        return [reader.decode(r)["value"] for r in self.hub.log.read(DECISIONS_TOPIC, 0, 0, end)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path_factory.mktemp("one-commit") / "data"
    hub = bootstrap(load_settings(environ={}, data_dir=data))
    token = hub.keys.create(["admin"], principal="test-admin").token
    app = create_app(hub)
    unbuilt = _unbuilt_routers(app.router.routes)  # before any request
    url, stop = _serve(app)
    s = Served(hub, url, token)
    s.unbuilt_at_start = unbuilt
    s.app_routes = list(app.router.routes)
    s.http.get("/subjects")  # the decisions topic and its schema exist from here on
    try:
        yield s
    finally:
        s.http.close()
        stop()
        hub.close()


def _writes(s: Served, path: str) -> list[dict[str, Any]]:
    return [d for d in s.decisions() if d["action"] == "schema.write" and d["resource"] == path]


def test_register_appends_its_decision_and_schema_in_one_transaction(served: Served) -> None:
    served.appends.clear()
    transactions = served.transactions
    answer = served.register("one-value", json.dumps({"schema": V1}).encode())
    assert answer.status_code == 200, answer.text
    schema_id = answer.json()["id"]
    assert SCHEMAS_TOPIC not in served.appends  # not appended on its own
    assert served.transactions == transactions + 1
    (decision,) = _writes(served, "/subjects/one-value/versions")
    assert decision["allow"]
    stored = served.hub.log.read(SCHEMAS_TOPIC, 0, 0, 10_000)
    assert any(json.loads(r.value or b"{}").get("id") == schema_id for r in stored)
    # the same schema again: nothing to append, the decision is stored alone
    again = served.register("one-value", json.dumps({"schema": V1}).encode())
    assert again.json() == {"id": schema_id}
    assert served.transactions == transactions + 1
    assert len(_writes(served, "/subjects/one-value/versions")) == 2


@pytest.mark.parametrize(
    ("subject", "body", "query", "status"),
    [
        ("bad-value", b'{"schema": "{\\"type\\": \\"nope\\"}"}', "", 422),  # invalid schema
        ("bad-value", b"{not json", "", 422),
        ("bad-value", json.dumps({"schema": V1}).encode(), "?normalize=maybe", 422),
        ("one-value", json.dumps({"schema": BREAKS_V1}).encode(), "", 409),  # incompatible
    ],
)
def test_every_answer_comes_after_its_decision_is_stored(
    served: Served, subject: str, body: bytes, query: str, status: int
) -> None:
    assert served.register("one-value", json.dumps({"schema": V1}).encode()).status_code == 200
    path = f"/subjects/{subject}/versions"
    before = len(_writes(served, path))
    answer = served.register(subject, body, query)
    assert answer.status_code == status, answer.text
    after = _writes(served, path)  # read at once: stored before the answer was sent
    assert len(after) == before + 1 and after[-1]["allow"]


def test_a_failed_schema_append_keeps_its_decision(served: Served) -> None:
    policy = served.hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    admin = Principal("test-admin", frozenset({"admin"}))
    decision, held = policy.decide_held(admin, "schema.write", "/subjects/x/versions")
    assert decision.allow and held is not None
    with pytest.raises(TopicNotFound):  # the action's append fails inside the transaction
        held.commit("no-such-topic", [Record(value=b"{}", key=b"k")])
    ids = [d["decision_id"] for d in served.decisions()]
    assert decision.decision_id in ids  # stored on its own: never lost with the action


def test_concurrent_registrations_share_transactions_and_get_dense_ids(served: Served) -> None:
    before_ids = served.hub.registry.schema_ids()
    transactions = served.transactions
    answers: dict[int, httpx.Response] = {}

    def register(k: int) -> None:
        schema = json.dumps(
            {"type": "record", "name": f"G{k}", "fields": [{"name": "a", "type": "string"}]}
        )
        with httpx.Client(base_url=str(served.http.base_url), headers=served.http.headers) as c:
            answers[k] = c.post(
                f"/subjects/group-{k}-value/versions",
                content=json.dumps({"schema": schema}).encode(),
                headers={"Content-Type": TYPE},
                timeout=30.0,
            )

    served.slow_until = 8  # every registration queued (this one's batch or the next)
    served.slow_once.set()
    threads = [threading.Thread(target=register, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a.status_code == 200 for a in answers.values()), [a.text for a in answers.values()]
    ids = sorted(a.json()["id"] for a in answers.values())
    top = max(before_ids, default=0)
    assert ids == list(range(top + 1, top + 9))  # unique and dense
    # one registration per transaction before (the registry's lock was held through it): now
    # those that arrive during the first one's commit share the next
    # (2 on a quiet machine; a loaded one may trickle a few, so the bound only says "shared")
    used = served.transactions - transactions
    assert used < 8, f"{used} transactions for 8 registrations: none shared"


def test_registry_register_takes_a_caller_append(served: Served) -> None:
    seen: list[tuple[str, int]] = []
    log = served.hub.log

    def append(topic: str, records: Any) -> Any:
        seen.append((topic, len(records)))
        return log.append(topic, records)

    sv = served.hub.registry.register("direct-value", V1, append=append)
    assert seen == [(SCHEMAS_TOPIC, 1)]
    assert served.hub.registry.get_version("direct-value", "latest").id == sv.id


def _unbuilt_routers(routes: Any) -> list[str]:
    """Included routers whose route contexts FastAPI has not built yet (it builds them on the
    first request that reaches them unless ``create_app`` did: ``hub.api.app.warm_routes``)."""
    out: list[str] = []
    for route in routes:
        if callable(getattr(route, "effective_candidates", None)):
            if route._effective_candidates_version is None:
                out.append(str(route.original_router.prefix or route.original_router))
            else:
                out.extend(_unbuilt_routers(route._effective_candidates))
    return out


def test_create_app_builds_every_router_before_the_first_request(served: Served) -> None:
    included = [r for r in served.app_routes if callable(getattr(r, "effective_candidates", 0))]
    assert len(included) >= 10  # the hub's routers are included routers (FastAPI 0.165)
    assert served.unbuilt_at_start == []
