"""API keys verified for the event loop in shared batches (``hub.api.auth.KeyChecks``, s22):
the requests that arrived while a key catch-up ran share the next one, and a key revoked by
another instance before a request arrived is refused to it, on the registry's fast path and
on the full stack alike.

The log is the real embedded one, taken for a server's (``EventLog.remote``); its
``end_offsets`` is wrapped only to count the keys topic's end-offset reads and to hold one
catch-up open (a slow broker) while requests arrive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from adapters.kafka_log.log import KafkaEventLog
from governance.enrolment import TOPIC
from hub.api.app import create_app
from hub.api.auth import KeyChecks
from hub.bootstrap import Hub
from tests.service.test_apikeys_shared_catchup import _other_instance
from tests.service.test_registry_shared_catchup import _hold_one_catch_up, _SlowEnds

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})


@pytest.fixture
def client(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app over ``hub``, its log taken for a server's (``EventLog.remote``, as Kafka's):
    keys are verified in the thread pool, in shared batches."""
    monkeypatch.setattr(hub.log, "remote", True)
    with TestClient(create_app(hub)) as c:
        yield c


def test_keys_are_verified_in_place_on_a_local_log(hub: Hub) -> None:
    """The embedded log's catch-up is a local read: no hop to the thread pool (s22: the hop
    made the embedded by-id p50 0.4-0.8x); Kafka's is a round trip: batched off the loop."""
    assert KeyChecks(hub)._in_place and not hub.log.remote and KafkaEventLog.remote


def _send_all(client: TestClient, paths: list[str], token: str) -> list[tuple[int, str]]:
    """GET each path from its own thread (all in flight together); (status, body) in order."""
    answers: list[tuple[int, str]] = [(0, "")] * len(paths)

    def get(i: int) -> None:
        r = client.get(paths[i], headers={"Authorization": f"Bearer {token}"})
        answers[i] = (r.status_code, r.text)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_requests_that_arrived_during_a_key_catch_up_share_the_next_one(
    hub: Hub, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = hub.keys.create(["admin"], principal="ann").token
    key_id, _, secret = token.partition(":")
    sid = hub.registry.register("s22-value", SCHEMA).id
    assert client.get(
        f"/schemas/ids/{sid}", headers={"Authorization": f"Bearer {token}"}
    ).is_success
    slow = _SlowEnds(hub.log, TOPIC)
    monkeypatch.setattr(hub.log, "end_offsets", slow)
    holder = _hold_one_catch_up(slow, lambda: hub.keys.verify(key_id, secret))
    arrived: list[int] = []  # a request takes the keyring's ticket when it arrives
    taken = hub.keys.ticket

    def ticket() -> int:
        arrived.append(1)
        return taken()

    monkeypatch.setattr(hub.keys, "ticket", ticket)
    results: list[list[tuple[int, str]]] = []
    sender = threading.Thread(
        target=lambda: results.append(_send_all(client, [f"/schemas/ids/{sid}"] * 8, token))
    )
    sender.start()
    deadline = time.monotonic() + 20  # the eight arrive while the holder's catch-up runs
    while len(arrived) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # the last arrival joins the waiting batch (one event-loop turn)
    slow.release.set()
    holder.join(10)
    sender.join(30)
    assert [status for status, _ in results[0]] == [200] * 8
    # the holder's catch-up and ONE begun after the eight arrived; verified one after another
    # in the event loop (before s22), each request caught up on its own: nine
    assert slow.calls == 2


@pytest.mark.parametrize("path", ["/schemas/ids/{sid}", "/subjects"])  # fast path, full stack
def test_a_key_revoked_before_the_request_arrived_is_refused(
    hub: Hub, client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    token = hub.keys.create(["admin"], principal="ann").token
    key_id, _, secret = token.partition(":")
    sid = hub.registry.register("s22-value", SCHEMA).id
    other = _other_instance(hub)
    slow = _SlowEnds(hub.log, TOPIC)
    monkeypatch.setattr(hub.log, "end_offsets", slow)
    # this instance's catch-up has read its ends; then another instance revokes the key
    holder = _hold_one_catch_up(slow, lambda: hub.keys.verify(key_id, secret))
    other.revoke(key_id, revoked_by="ops", reason="left")
    results: list[list[tuple[int, str]]] = []
    sender = threading.Thread(
        target=lambda: results.append(_send_all(client, [path.format(sid=sid)] * 3, token))
    )
    sender.start()  # arrive after the revocation, while the older catch-up still runs
    time.sleep(0.3)
    slow.release.set()
    holder.join(10)
    sender.join(30)
    assert [status for status, _ in results[0]] == [401] * 3
    assert all("revoked" in body for _, body in results[0])
