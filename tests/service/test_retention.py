"""Retention policies and legal holds (``governance/retention.py``) on the embedded hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound, TopicNotFound
from core.events import OutgoingEvent
from core.ports.eventlog import Record, StoredRecord
from governance.retention import Governance
from hub.bootstrap import Hub
from tests.cli_keys import admin_args

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
    g = hub.governance
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="alice", reason="MiFID")
    hold = g.place_hold("subject:ACC-1", actor="alice", matter="case 7")
    fresh = Governance(hub.log, hub.reader, hub.publisher)  # another process's fold
    assert fresh.policies()["topic:t.raw"].max_age_ms == MINUTE
    assert fresh.is_held("subject:ACC-1") and not fresh.is_held("subject:ACC-2")
    fresh.release_hold(hold.hold_id, actor="bob")
    assert not g.is_held("subject:ACC-1")
    g.set_policy("topic:t.raw", actor="alice")  # neither limit: cleared
    assert fresh.policies() == {}


def test_bad_policies_are_refused(hub: Hub) -> None:
    g = hub.governance
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
    g = hub.governance
    g.set_policy("topic:t.raw", max_age_ms=5 * MINUTE, actor="a")
    g.set_policy("topic:t.counted", max_records=3, actor="a")
    job = hub.retention
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


def test_age_retention_cuts_only_records_it_read_and_found_expired(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan that comes back short (a Kafka read returning early) never lets the cut run past
    the last record read: before, an empty scan meant "nothing young" and cut to the end."""
    old_and_new(hub)
    hub.governance.set_policy("topic:t.raw", max_age_ms=5 * MINUTE, actor="a")
    job = hub.retention
    real = job._records

    def short(topic: str, part: int, start: int) -> Iterator[StoredRecord]:
        return iter(list(real(topic, part, start))[:3] if part == 0 else [])

    monkeypatch.setattr(job, "_records", short)
    report = job.run(11 * MINUTE)
    assert [d.as_dict() for d in report.deleted] == [
        {"topic": "t.raw", "partition": 0, "from": 0, "to": 3, "count": 3}
    ]
    assert hub.log.beginning_offsets("t.raw") == {0: 3, 1: 0}


def test_a_topic_hold_blocks_retention_until_released(hub: Hub) -> None:
    old_and_new(hub)
    g = hub.governance
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="a")
    hold = g.place_hold("topic:t.raw", actor="legal", matter="case 7")
    report = hub.retention.run(11 * MINUTE)
    assert report.deleted == []
    assert report.skipped == [{"scope": "topic:t.raw", "reason": "under legal hold"}]
    assert hub.log.beginning_offsets("t.raw") == {0: 0, 1: 0}
    g.release_hold(hold.hold_id, actor="legal")
    assert len(hub.retention.run(11 * MINUTE).deleted) == 2


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
    g = hub.governance
    g.set_policy("topic:t.visits", max_records=1, actor="a")
    g.place_hold("subject:P-2", actor="legal")
    report = hub.retention.run()
    assert [d.as_dict()["to"] for d in report.deleted] == [1]  # stops before P-2 (offset 1)
    assert hub.log.beginning_offsets("t.visits") == {0: 1}


