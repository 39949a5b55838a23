"""The Flink jobs' tenant MAC binds the namespace (session 21; s21-registry21 "left").

Before, the tenant MAC (``__hub.tmac``, ``core.tenant_mac``) bound a data topic's name without
the namespace prefix, under the hub's tenant key: two namespaces sharing the hub's keys (a
staging hub cloned from production's data folder) put the same tenant MAC on the same record,
so a genuine staging record claiming tenant acme, copied with its headers and timestamp into
production's topic, read as acme's in production's Flink views (the hub's own reader already
drops its tenant: the record MAC binds the namespace). Now a prefixed namespace's tenant MACs
are under its own key (``namespace_key``), which the jobs derive from the hub's; records the
namespace wrote before keep their tenant below its marker's offsets (compiled into the jobs'
SQL), and copies of such records from elsewhere land above them. Real Kafka (skipped without).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from adapters.kafka_log import KafkaEventLog
from core import tenant_mac
from core.ports.eventlog import Record, StoredRecord
from hub.flink import tenant_legacy
from projections.flink.compile import FlinkPlacement, tenant_args
from tests.adversarial.test_s18_flink_tenant_mac import env, raw
from tests.adversarial.test_s20_ha_kafka import _produce

pytestmark = pytest.mark.integration

MAC, TKEY = os.urandom(32), os.urandom(32)  # one hub's keys, shared by every namespace here
TOPIC = "payments"  # a data topic
TS = 1_764_979_200_000


@pytest.fixture
def logs(kafka: str) -> Iterator[list[KafkaEventLog]]:
    opened: list[KafkaEventLog] = []
    yield opened
    for log in opened:
        log.close()


def _open(kafka: str, prefix: str, opened: list[KafkaEventLog]) -> KafkaEventLog:
    log = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=MAC, tenant_key=TKEY)
    opened.append(log)
    log.bind_namespace()
    if TOPIC not in log.topics():
        log.create_topic(TOPIC, 1, {})
    return log


def _record(tenant: str, value: bytes = b"pay 100") -> Record:
    return Record(value, b"k", env(tenant, 0), timestamp_ms=TS)


def _copy(kafka: str, r: StoredRecord, target: str) -> None:
    """A record produced into ``target`` as the broker held it: headers (both MACs), timestamp."""
    _produce(kafka, target, r.value or b"", r.key, list(r.headers), timestamp=r.timestamp_ms)


def _job(prefix: str, r: StoredRecord, legacy: str = "") -> str:
    """What the job of namespace ``prefix`` reads the record's tenant as (the jobs' function,
    over the hub's key as the launcher hands it: ``HUB_FLINK_TENANT_KEY``)."""
    job = tenant_mac.JobTenant({prefix: TKEY})
    h = dict(r.headers)
    return job(h, r.key, r.value, r.partition, r.timestamp_ms, TOPIC, prefix, r.offset, legacy)


