"""Retention policies and legal holds (``governance/retention.py``) on the embedded hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.retention import Governance, RetentionJob
from hub.bootstrap import Hub
from hub.errors import InvalidInput, NotFound, TopicNotFound
from hub.events import OutgoingEvent
from hub.ports.eventlog import Record

MINUTE = 60_000


def old_and_new(hub: Hub, topic: str = "t.raw") -> None:
    hub.log.create_topic(topic, 2)
    for p in (0, 1):
        hub.log.append(
            topic, [Record(b"old%d" % i, timestamp_ms=1_000 + i, partition=p) for i in range(6)]
        )
        hub.log.append(
            topic,
            [Record(b"new%d" % i, timestamp_ms=10 * MINUTE + i, partition=p) for i in range(4)],
        )


def retention_actions(hub: Hub) -> list[dict[str, object]]:
    hub.ledger.sync()
    rows = hub.ledger.entries(action="retention.delete", with_fields=True)
    out = []
    for row in rows:
        rec = hub.ledger.record_at(row["topic"], row["partition"], row["offset"])
        assert rec is not None
        value = hub.reader.decode(rec)["value"]
        out.append(json.loads(value["details"]))
    return out


def test_policies_and_holds_are_a_fold_of_the_governance_topic(hub: Hub) -> None:
    hub.log.create_topic("t.raw", 1)
    g = Governance(hub)
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="alice", reason="MiFID")
    hold = g.place_hold("subject:ACC-1", actor="alice", matter="case 7")
    fresh = Governance(hub)  # another process sees the same state
    assert fresh.policies()["topic:t.raw"].max_age_ms == MINUTE
    assert fresh.is_held("subject:ACC-1") and not fresh.is_held("subject:ACC-2")
    fresh.release_hold(hold.hold_id, actor="bob")
    assert not g.is_held("subject:ACC-1")
    g.set_policy("topic:t.raw", actor="alice")  # neither limit: cleared
    assert fresh.policies() == {}


def test_bad_policies_are_refused(hub: Hub) -> None:
    g = Governance(hub)
    with pytest.raises(TopicNotFound):
        g.set_policy("topic:nope", max_age_ms=1, actor="a")
    with pytest.raises(InvalidInput, match="Scope"):
        g.set_policy("table:x", max_age_ms=1, actor="a")
    with pytest.raises(InvalidInput, match="evidence"):
        g.set_policy("topic:hub.audit", max_age_ms=1, actor="a")
    with pytest.raises(InvalidInput, match="max_age_ms"):
        g.set_policy("topic:trades", max_age_ms=0, actor="a")
    with pytest.raises(InvalidInput, match="time_column"):
        g.set_policy("projection:payments", max_age_ms=1, time_column="nope", actor="a")
    with pytest.raises(NotFound):
        g.release_hold("no-such-hold", actor="a")
    g.set_policy("projection:payments", max_age_ms=MINUTE, time_column="at", actor="a")


def test_age_and_count_retention_delete_and_record_what_they_removed(hub: Hub) -> None:
    old_and_new(hub)
    hub.log.create_topic("t.counted", 1)
    hub.log.append("t.counted", [Record(b"%d" % i) for i in range(10)])
    g = Governance(hub)
    g.set_policy("topic:t.raw", max_age_ms=5 * MINUTE, actor="a")
    g.set_policy("topic:t.counted", max_records=3, actor="a")
    job = RetentionJob(hub, g)
    assert [d.as_dict() for d in job.plan(11 * MINUTE).deleted] == [
        {"topic": "t.counted", "partition": 0, "from": 0, "to": 7, "count": 7},
        {"topic": "t.raw", "partition": 0, "from": 0, "to": 6, "count": 6},
        {"topic": "t.raw", "partition": 1, "from": 0, "to": 6, "count": 6},
    ]
    assert hub.log.beginning_offsets("t.raw") == {0: 0, 1: 0}  # plan deletes nothing
    report = job.run(11 * MINUTE)
    assert len(report.deleted) == 3
    assert hub.log.beginning_offsets("t.raw") == {0: 6, 1: 6}
    assert [r.value for r in hub.log.scan("t.raw", 0)] == [b"new%d" % i for i in range(4)]
    assert [r.value for r in hub.log.scan("t.counted", 0)] == [b"7", b"8", b"9"]
    assert sorted(retention_actions(hub), key=lambda d: (str(d["topic"]), d["partition"])) == [
        d.as_dict() for d in report.deleted
    ]
    assert job.run(11 * MINUTE).deleted == []  # idempotent


def test_a_topic_hold_blocks_retention_until_released(hub: Hub) -> None:
    old_and_new(hub)
    g = Governance(hub)
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="a")
    hold = g.place_hold("topic:t.raw", actor="legal", matter="case 7")
    report = RetentionJob(hub, g).run(11 * MINUTE)
    assert report.deleted == []
    assert report.skipped == [{"scope": "topic:t.raw", "reason": "under legal hold"}]
    assert hub.log.beginning_offsets("t.raw") == {0: 0, 1: 0}
    g.release_hold(hold.hold_id, actor="legal")
    assert len(RetentionJob(hub, g).run(11 * MINUTE).deleted) == 2


def test_a_subject_hold_stops_retention_before_the_subjects_first_record(hub: Hub) -> None:
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
    for n, person in enumerate(("P-1", "P-2", "P-3", "P-2")):
        event = OutgoingEvent(value={"person_id": person, "n": n})
        hub.publisher.publish("t.visits", [event], producer="test")
    g = Governance(hub)
    g.set_policy("topic:t.visits", max_records=1, actor="a")
    g.place_hold("subject:P-2", actor="legal")
    report = RetentionJob(hub, g).run()
    assert [d.as_dict()["to"] for d in report.deleted] == [1]  # stops before P-2 (offset 1)
    assert hub.log.beginning_offsets("t.visits") == {0: 1}


def test_the_ledger_still_verifies_after_retention(hub: Hub) -> None:
    from hub.ledger.verify import verify_ledger

    old_and_new(hub)
    g = Governance(hub)
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="a")
    RetentionJob(hub, g).run(11 * MINUTE)
    hub.ledger.sync(force_checkpoint=True)
    report = verify_ledger(hub.ledger)
    assert report.ok, report.as_dict()
    assert report.removed > 0  # the deleted records' leaves stayed in the tree


def test_retention_and_hold_api_and_cli(tmp_path: Path) -> None:
    import base64

    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.cli import main
    from hub.settings import load_settings

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_engine="roletable"))
    try:
        old_and_new(h)

        def auth(roles: list[str]) -> dict[str, str]:
            token = h.keys.create(roles, principal="-".join(roles)).token
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

        officer, analyst = auth(["compliance_officer"]), auth(["analyst"])
        with TestClient(create_app(h)) as client:
            policy = {"scope": "topic:t.raw", "max_age_ms": MINUTE}
            assert (
                client.post("/v1/retention/policies", json=policy, headers=analyst).status_code
                == 403
            )
            r = client.post("/v1/retention/policies", json=policy, headers=officer)
            assert r.status_code == 200, r.text
            r = client.post("/v1/legal-holds", json={"scope": "topic:t.raw"}, headers=officer)
            assert r.status_code == 201, r.text
            hold_id = r.json()["hold_id"]
            assert (
                client.get("/v1/legal-holds", headers=analyst).json()["holds"][0]["hold_id"]
                == hold_id
            )
            r = client.post("/v1/retention/run", headers=officer)
            assert r.json()["skipped"] == [{"scope": "topic:t.raw", "reason": "under legal hold"}]
            r = client.post(f"/v1/legal-holds/{hold_id}/release", json={}, headers=officer)
            assert r.status_code == 200, r.text
            r = client.post("/v1/retention/run?dry_run=true", headers=officer)
            assert len(r.json()["deleted"]) == 2
            assert h.log.beginning_offsets("t.raw") == {0: 0, 1: 0}
    finally:
        h.close()
    env = {"HUB_POLICY_ENGINE": "roletable"}
    runner = CliRunner()
    result = runner.invoke(main, ["--data-dir", str(data), "retention", "run"], env=env)
    assert result.exit_code == 0, result.output
    assert [d["to"] for d in json.loads(result.output)["deleted"]] == [10, 10]  # all old now
    result = runner.invoke(
        main, ["--data-dir", str(data), "legal-hold", "place", "subject:P-9"], env=env
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--data-dir", str(data), "legal-hold", "list"], env=env)
    assert [x["scope"] for x in json.loads(result.output)] == ["subject:P-9"]


@pytest.mark.integration
def test_retention_gives_the_same_answer_on_kafka(hub: Hub, tmp_path: Path) -> None:
    """The same topic, policy and hold on both footprints: the same deletions and reads."""
    import uuid

    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.contract.test_eventlog_kafka import kafka_bootstrap

    kafka = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "kafka",
            event_log="kafka",
            kafka_bootstrap_servers=kafka_bootstrap(),
            kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        )
    )
    try:
        results = []
        for h in (hub, kafka):
            old_and_new(h)
            g = Governance(h)
            g.set_policy("topic:t.raw", max_age_ms=5 * MINUTE, actor="a")
            hold = g.place_hold("topic:t.raw", actor="legal")
            held = RetentionJob(h, g).run(11 * MINUTE)
            g.release_hold(hold.hold_id, actor="legal")
            report = RetentionJob(h, g).run(11 * MINUTE)
            results.append(
                (
                    held.as_dict(),
                    report.as_dict(),
                    h.log.beginning_offsets("t.raw"),
                    [r.value for r in h.log.scan("t.raw", 0)],
                    retention_actions(h),
                )
            )
        assert results[0] == results[1]
        assert results[0][2] == {0: 6, 1: 6}
    finally:
        kafka.close()
