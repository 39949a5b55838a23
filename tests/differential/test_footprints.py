"""Differential: one event set through the embedded footprint and through Kafka + PostgreSQL.

The embedded hub (SQLite log, chDB and SQLite views, SQLite ledger) and the distributed one
(Kafka log, chDB and PostgreSQL views, PostgreSQL ledger) get the very same records: the event
set (a slice of the seeded demo day: accounts, quotes, trades, payments) is encoded once, with
fixed timestamps, and appended batch by batch to both logs. Both hubs share one key folder (data
keys for the PII fields, the ledger signing key), as a restored replica would. Then, byte for
byte:

- every projection over those topics has the same digest (rows, per table) on both;
- every leaf of the event set has the same hash on both hubs' own ledgers, and both verify;
- a ledger over the event set's topics (the hubs' start-up records carry their own clocks, so
  the full logs differ there) has the same leaves, roots at every checkpoint and size, and
  consistency proofs on SQLite and on PostgreSQL.

Needs a real Kafka and PostgreSQL (``infra/kafka.sh``, ``infra/postgres.sh``): started when
missing; skipped loudly locally when they cannot start, required under ``CI=true``.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.local_signer import LocalKeyFileSigner
from adapters.postgres_ledgerstore import PostgresLedgerStore
from adapters.sqlite_ledgerstore import SqliteLedgerStore
from core.events import OutgoingEvent
from core.ports.eventlog import EventLog, Record
from core.ports.ledgerstore import LedgerStore
from hub import demo
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.service import Ledger, LedgerConfig
from ledger.verify import verify_ledger
from projections.catalog import by_name
from tests import infra
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration

TOPICS = ("accounts", "quotes", "trades", "payments")
PER_TOPIC = 240
BATCH = 60
BASE_MS = 1_764_000_000_000  # the event set's log timestamps: BASE_MS + its index
ORIGIN = "hub.local/ledger"


def event_set() -> dict[str, list[OutgoingEvent]]:
    """The first PER_TOPIC valid demo events of each topic, in demo order."""
    out: dict[str, list[OutgoingEvent]] = {t: [] for t in TOPICS}
    for ev in demo.generate():
        if ev.topic in out and len(out[ev.topic]) < PER_TOPIC:
            value = {k: str(v) if isinstance(v, Decimal) else v for k, v in ev.value.items()}
            out[ev.topic].append(
                OutgoingEvent(value=value, event_type=ev.event_type, event_id=ev.event_id)
            )
        if all(len(v) == PER_TOPIC for v in out.values()):
            break
    return out


def encode(hub: Hub) -> dict[str, list[list[Record]]]:
    """The event set encoded by ``hub`` (its registry, its data keys), in batches, with fixed
    timestamps; an event its rules refuse (the demo holds a few bad ones) is left out."""
    n = itertools.count()
    out: dict[str, list[list[Record]]] = {}
    for topic, events in event_set().items():
        records: list[Record] = []
        for ev in events:
            try:
                (rec,) = hub.publisher.prepare(topic, [ev], producer="differential", tenant="acme")
            except Exception:
                continue
            records.append(dataclasses.replace(rec, timestamp_ms=BASE_MS + next(n)))
        out[topic] = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    return out


class EventSetTopics:
    """An EventLog seen through the event set's topics only (every other call passes on)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def topics(self) -> list[Any]:
        return [t for t in self._log.topics() if t.name in TOPICS]

    def all_end_offsets(self) -> dict[str, dict[int, int]]:  # what a ledger sync covers
        return {t: ends for t, ends in self._log.all_end_offsets().items() if t in TOPICS}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


@pytest.fixture(scope="module")
def footprints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Hub, Path]]:
    kafka = kafka_bootstrap()
    pg = infra.postgres_url("the differential test (Kafka + PostgreSQL footprint)")
    root = tmp_path_factory.mktemp("differential")
    schema = f"d_{uuid.uuid4().hex[:12]}"
    embedded_dir, kafka_dir = root / "embedded", root / "kafka"

    def embedded_hub() -> Hub:
        return bootstrap(load_settings(environ={}, data_dir=embedded_dir))

    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    first = embedded_hub()
    batches = encode(first)  # creates the data keys of the PII fields in the shared keyring
    first.close()
    shutil.copytree(embedded_dir / "keys", kafka_dir / "keys")
    # with its anchor (kept beside keys/): a keyring without it is refused as one put back
    shutil.copy2(embedded_dir / "keyring.anchor", kafka_dir / "keyring.anchor")
    embedded = embedded_hub()
    distributed = bootstrap(
        load_settings(
            environ={},
            data_dir=kafka_dir,
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=f"d{uuid.uuid4().hex[:10]}.",
            views_sql_url=f"{pg}?options=-csearch_path%3D{schema}",
            ledger_store="postgres",
            ledger_postgres_url=pg,
            ledger_postgres_schema=f"{schema}_ledger",
        )
    )
    try:
        for hub in (embedded, distributed):
            for topic in TOPICS:
                for batch in batches[topic]:
                    hub.log.append(topic, batch)
        yield embedded, distributed, root
    finally:
        embedded.close()
        distributed.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        store = PostgresLedgerStore(pg, schema=f"{schema}_ledger")
        store.drop()
        store.close()


