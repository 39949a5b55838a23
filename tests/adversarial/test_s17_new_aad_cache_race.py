"""s17 new-code review: the publisher's AAD cache (``Publisher._aads_of``) under concurrency.

A batch checks which of its subjects the cached ``{subject: AAD}`` of (topic, field, tenant)
lacks, then takes the cache lock to add them. If another thread's batch empties the full cache
in between (any publisher naming many subjects does: the cache is hub-wide and bounded), the
first batch added only what the OLD dict lacked to a NEW empty dict and looked every subject
up in it: ``KeyError`` for the subjects it had found cached, so a tenant's publish failed
because of another tenant's traffic. The other thread's reset is played at the exact moment
it can happen (when the lock is taken), with the same statement ``_aads_of`` runs.
"""

from __future__ import annotations

from typing import Any

from adapters.local_keystore import LocalKeyStore
from adapters.sqlite_log import SqliteEventLog
from core.avro import serde
from core.events import STRATEGY_CONFIG, OutgoingEvent
from core.metrics import Metrics
from core.pii import encrypted_schema
from core.ports.keystore import make_aad
from ingest.publish import Publisher
from registry.service import SchemaRegistry
from tests.unit.test_publish_batch import PERSON_TEXT


class _ResetOnEnter:
    """A lock whose next acquisition first does what a concurrent batch that found the cache
    full does (``self._aads, self._aads_held = {}, 0``), as if it had just released it."""

    def __init__(self, publisher: Publisher) -> None:
        import threading

        self.publisher, self.lock, self.armed = publisher, threading.Lock(), False

    def __enter__(self) -> None:
        self.lock.acquire()
        if self.armed:
            self.armed = False
            self.publisher._aads, self.publisher._aads_held = {}, 0

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def _events(subjects: list[str]) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={"account_id": s, "name": f"n-{s}", "iban": None, "amount": "1.00"},
            event_type="com.hub.Person",
        )
        for s in subjects
    ]


def test_a_batch_survives_the_cache_being_emptied_by_another_batch(tmp_path: Any) -> None:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    keystore = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    publisher = Publisher(log, registry, 4096, Metrics(), keystore)
    log.create_topic("t.people", 1, {STRATEGY_CONFIG: "topic_record"})
    registry.register("t.people-com.hub.Person", encrypted_schema(PERSON_TEXT))
    target = publisher.targets.resolve("t.people", "com.hub.Person")
    guard = _ResetOnEnter(publisher)
    publisher._aads_guard = guard  # type: ignore[assignment]
    publisher._prepare_batch("t.people", _events(["A1", "A2"]), "svc", "acme")  # cached
    guard.armed = True  # the next batch: A1 and A2 cached, A3 new; emptied meanwhile
    records = publisher._prepare_batch("t.people", _events(["A1", "A2", "A3"]), "svc", "acme")
    assert len(records) == 3
    for r, s in zip(records, ["A1", "A2", "A3"], strict=True):
        datum = serde.decode(r.value or b"", target.schema)
        aad = make_aad("t.people", "name", s, "acme")
        acme = keystore.for_tenant("acme")  # s18: acme's own keys
        assert acme.decrypt(s, datum["name"], aad) == serde_string(f"n-{s}")
    keystore.close()
    log.close()


def serde_string(text: str) -> bytes:
    data = text.encode()
    return bytes([2 * len(data)]) + data
