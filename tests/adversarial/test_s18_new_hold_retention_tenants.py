"""Session 18 red team (new surfaces): one tenant's legal hold kept another tenant's records
from retention.

Session 17 made a hold count for an erasure only when the hub, or a tenant that named the
subject, placed it (``governance.erasure._binds``). The retention job still counted every hold
whoever placed it: acme's officer (``legalhold.write``, limited to acme) held ``topic:accounts``
(a shared topic) or ``subject:<globex's customer>``, and globex's expired records in that topic
were never deleted, past globex's retention policy (a storage-limitation breach for globex),
with no hold globex could list or release (another tenant's hold answers 404). A tenant's hold
now keeps that tenant's records: retention stops at the first record of the holding tenant (of
the held subject, for a subject hold) instead of skipping the topic; the hub's own holds
(tenant ``default``) still stop the whole scope.
"""

from __future__ import annotations

import json

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from hub.bootstrap import Hub

MINUTE = 60_000
TOPIC = "t.shared"


def _rec(tenant: str, n: int, ts: int, subject: str = "") -> Record:
    headers = [("ce_tenant", tenant.encode())]
    return Record(f"{tenant}-{n}".encode(), timestamp_ms=ts, partition=0, headers=headers)


def _shared(hub: Hub) -> None:
    """Old records of globex, then of acme, then a young one: one partition, one topic."""
    hub.log.create_topic(TOPIC, 1)
    hub.log.append(TOPIC, [_rec("globex", i, 1_000 + i) for i in range(5)])
    hub.log.append(TOPIC, [_rec("acme", i, 2_000 + i) for i in range(3)])
    hub.log.append(TOPIC, [_rec("globex", 9, 10 * MINUTE)])
    hub.governance.set_policy(f"topic:{TOPIC}", max_age_ms=MINUTE, actor="ops")


def test_another_tenants_topic_hold_does_not_keep_globexs_expired_records(hub: Hub) -> None:
    _shared(hub)
    hub.governance.place_hold(f"topic:{TOPIC}", actor="acme-officer", tenant="acme")
    report = hub.retention.run(11 * MINUTE)
    # globex's five expired records go; acme's held ones (and what follows) stay
    assert hub.log.beginning_offsets(TOPIC) == {0: 5}, report.as_dict()
    kept = [r.value for r in hub.log.scan(TOPIC, 0)]
    assert kept[:3] == [b"acme-0", b"acme-1", b"acme-2"]


def test_the_hubs_own_topic_hold_still_keeps_everything(hub: Hub) -> None:
    _shared(hub)
    hub.governance.place_hold(f"topic:{TOPIC}", actor="legal", tenant="default")
    report = hub.retention.run(11 * MINUTE)
    assert report.deleted == []
    assert report.skipped == [{"scope": f"topic:{TOPIC}", "reason": "under legal hold"}]
    assert hub.log.beginning_offsets(TOPIC) == {0: 0}


def test_the_holding_tenants_first_record_stops_the_cut(hub: Hub) -> None:
    """acme's records come first: nothing of acme's (nor what follows) is cut."""
    hub.log.create_topic(TOPIC, 1)
    hub.log.append(TOPIC, [_rec("acme", 0, 1_000), _rec("globex", 1, 1_001)])
    hub.governance.set_policy(f"topic:{TOPIC}", max_age_ms=MINUTE, actor="ops")
    hub.governance.place_hold(f"topic:{TOPIC}", actor="acme-officer", tenant="acme")
    hub.retention.run(11 * MINUTE)
    assert hub.log.beginning_offsets(TOPIC) == {0: 0}


def test_a_tenants_subject_hold_keeps_only_its_own_records_of_the_subject(hub: Hub) -> None:
    """acme holds subject P-2, which globex names too: globex's expired records of P-2 go,
    acme's stay (before: acme's hold kept globex's)."""
    schema = {
        "type": "record",
        "name": "Visit",
        "namespace": "t",
        "fields": [
            {"name": "person_id", "type": "string", "hub.data_subject": True},
            {"name": "n", "type": "int"},
        ],
    }
    hub.log.create_topic("t.visits", 1, {"hub.subject.strategy": "topic"})
    hub.registry.register("t.visits-value", json.dumps(schema))
    for n, (tenant, person) in enumerate(
        (("globex", "P-1"), ("globex", "P-2"), ("acme", "P-2"), ("globex", "P-3"))
    ):
        event = OutgoingEvent(value={"person_id": person, "n": n})
        hub.publisher.publish("t.visits", [event], producer="test", tenant=tenant)
    hub.governance.set_policy("topic:t.visits", max_records=1, actor="ops")
    hub.governance.place_hold("subject:P-2", actor="acme-officer", tenant="acme")
    hub.retention.run()
    assert hub.log.beginning_offsets("t.visits") == {0: 2}  # stops at acme's P-2 (offset 2)
