"""A publish on Kafka no longer asks the broker for ``_schemas``' end offsets every time (issue 13,
session 26): the write path's schema lookup (``SchemaRegistry.writer_version``) is a watched
catch-up (``core.fold``), answered from the log's tail watcher of ``_schemas``
(``adapters.kafka_log.tailwatch``) while it learnt of nothing new, for at most
``HUB_REGISTRY_TAIL_WATCH_S``.

- the ListOffsets of ``_schemas`` per publish: counted through a wrapper of the log's
  ``_watermarks`` (every ListOffsets of a one-partition topic goes through it): 1 per publish
  before, none once the watcher runs;
- a schema registered by ANOTHER process (a second hub in a child process, same namespace) is
  seen by this process's publishes long before the bound (the watcher learnt of it);
- with a watcher that learns nothing (a broker restart, a fetch in backoff: stood in for by
  answering "quiet" whatever happens), it is seen within the bound all the same;
- a registration through this process is seen at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from registry.service import SCHEMAS_TOPIC
from tests.contract.test_eventlog_kafka import kafka_bootstrap

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "kw.test",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "qty", "type": "long"},
    ],
}
EVOLVED = {**ORDER, "fields": [*ORDER["fields"], {"name": "px", "type": "double", "default": 0}]}
# the other process: a second hub on the same namespace and keys registers EVOLVED
OTHER = """
import json, sys
from hub.bootstrap import bootstrap
from hub.settings import load_settings
data, kafka, prefix, subject, schema = sys.argv[1:6]
h = bootstrap(load_settings(environ={}, data_dir=data, event_log="kafka",
    kafka_bootstrap_servers=kafka, kafka_topic_prefix=prefix))
try:
    print(h.registry.register(subject, schema).id)
finally:
    h.close()
"""


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


@pytest.fixture
def make(kafka: str, tmp_path: Path) -> Iterator[Callable[[float], tuple[Hub, str]]]:
    made: list[Hub] = []
    prefix = f"w{uuid.uuid4().hex[:10]}."

    def make(watch_s: float) -> tuple[Hub, str]:
        h = bootstrap(
            load_settings(
                environ={},
                data_dir=tmp_path / "a",
                event_log="kafka",
                kafka_bootstrap_servers=kafka,
                kafka_topic_prefix=prefix,
                registry_tail_watch_s=watch_s,
            )
        )
        made.append(h)
        return h, prefix

    yield make
    for h in made:
        h.close()


def count_list_offsets(h: Hub) -> dict[str, int]:
    """Count the log's ListOffsets per topic (one-partition topics: ``_watermarks``)."""
    counts: dict[str, int] = {}
    real = h.log._watermarks  # type: ignore[attr-defined]

    def counted(topic: str, **kw: Any) -> dict[int, int]:
        counts[topic] = counts.get(topic, 0) + 1
        return real(topic, **kw)  # type: ignore[no-any-return]

    h.log._watermarks = counted  # type: ignore[attr-defined]
    return counts


def setup_topic(h: Hub) -> tuple[str, str]:
    topic = f"kw.orders.{uuid.uuid4().hex[:6]}"
    h.log.create_topic(topic, 1, {"hub.subject.strategy": "topic"})
    subject = f"{topic}-value"
    h.registry.register(subject, json.dumps(ORDER))
    return topic, subject


def publish(h: Hub, topic: str, n: int = 1) -> int:
    """Publish ``n`` orders; the schema id the last record was written with."""
    events = [OutgoingEvent(value={"order_id": f"o{i}", "qty": i}) for i in range(n)]
    meta = h.publisher.publish(topic, events, producer="kw")
    (rec,) = h.log.read(topic, meta[-1].partition, meta[-1].offset, 1)
    return int(h.reader.decode(rec)["schema_id"])


def register_elsewhere(tmp_path: Path, kafka: str, prefix: str, subject: str) -> int:
    """Register EVOLVED through a second hub in a child process (its own log, producer and
    consumers; the same namespace and log MAC key, as a hub's other process has)."""
    other = tmp_path / "b"
    (other / "keys").mkdir(parents=True, mode=0o700)
    shutil.copy2(tmp_path / "a" / "keys" / "log.mac", other / "keys" / "log.mac")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", OTHER, str(other), kafka, prefix, subject, json.dumps(EVOLVED)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1])


def test_publishes_ask_the_broker_for_the_schemas_end_offsets_no_more(make: Any) -> None:
    h, _ = make(60.0)
    topic, _ = setup_topic(h)
    publish(h, topic)  # the watcher of _schemas starts here
    publish(h, topic)
    counts = count_list_offsets(h)
    for _ in range(20):
        publish(h, topic, 10)
    # before: one ListOffsets of _schemas per publish (the registry's catch-up), 20 here
    assert counts.get(SCHEMAS_TOPIC, 0) == 0, counts


def test_without_the_watch_every_publish_asks_as_before(make: Any) -> None:
    h, _ = make(0.0)
    topic, _ = setup_topic(h)
    publish(h, topic)
    counts = count_list_offsets(h)
    for _ in range(5):
        publish(h, topic)
    assert counts.get(SCHEMAS_TOPIC, 0) == 5, counts


def test_a_schema_registered_by_another_process_is_seen_well_within_the_bound(
    make: Any, kafka: str, tmp_path: Path
) -> None:
    h, prefix = make(60.0)  # the bound alone would take a minute: the watcher must learn it
    topic, subject = setup_topic(h)
    first = publish(h, topic)
    publish(h, topic)  # the watcher runs
    second = register_elsewhere(tmp_path, kafka, prefix, subject)
    assert second != first
    registered = time.monotonic()
    while publish(h, topic) != second:
        assert time.monotonic() - registered < 10, "another process's schema not seen in 10 s"
        time.sleep(0.05)


def test_a_watcher_that_learns_nothing_is_trusted_no_longer_than_the_bound(
    make: Any, kafka: str, tmp_path: Path
) -> None:
    h, prefix = make(1.0)
    topic, subject = setup_topic(h)
    first = publish(h, topic)
    # a watcher deaf to the broker (its connection down, its fetch in backoff): always "quiet"
    h.log.tail_quiet = lambda topic, positions: True  # type: ignore[method-assign]
    publish(h, topic)
    second = register_elsewhere(tmp_path, kafka, prefix, subject)
    registered = time.monotonic()
    while True:
        began = time.monotonic()
        seen = publish(h, topic)
        if seen == second:
            break
        assert seen == first
        # the bound counts from the registry's last query, begun before the registration
        # ended: a lookup that begins more than the bound after it must ask, and see it
        assert began - registered < 1.0, "a lookup begun past the bound missed the schema"
        time.sleep(0.05)


def test_a_registration_through_this_process_is_seen_at_once(make: Any) -> None:
    h, _ = make(60.0)
    topic, subject = setup_topic(h)
    publish(h, topic)
    publish(h, topic)
    counts = count_list_offsets(h)
    second = h.registry.register(subject, json.dumps(EVOLVED)).id
    assert publish(h, topic) == second
    assert counts.get(SCHEMAS_TOPIC, 0) >= 1  # the publish after it asked the broker again