def test_the_same_record_gets_another_tenant_mac_in_another_namespace(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    """Failed on the unfixed code: both namespaces wrote the same ``__hub.tmac``."""
    tag = uuid.uuid4().hex[:8]
    macs = []
    for prefix in (f"s{tag}.", f"p{tag}."):
        _open(kafka, prefix, logs).append(TOPIC, [_record("acme")])
        (stored,) = raw(kafka, prefix + TOPIC)
        macs.append(dict(stored.headers)[tenant_mac.TMAC_HEADER])
    assert macs[0] != macs[1]


def test_another_namespaces_genuine_record_reads_as_default_in_the_flink_jobs(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    tag = uuid.uuid4().hex[:8]
    staging, production = f"s{tag}.", f"p{tag}."
    s, p = _open(kafka, staging, logs), _open(kafka, production, logs)
    p.append(TOPIC, [_record("globex", b"production's own")])
    s.append(TOPIC, [_record("acme", b"staging's acme payment")])
    (theirs,) = raw(kafka, staging + TOPIC)
    _copy(kafka, theirs, production + TOPIC)
    own, copied = raw(kafka, production + TOPIC)
    assert _job(staging, theirs) == "acme"  # genuine in its own namespace
    assert _job(production, own) == "globex"
    assert _job(production, copied) == "default"  # before: "acme"
    # the hub's own reader agrees (the record MAC binds the namespace too)
    assert [r.value for r in p.read(TOPIC, 0, 0, 1)] == [b"production's own"]


def test_the_default_namespace_keeps_the_hubs_tenant_key(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    log = KafkaEventLog(kafka, mac_key=MAC, tenant_key=TKEY)
    logs.append(log)
    log.create_topic(topic, 1, {})
    log.append(topic, [_record("acme")])
    (r,) = raw(kafka, topic)
    h = dict(r.headers)
    covered = [(n, h[n]) for n in tenant_mac.COVERED if n in h]
    want = tenant_mac.tenant_mac(TKEY, topic, 0, r.key, r.value, covered, r.timestamp_ms)
    assert h[tenant_mac.TMAC_HEADER] == want  # unchanged: no upgrade for the default namespace
    assert tenant_mac.namespace_key(TKEY, "") == TKEY


def test_records_of_before_the_bound_key_keep_their_tenant_and_copies_of_them_do_not(
    kafka: str, logs: list[KafkaEventLog]
) -> None:
    tag = uuid.uuid4().hex[:8]
    old, other = f"o{tag}.", f"x{tag}."
    for prefix in (old, other):  # written before: both MACs under the hub's unbound keys
        before = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=MAC, tenant_key=TKEY)
        logs.append(before)
        before._mac_key, before._tenant_key = MAC, TKEY  # as the code of before wrote them
        before.create_topic(TOPIC, 1, {})
        before.append(TOPIC, [_record("acme", f"{prefix} of before".encode())])
    upgraded = _open(kafka, old, logs)
    marks = tenant_legacy(upgraded)
    assert marks == {TOPIC: {0: 1}}
    legacy = tenant_mac.legacy_text(marks[TOPIC])
    assert legacy == "0:1"
    upgraded.append(TOPIC, [_record("acme", b"after")])
    (theirs,) = raw(kafka, other + TOPIC)
    _copy(kafka, theirs, old + TOPIC)  # lands at offset 2, above the marker
    first, after, copied = raw(kafka, old + TOPIC)
    assert _job(old, first, legacy) == "acme"  # the namespace's own record of before
    assert _job(old, after, legacy) == "acme"
    assert _job(old, copied, legacy) == "default"  # another namespace's, copied in
    assert _job(old, first, "") == "default"  # without the marker's offsets: not taken
    # the jobs' SQL carries the row's offset and the topic's legacy offsets
    at = FlinkPlacement("k", "r", "j", "u", "p", (), "py", topic_prefix=old, tenant_legacy=marks)
    assert tenant_args(TOPIC, at, "e").endswith(f"'{old}', e.`src_offset`, '0:1'")


def test_legacy_offsets_parse_strictly() -> None:
    assert tenant_mac.parse_legacy("0:5,2:7") == {0: 5, 2: 7}
    for bad in ("", "0:5,", "0-5", " 0:5", "0:5\n", "0:٥", f"0:{1 << 63}", "a:1"):
        assert tenant_mac.parse_legacy(bad) == {}, bad
    assert tenant_mac.legacy_text({1: 3, 0: 0}) == "1:3"
    # the default namespace has no legacy key: its key never changed
    assert tenant_mac.legacy_key_of(TKEY, "", 0, 0, {0: 5}) is None
    assert tenant_mac.legacy_key_of(TKEY, "a.", 0, 4, {0: 5}) == TKEY
    assert tenant_mac.legacy_key_of(TKEY, "a.", 0, 5, {0: 5}) is None
    assert tenant_mac.legacy_key_of(TKEY, "a.", 1, 0, {0: 5}) is None
    assert tenant_mac.legacy_key_of(TKEY, "a.", 0, None, {0: 5}) is None
