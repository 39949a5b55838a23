"""Upgrading a Kafka deployment written before record MACs (``hub migrate kafka-seal``).

Session 15 made every hub-topic record carry ``__hub.mac`` and refuses one without it; a
deployment written before that holds only unsealed hub records, so the upgraded hub would not
start. The migration checks each old record against its ledger leaf, has a second person
approve the plan's digest, and writes per-partition seals (adapters.kafka_log.seals). These
tests write the old deployment with the log's MAC key unset (what the pre-15 hub wrote) on the
real broker, and check: the upgraded hub names the command instead of starting; after the
migration it starts and reads the old records; a record produced after the migration, a replay
of an old one, and a forged record put below N (the topic re-created) are refused; a record
changed before the migration is refused by the plan, and then nothing is sealed.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

import hub.bootstrap as bootstrap_module
from adapters.kafka_log import KafkaEventLog
from adapters.kafka_log.batch import strip_idem
from audit.leaf import encode as leaf_input
from audit.merkle import leaf_hash
from core.errors import Conflict, LogTampered
from core.events import tenant_of
from core.ports.eventlog import Record, StoredRecord
from hub.bootstrap import bootstrap
from hub.cli import main, principal_of_token
from hub.migrate_kafka import RESOURCE, apply_seal_plan, kafka_log_of, seal_plan
from hub.settings import Settings, load_settings
from ledger.verify import verify_ledger
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.service.test_config_changes import ALICE, CAROL

pytestmark = pytest.mark.integration

PRINCIPALS = "hub.principals"
DATA = "kt.data"


@pytest.fixture(scope="module")
def kafka() -> str:
    return kafka_bootstrap()


@pytest.fixture
def old(
    kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """A deployment as the pre-15 hub left it: every record unsealed, the ledger synced; two
    keys issued (two principal records). Settings overrides by indirect parametrization."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        event_log="kafka",
        kafka_bootstrap_servers=kafka,
        kafka_topic_prefix=prefix,
        **getattr(request, "param", {}),
    )
    with monkeypatch.context() as m:

        def unsealed(s: Settings) -> KafkaEventLog:  # the log as it was: no MAC key
            return KafkaEventLog(s.kafka_bootstrap_servers, topic_prefix=s.kafka_topic_prefix)

        m.setattr(bootstrap_module, "build_event_log", unsealed)
        h = bootstrap(settings)
        try:
            admin = h.keys.create(["admin"], principal="ops").token
            tokens = [h.keys.create(["analyst"], principal=n).token for n in ("ann", "bea")]
            stored = list(kafka_log_of(h.log).scan_stored(PRINCIPALS, 0))
            # data written by the old hub for tenant acme (and one record naming no tenant)
            h.log.create_topic(DATA, 1, {})
            h.log.append(
                DATA,
                [
                    Record(key=b"a", value=b"acme's", headers=(("ce_tenant", b"acme"),)),
                    Record(key=b"n", value=b"nobody's"),
                    Record(key=b"d", value=b"default's", headers=(("ce_tenant", b"default"),)),
                ],
            )
        finally:
            h.close()  # gives every record its ledger leaf
    assert len(stored) >= 2 and all(not any(k == "__hub.mac" for k, _ in r.headers) for r in stored)
    yield {
        "settings": settings,
        "prefix": prefix,
        "tokens": tokens,
        "admin": admin,
        "stored": stored,
        "env": {
            "HUB_EVENT_LOG": "kafka",
            "HUB_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "HUB_KAFKA_TOPIC_PREFIX": prefix,
        },
    }


def _cli(old: dict[str, Any], *args: str) -> Result:
    data = str(old["settings"].data_dir)
    return CliRunner().invoke(main, ["--data-dir", data, *args], env=old["env"])


def _produce(kafka: str, wire: str, records: list[StoredRecord], forge: int | None = None) -> None:
    """Write records with a plain producer (no hub key), keeping key, headers and timestamp;
    the value of the one at index ``forge`` changed."""
    producer = Producer({"bootstrap.servers": kafka, "log_level": 0})
    for i, r in enumerate(records):
        value = r.value
        if i == forge:
            value = (value or b"").replace(b"analyst", b"admin") + b"x"
        producer.produce(
            wire,
            value=value,
            key=r.key,
            headers=list(r.headers) or None,
            timestamp=r.timestamp_ms,
            partition=r.partition,
        )
    assert producer.flush(30) == 0


def _recreate(kafka: str, wire: str, partitions: int) -> None:
    """Delete a topic and create it empty again (how anyone with admin rights on the broker gets
    records at old offsets)."""
    admin = AdminClient({"bootstrap.servers": kafka, "log_level": 0})
    for f in admin.delete_topics([wire]).values():
        f.result(30)
    deadline = time.monotonic() + 60
    while True:
        try:
            for f in admin.create_topics([NewTopic(wire, partitions, 1)]).values():
                f.result(30)
            break
        except Exception:  # still being deleted
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    time.sleep(1.0)