def test_the_ledger_still_verifies_after_retention(hub: Hub) -> None:
    from ledger.verify import verify_ledger

    old_and_new(hub)
    g = hub.governance
    g.set_policy("topic:t.raw", max_age_ms=MINUTE, actor="a")
    hub.retention.run(11 * MINUTE)
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

        def auth(roles: list[str], who: str = "") -> dict[str, str]:
            token = h.keys.create(roles, principal=who or "-".join(roles)).token
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
            assert r.status_code == 202, r.text  # proposed: a second officer approves
            change_id = r.json()["change"]["change_id"]
            second = auth(["compliance_officer"], "second-officer")
            r = client.post(f"/v1/config/changes/{change_id}/approve", json={}, headers=second)
            assert r.status_code == 200, r.text
            r = client.post("/v1/retention/run?dry_run=true", headers=officer)
            assert len(r.json()["deleted"]) == 2
            assert h.log.beginning_offsets("t.raw") == {0: 0, 1: 0}
    finally:
        h.close()
    env = {"HUB_POLICY_ENGINE": "roletable"}
    runner = CliRunner()
    result = runner.invoke(main, [*admin_args(data), "retention", "run"], env=env)
    assert result.exit_code == 0, result.output
    assert [d["to"] for d in json.loads(result.output)["deleted"]] == [10, 10]  # all old now
    result = runner.invoke(main, [*admin_args(data), "legal-hold", "place", "subject:P-9"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, [*admin_args(data), "legal-hold", "list"], env=env)
    assert [x["scope"] for x in json.loads(result.output)] == ["subject:P-9"]


# -- projections (views) ----------------------------------------------------------------------
DAY = 86_400_000


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def publish_payments(hub: Hub, now_ms: int, young_age_ms: int = 3_600_000) -> None:
    """P0 and P1 ten days old (P0 also settled then), P2 and P3 ``young_age_ms`` old (an
    hour)."""
    events = []
    for i, age in enumerate((10 * DAY, 10 * DAY, young_age_ms, young_age_ms)):
        at = _rfc3339(now_ms - age)
        base = {"payment_id": f"P{i}", "account_id": f"A{i}", "currency": "EUR"}
        events.append(
            OutgoingEvent(
                event_type="hub.payments.PaymentInitiated",
                value={
                    **base,
                    "amount": f"{100 + i}.00",
                    "counterparty_name": f"Person {i}",
                    "counterparty_iban": "DE00123",
                    "counterparty_country": "DE",
                    "initiated_at": at,
                },
            )
        )
        if i == 0:
            events.append(
                OutgoingEvent(
                    event_type="hub.payments.PaymentSettled",
                    value={**base, "amount": "100.00", "initiated_at": at, "settled_at": at},
                )
            )
    hub.publisher.publish("payments", events, producer="test", tenant="acme")
    hub.projections.run(["payments"])


def history(hub: Hub) -> list[tuple[str, str]]:
    from core.ports.views import Target
    from projections.service import projection

    table = projection("payments").table("payment_history")
    rows = hub.projections.store("transactional").rows(Target("payments"), table)
    return sorted((r["payment_id"], r["status"]) for r in rows)


def projection_actions(hub: Hub) -> list[dict[str, object]]:
    return [d for d in retention_actions(hub) if "projection" in d]


YOUNG = [("P2", "INITIATED"), ("P3", "INITIATED")]


def test_projection_retention_cuts_old_rows_records_them_and_rebuild_keeps_them_cut(
    hub: Hub,
) -> None:
    import time

    now = int(time.time() * 1000)
    publish_payments(hub, now)
    everything = history(hub)
    assert len(everything) == 5
    g = hub.governance
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="at", actor="a")
    job = hub.retention
    planned = job.plan(now)
    assert [(d.table, d.count) for d in planned.deleted_rows] == [("payment_history", 3)]
    assert history(hub) == everything and projection_actions(hub) == []  # a dry run
    report = job.run(now)
    assert report.as_dict()["deleted_rows"] == planned.as_dict()["deleted_rows"]
    assert history(hub) == YOUNG
    (action,) = projection_actions(hub)
    assert action == {
        "projection": "payments",
        "table": "payment_history",
        "time_column": "at",
        "cutoff": datetime.fromtimestamp((now - DAY) / 1000, UTC).isoformat(),
        "cutoff_us": (now - DAY) * 1000,
        "count": 3,
        "target": "payments",
    }
    assert job.run(now).deleted_rows == []  # idempotent
    # the other tables have no "at" column: untouched
    from core.ports.views import Target
    from projections.service import projection

    status = projection("payments").table("payment_status")
    assert len(hub.projections.store("transactional").rows(Target("payments"), status)) == 4
    # replaying the log does not bring the cut rows back, and the copy's cut is on the ledger
    hub.projections.rebuild("payments")
    assert history(hub) == YOUNG
    _, copy = projection_actions(hub)
    assert str(copy["target"]).startswith("payments__rebuild_") and copy["count"] == 3
    past = hub.projections.at("payments", offset=10**9, table="payment_history")
    assert sorted((r["payment_id"], r["status"]) for r in past["views"]["payment_history"]) == (
        YOUNG
    )
    from ledger.verify import verify_ledger

    hub.ledger.sync(force_checkpoint=True)
    assert verify_ledger(hub.ledger).ok