def test_both_footprints_hold_the_same_event_set(footprints: tuple[Hub, Hub, Path]) -> None:
    embedded, distributed, _ = footprints
    assert distributed.projections.store("transactional")._engine.dialect.name == "postgresql"
    assert type(distributed.ledger.store).__name__ == "PostgresLedgerStore"
    for topic in TOPICS:
        assert embedded.log.end_offsets(topic) == distributed.log.end_offsets(topic), topic
        for part in embedded.log.end_offsets(topic):
            a = list(embedded.log.scan(topic, part))
            b = list(distributed.log.scan(topic, part))
            assert a == b and a, (topic, part)


def test_projection_digests_are_equal(footprints: tuple[Hub, Hub, Path]) -> None:
    embedded, distributed, _ = footprints
    names = ["accounts", "payments", "payment_aggregates", "market_bars", "positions", "quotes"]
    digests = []
    for hub in (embedded, distributed):  # one after the other: chDB has one session a process
        hub.projections.run(names)
        digests.append({n: hub.projections.digest(n, save=False) for n in names})
        hub.projections.close()
    for name in names:
        assert digests[0][name] == digests[1][name], name
        assert any(t["rows"] for t in digests[0][name].values()), f"{name} folded nothing"
    assert by_name("payments").store == "transactional"  # SQLite vs PostgreSQL compared


def test_the_hubs_ledgers_give_the_event_set_the_same_leaves(
    footprints: tuple[Hub, Hub, Path],
) -> None:
    embedded, distributed, _ = footprints
    for hub in (embedded, distributed):
        hub.ledger.sync(force_checkpoint=True)
    compared = 0
    for topic in TOPICS:
        for part in embedded.log.end_offsets(topic):
            for rec in embedded.log.scan(topic, part):
                a = embedded.ledger.store.leaf(embedded.ledger.index_of(topic, part, rec.offset))
                b = distributed.ledger.store.leaf(
                    distributed.ledger.index_of(topic, part, rec.offset)
                )
                assert a is not None and b is not None
                assert a[1:] == b[1:], (topic, part, rec.offset)  # all but the leaf index
                compared += 1
    assert compared >= len(TOPICS) * BATCH
    for hub in (embedded, distributed):
        report = verify_ledger(hub.ledger)
        assert report.ok, [p.message for p in report.problems]


def test_a_ledger_of_the_event_set_has_the_same_roots_on_sqlite_and_postgres(
    footprints: tuple[Hub, Hub, Path],
) -> None:
    embedded, distributed, root = footprints
    pg = PostgresLedgerStore(infra.postgres_url(), schema=f"d_{uuid.uuid4().hex[:12]}")
    stores: list[LedgerStore] = [SqliteLedgerStore(root / "event-set.sqlite"), pg]
    signer = LocalKeyFileSigner(root / "event-set.key", ORIGIN)
    config = LedgerConfig(origin=ORIGIN, checkpoint_every_leaves=100, sync_batch=150)
    try:
        ledgers = [
            Ledger(EventSetTopics(hub.log), store, signer, config)  # type: ignore[arg-type]
            for hub, store in zip((embedded, distributed), stores, strict=True)
        ]
        results = [ledger.sync(force_checkpoint=True) for ledger in ledgers]
        assert results[0].appended == results[1].appended > 0
        assert results[0].checkpoints == results[1].checkpoints
        size = results[0].size
        a, b = stores
        assert [r for batch in a.iter_leaves() for r in batch] == [
            r for batch in b.iter_leaves() for r in batch
        ]
        assert list(a.iter_chunks()) == list(b.iter_chunks())
        sizes = [cp.size for cp in a.checkpoints()]
        assert sizes == [cp.size for cp in b.checkpoints()] and sizes[-1] == size
        assert [cp.root for cp in a.checkpoints()] == [cp.root for cp in b.checkpoints()]
        for s in (1, 99, 100, 257, size):
            assert a.root(s) == b.root(s), s
        assert a.consistency_proof(100, size) == b.consistency_proof(100, size)
        assert a.inclusion_proof(size - 1, size) == b.inclusion_proof(size - 1, size)
    finally:
        for store in stores:
            store.close()
        pg_again = PostgresLedgerStore(infra.postgres_url(), schema=pg.schema)
        pg_again.drop()
        pg_again.close()