def _migrate(settings: Settings) -> dict[str, Any]:
    """Plan, two-person approval, apply (as the command does, in migration mode)."""
    h = bootstrap(settings, kafka_migration=True)
    try:
        plan = seal_plan(kafka_log_of(h.ledger.log), h.ledger.store)
        with pytest.raises(Conflict, match="approved"):  # nobody approved it yet
            apply_seal_plan(h, ALICE)
        change = h.config_changes.propose(ALICE, RESOURCE, plan.digest, "seal the pre-15 log")
        assert change.requires_approval
        h.config_changes.approve(CAROL, change.change_id, "plan checked against the ledger")
        return apply_seal_plan(h, ALICE)
    finally:
        h.close()


def test_an_old_deployment_migrates_and_starts_and_refuses_what_is_planted(
    old: dict[str, Any], kafka: str
) -> None:
    settings, prefix = old["settings"], old["prefix"]
    # 1. the upgraded hub does not start on unsealed records, and says what to run
    with pytest.raises(LogTampered, match="hub migrate kafka-seal"):
        bootstrap(settings)
    # ... and without a seal acme's old data record would read as tenant default's
    plain = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=_mac_key(settings))
    try:
        got = plain.read(DATA, 0, 0, 10)
        assert [tenant_of(r) for r in got] == ["default"] * 3
        assert all(r.headers == () for r in got)  # the old records' bytes as read: changed
    finally:
        plain.close()
    status = _cli(old, "--key", old["admin"], "keys", "list")
    assert status.exit_code != 0 and "hub migrate kafka-seal" in status.output, status.output
    # 2. the plan: every old hub record vouched (ledger, or listed internal state), none refused
    shown = _cli(old, "--key", old["admin"], "migrate", "kafka-seal")
    assert shown.exit_code == 0, shown.output
    shown_plan = json.loads(shown.output)
    assert shown_plan["refused"] == 0 and RESOURCE in shown_plan["approve_with"]
    out = _migrate(settings)
    assert out["digest"] == shown_plan["digest"]  # what the command showed is what was applied
    assert out["refused"] == 0
    parts = {(p["topic"], p["partition"]): p for p in out["partitions"]}
    principals = parts[(PRINCIPALS, 0)]
    assert principals["on_ledger"] == principals["records"] == len(old["stored"])
    assert principals["sealed_from"] == old["stored"][-1].offset + 1
    assert ("_schemas", 0) in parts
    data = parts[(DATA, 0)]
    claims = {"acme": 1, "default": 1}  # the records that carry ce_tenant need the seal
    assert (data["records"], data["on_ledger"], data["tenant_claims"]) == (2, 2, claims)
    # the adapter's internal state was never on the ledger: listed for the approvers, by offset
    internal = [p for (t, _), p in parts.items() if t.startswith("_hub_")]
    assert internal and all(p["listed_only"]["count"] == p["records"] for p in internal)
    shown_state = [e for p in internal for e in p["listed_only"]["first"]]
    assert shown_state and all({"key", "value", "value_sha256"} <= set(e) for e in shown_state)

    # 3. the upgraded hub starts, the old keys still authenticate, the migration is on the ledger
    h = bootstrap(settings)
    try:
        assert principal_of_token(h, old["tokens"][0]).id == "ann"
        tenants = ["acme", "default", "default"]
        assert [tenant_of(r) for r in h.log.read(DATA, 0, 0, 10)] == tenants
        # the auditor's check: every old record reads as the ledger's leaf committed to it
        report = verify_ledger(h.ledger)
        assert report.ok, report.problems[:3]
        # a claim written since the upgrade by a producer without the key stays dropped, and
        # a later plan does not offer to keep it (it follows the hub's first MAC'd record)
        h.log.append(DATA, [Record(key=b"h", value=b"hub's", headers=(("ce_tenant", b"acme"),))])
        forged = StoredRecord(
            DATA, 0, 0, 1_700_000_000_000, b"x", b"theirs", (("ce_tenant", b"acme"),)
        )
        _produce(kafka, prefix + DATA, [forged])
        got = h.log.read(DATA, 0, 0, 10)
        assert [tenant_of(r) for r in got] == ["acme", "default", "default", "acme", "default"]
        again = seal_plan(kafka_log_of(h.ledger.log), h.ledger.store)
        assert [(p.topic, p.dropped) for p in again.partitions] == []
        end = h.log.end_offsets("hub.audit")[0]
        actions = [dict(r.headers).get("hub_action") for r in h.log.read("hub.audit", 0, 0, end)]
        assert b"migration.apply" in actions
        n = h.log.end_offsets(PRINCIPALS)[0]
        # 4. a record produced now lands at or above N: it needs a MAC, seal or not
        _produce(kafka, prefix + PRINCIPALS, old["stored"][-1:], forge=0)
        with pytest.raises(LogTampered, match=rf"offset {n}\b.*no hub MAC"):
            h.log.read(PRINCIPALS, 0, n, 10)
    finally:
        h.close()
    # ... and so does an old genuine record copied again (a replay): its offset is not sealed
    _recreate(kafka, prefix + PRINCIPALS, 1)
    _produce(kafka, prefix + PRINCIPALS, old["stored"] + old["stored"][:1])
    fresh = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=_mac_key(settings))
    try:
        assert len(fresh.read(PRINCIPALS, 0, 0, len(old["stored"]))) == len(old["stored"])
        with pytest.raises(LogTampered, match=rf"offset {len(old['stored'])}\b"):
            fresh.read(PRINCIPALS, 0, len(old["stored"]), 10)
    finally:
        fresh.close()

    # 5. a forged record put BELOW N (the topic re-created, genuine records around it): refused,
    # while the genuine copies at their own offsets still read
    _recreate(kafka, prefix + PRINCIPALS, 1)
    _produce(kafka, prefix + PRINCIPALS, old["stored"], forge=1)
    fresh = KafkaEventLog(kafka, topic_prefix=prefix, mac_key=_mac_key(settings))
    try:
        assert len(fresh.read(PRINCIPALS, 0, 0, 1)) == 1
        with pytest.raises(LogTampered, match=r"offset 1\b.*no seal vouches"):
            fresh.read(PRINCIPALS, 0, 1, 10)
    finally:
        fresh.close()