def test_a_projection_hold_blocks_its_retention_and_its_rebuild_cut(hub: Hub) -> None:
    import time

    now = int(time.time() * 1000)
    publish_payments(hub, now)
    g = hub.governance
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="at", actor="a")
    hold = g.place_hold("projection:payments", actor="legal", matter="case 9")
    for report in (hub.retention.plan(now), hub.retention.run(now)):
        assert report.deleted_rows == []
        assert report.skipped == [{"scope": "projection:payments", "reason": "under legal hold"}]
    hub.projections.rebuild("payments")
    assert len(history(hub)) == 5 and projection_actions(hub) == []
    g.release_hold(hold.hold_id, actor="legal")
    assert [d.count for d in hub.retention.run(now).deleted_rows] == [3]
    assert history(hub) == YOUNG


def test_projection_policies_name_a_usable_time_column(hub: Hub) -> None:
    g = hub.governance
    with pytest.raises(InvalidInput, match="first_at"):  # merged (min) in the bar tables
        g.set_policy("projection:market_bars", max_age_ms=DAY, time_column="first_at", actor="a")
    with pytest.raises(InvalidInput, match="max_records"):
        g.set_policy("projection:payments", max_records=3, actor="a")
    with pytest.raises(NotFound):
        g.set_policy("projection:nope", max_age_ms=DAY, time_column="at", actor="a")
    g.set_policy("projection:market_bars", max_age_ms=DAY, time_column="window_start", actor="a")
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="day", actor="a")


def test_analytics_projection_retention_cuts_whole_windows(hub: Hub) -> None:
    """market_bars in chDB: bars of old windows go with all their partial rows."""
    import time

    pytest.importorskip("chdb")
    from core.ports.views import Target
    from projections.service import projection

    now = int(time.time() * 1000)
    if now % 60_000 < 2_000:  # the two old trades, 1 s apart, must share their minute's windows
        now -= 2_000
    trades = [
        OutgoingEvent(
            value={
                "trade_id": f"t{i}",
                "account_id": "A1",
                "instrument": "XS1",
                "side": "BUY",
                "quantity": "1.5",
                "price": "100.25",
                "currency": "USD",
                "fees": "0.10",
                "executed_at": _rfc3339(now - age),
            }
        )
        for i, age in enumerate((3 * DAY, 3 * DAY + 1000, 2 * 3_600_000, 60_000))
    ]
    ps = hub.projections
    ps.batch_records = 1  # one partial row per trade: old windows have several
    hub.publisher.publish("trades", trades, producer="test", tenant="acme")
    ps.run(["market_bars"])
    g = hub.governance
    g.set_policy("projection:market_bars", max_age_ms=DAY, time_column="window_start", actor="a")
    report = hub.retention.run(now)
    got = {d.table: d.count for d in report.deleted_rows}
    assert got == {"ohlcv_1m": 1, "ohlcv_1h": 1, "ohlcv_5m_hop_1m": 5}
    store, bars = ps.store("analytics"), projection("market_bars")
    cutoff_us = (now - DAY) * 1000
    rows = store.rows(Target("market_bars"), bars.table("ohlcv_1m"))
    assert len(rows) == 2 and all(r["window_start"] >= cutoff_us for r in rows)
    assert sum(r["events"] for r in rows) == 2
    before = ps.digest("market_bars", save=False)
    assert ps.rebuild("market_bars")["digests"] == before  # the rebuild applies the same cut
