"""Requests verifying API keys share the keyring's catch-ups (on Kafka each is a ListOffsets
round trip, paid one after another under the keyring's lock), but never one that began before
they arrived: a key revoked before a request arrived is refused to it.

The log is the real embedded one; its ``end_offsets`` is wrapped only to count the calls and to
hold one catch-up open (a slow broker) while other requests arrive."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import Unauthenticated
from governance.apikeys import PEPPER_FILE, ApiKeys, load_pepper
from governance.enrolment import TOPIC
from hub.bootstrap import Hub
from ingest.publish import EventReader
from tests.service.test_registry_shared_catchup import _hold_one_catch_up, _SlowEnds


def _other_instance(hub: Hub) -> ApiKeys:
    """A second keyring on the same log (another ``hub serve`` process), with its own fold."""
    return ApiKeys(
        hub.log,
        EventReader(hub.log, hub.registry, redact=False),
        hub.publisher,
        load_pepper(hub.settings.data_dir / "keys" / PEPPER_FILE),
    )


def test_requests_that_arrived_during_a_catch_up_share_the_next_one(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, _, secret = hub.keys.create(["analyst"], principal="ann").token.partition(":")
    slow = _SlowEnds(hub.log, TOPIC)
    monkeypatch.setattr(hub.log, "end_offsets", slow)
    holder = _hold_one_catch_up(slow, lambda: hub.keys.verify(key_id, secret))
    answers: list[str] = []
    requests = [
        threading.Thread(target=lambda: answers.append(hub.keys.verify(key_id, secret).id))
        for _ in range(7)
    ]
    for t in requests:
        t.start()
    time.sleep(0.3)  # all seven wait for the lock the holder's catch-up keeps
    slow.release.set()
    for t in [holder, *requests]:
        t.join(10)
    assert len(answers) == 7 and len(set(answers)) == 1
    # the holder's catch-up, then ONE begun after the seven arrived; without sharing: eight
    assert slow.calls == 2


def test_a_catch_up_begun_before_a_revocation_is_not_shared_with_a_later_request(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, _, secret = hub.keys.create(["analyst"], principal="ann").token.partition(":")
    other = _other_instance(hub)
    slow = _SlowEnds(hub.log, TOPIC)
    monkeypatch.setattr(hub.log, "end_offsets", slow)
    # the keyring's catch-up read its ends, then another instance revokes the key
    holder = _hold_one_catch_up(slow, lambda: hub.keys.verify(key_id, secret))
    other.revoke(key_id, revoked_by="ops", reason="left")
    refused: list[Exception] = []

    def late_request() -> None:
        try:
            hub.keys.verify(key_id, secret)
        except Unauthenticated as exc:
            refused.append(exc)

    late = threading.Thread(target=late_request)
    late.start()  # arrives after the revocation, while the older catch-up still runs
    time.sleep(0.2)
    slow.release.set()
    holder.join(10)
    late.join(10)
    assert len(refused) == 1 and "revoked" in str(refused[0])  # its own catch-up saw it