def _mac_key(settings: Settings) -> bytes:
    return bootstrap_module.derived_secret(settings, b"hub kafka record MAC")


def test_a_record_changed_before_the_migration_is_refused_by_the_plan(
    old: dict[str, Any], kafka: str
) -> None:
    settings, prefix = old["settings"], old["prefix"]
    # the second principal record changed after the ledger covered it (topic re-created)
    _recreate(kafka, prefix + PRINCIPALS, 1)
    _produce(kafka, prefix + PRINCIPALS, old["stored"], forge=1)
    h = bootstrap(settings, kafka_migration=True)
    try:
        plan = seal_plan(kafka_log_of(h.ledger.log), h.ledger.store)
        (part,) = [p for p in plan.partitions if p.topic == PRINCIPALS]
        assert [o for o, _ in part.refused] == [1]
        assert "differs from ledger entry" in part.refused[0][1]
        # the two-person step cannot go on either: the approver's identity is checked against
        # the principal records, and the migration reads only what the ledger vouches for
        change = h.config_changes.propose(ALICE, RESOURCE, plan.digest, "seal")
        with pytest.raises(LogTampered, match=r"'hub.principals' partition 0 offset 1\b"):
            h.config_changes.approve(CAROL, change.change_id, "ok")
        with pytest.raises(Conflict, match="approved"):
            apply_seal_plan(h, ALICE)
        assert kafka_log_of(h.ledger.log).seals() == {}
    finally:
        h.close()


@pytest.mark.parametrize("old", [{"ledger_store": "sqlite"}], indirect=True)
def test_a_ledger_leaf_rewritten_to_match_a_changed_record_does_not_get_it_sealed(
    old: dict[str, Any], kafka: str
) -> None:
    """Whoever can write the ledger store changes a principal record and rewrites its leaf to
    match: the plan's leaf check passes, but apply verifies the ledger first and refuses."""
    settings, prefix = old["settings"], old["prefix"]
    _recreate(kafka, prefix + PRINCIPALS, 1)
    _produce(kafka, prefix + PRINCIPALS, old["stored"], forge=1)
    raw = KafkaEventLog(kafka, topic_prefix=prefix)
    try:
        forged = strip_idem(list(raw.scan_stored(PRINCIPALS, 0))[1])
    finally:
        raw.close()
    leaf = leaf_hash(
        leaf_input(
            forged.topic,
            forged.partition,
            forged.offset,
            forged.timestamp_ms,
            forged.key,
            forged.headers,
            forged.value,
        )
    )
    conn = sqlite3.connect(settings.data_dir / "ledger.sqlite", isolation_level=None)
    try:
        changed = conn.execute(
            "UPDATE leaves SET leaf_hash = ? WHERE topic = ? AND part = 0 AND off = 1",
            (leaf, PRINCIPALS),
        ).rowcount
    finally:
        conn.close()
    assert changed == 1
    h = bootstrap(settings, kafka_migration=True)
    try:
        plan = seal_plan(kafka_log_of(h.ledger.log), h.ledger.store)
        assert plan.refused == 0  # the rewritten leaf matches the changed record
        change = h.config_changes.propose(ALICE, RESOURCE, plan.digest, "seal")
        h.config_changes.approve(CAROL, change.change_id, "looks fine")
        with pytest.raises(Conflict, match="ledger does not verify") as caught:
            apply_seal_plan(h, ALICE)
        assert caught.value.code == "migration_ledger_invalid"
        assert kafka_log_of(h.ledger.log).seals() == {}
    finally:
        h.close()
