"""The scoring consumer's group offsets moved by someone other than the scorer (finding M1 of
docs/benchmarks/s20-redteam-ha.md).

The group ``ml.scoring.<name>`` is a row of the embedded log's ``group_offsets`` table (anyone with
the data folder edits it) or a Kafka consumer group (anyone with group access resets it:
``kafka-consumer-groups --reset-offsets``, or any client committing to the group). The scorer
started from it: moved forward, input records were never scored; moved back, they were scored
twice. Now the scorer keeps its own positions on the MAC'd log (``hub.source-positions``, in the
same transaction as its predictions) and checks the group against them: a rewind is skipped and
counted, a jump forward stops the scorer with an error naming group, partition, expected and
found offsets, and only ``hub ml accept-offsets`` (recorded on the ledger) takes a move.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import HubError
from core.ports.eventlog import TopicPartition
from hub.bootstrap import Hub
from hub.cli import main
from hub.ml_setup import ml_of
from hub.workers import WorkerHealth, follow_scoring
from ml.offsets import OffsetsMoved
from tests.cli_keys import admin_args
from tests.service.test_ml import ALICE, BOB, T, _hub, _open, _pay, _register_small_model

pytestmark = pytest.mark.timeout(600)
GROUP = "ml.scoring.payment_risk"
TOPIC = "payments"


def _seed(hub: Hub, first: int, n: int) -> None:
    for i in range(first, first + n):
        _pay(hub, f"P-{i}", "A" if i % 2 else "B", f"{100 + i}.00", T + timedelta(minutes=i))


def _champion(hub: Hub) -> None:
    ml = ml_of(hub)
    version = _register_small_model(hub)
    change = ml.changes.propose_champion(ALICE, "payment_risk", version, "first")
    ml.changes.approve(BOB, change.change_id)


def _scored(hub: Hub) -> list[str]:
    return sorted(p["source"] for p in ml_of(hub).predictions("payment_risk"))


def _initiated(hub: Hub) -> list[str]:
    """The source of every scorable payment on the log."""
    out = []
    for p in hub.log.stable_offsets(TOPIC):
        for r in hub.reader.read(TOPIC, p, 0, 10_000):
            if r["headers"].get("ce_type") == "hub.payments.PaymentInitiated":
                out.append(f"{TOPIC}/{p}/{r['offset']}")
    return sorted(out)


def _busy_partition(hub: Hub, need: int) -> int:
    """A partition of ``payments`` whose group position is at least ``need`` behind its end."""
    committed = hub.log.committed(GROUP, TOPIC)
    for p, end in sorted(hub.log.stable_offsets(TOPIC).items()):
        if end - committed.get(p, 0) >= need:
            return p
    raise AssertionError(f"no partition with {need} unscored records: {committed}")


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A hub whose champion scored 20 payments; 20 more are on the log, not yet scored."""
    data = tmp_path / "data"
    hub = _hub(data)
    try:
        _open(hub, "A", "BASIC", "LOW", T - timedelta(days=30))
        _open(hub, "B", "ENHANCED", "LOW", T - timedelta(days=30))
        _seed(hub, 0, 20)
        _champion(hub)
        assert ml_of(hub).consumer("payment_risk").run_until_idle() > 0
        assert len(_scored(hub)) == 20
        _seed(hub, 20, 20)
    finally:
        hub.close()
    yield data


def _edit_group(data: Path, partition: int, offset_sql: str) -> tuple[int, int]:
    """The attacker with the data folder: sets the group's offset of ``partition``; returns
    (before, after)."""
    with sqlite3.connect(data / "log.sqlite") as db:
        tid = db.execute("SELECT id FROM topics WHERE name = ?", (TOPIC,)).fetchone()[0]
        where = "WHERE group_id = ? AND topic_id = ? AND part = ?"
        (before,) = db.execute(
            f"SELECT next_offset FROM group_offsets {where}", (GROUP, tid, partition)
        ).fetchone()
        db.execute(
            f"UPDATE group_offsets SET next_offset = {offset_sql} {where}", (GROUP, tid, partition)
        )
        (after,) = db.execute(
            f"SELECT next_offset FROM group_offsets {where}", (GROUP, tid, partition)
        ).fetchone()
    return before, after


def _moved(hub: Hub, direction: str) -> float:
    value = hub.metrics.registry.get_sample_value(
        "hub_consumer_offsets_moved_total", {"group": GROUP, "direction": direction}
    )
    return value or 0.0


def test_a_group_moved_forward_in_the_file_stops_the_scorer_naming_the_move(data: Path) -> None:
    hub = _hub(data)
    try:
        p = _busy_partition(hub, 3)
    finally:
        hub.close()
    before, after = _edit_group(data, p, "next_offset + 3")  # skip three unscored payments
    hub = _hub(data)
    try:
        consumer = ml_of(hub).consumer("payment_risk")
        with pytest.raises(OffsetsMoved) as caught:
            consumer.step()
        message = caught.value.message
        assert GROUP in message and f"{TOPIC}/{p}" in message, message
        assert f"expected {before}" in message and f"found {after}" in message, message
        assert "hub ml accept-offsets payment_risk" in message, message
        assert caught.value.code == "offsets_moved"
        assert len(_scored(hub)) == 20  # nothing of the step was scored
        assert _moved(hub, "forward") >= 1
    finally:
        hub.close()


def test_a_rewound_group_is_not_scored_twice(data: Path, caplog: pytest.LogCaptureFixture) -> None:
    hub = _hub(data)
    try:
        p = _busy_partition(hub, 1)
        ml_of(hub).consumer("payment_risk").run_until_idle()  # all 40 scored
        assert len(_scored(hub)) == 40
        end = hub.log.committed(GROUP, TOPIC)[p]
    finally:
        hub.close()
    assert _edit_group(data, p, "0") == (end, 0)  # back to the start: everything again
    hub = _hub(data)
    try:
        consumer = ml_of(hub).consumer("payment_risk")
        with caplog.at_level("WARNING", logger="ml.offsets"):
            assert consumer.run_until_idle() == 0
        assert len(_scored(hub)) == 40 and len(set(_scored(hub))) == 40
        assert _moved(hub, "rewind") == 1
        rewinds = [r for r in caplog.records if getattr(r, "direction", None) == "rewind"]
        assert rewinds and rewinds[0].group == GROUP and rewinds[0].partition == p  # type: ignore[attr-defined]
        assert (rewinds[0].expected, rewinds[0].found) == (end, 0)  # type: ignore[attr-defined]
        assert hub.log.committed(GROUP, TOPIC)[p] == end  # the group is put back
        assert consumer.lag() == 0
    finally:
        hub.close()


def test_a_worker_stops_on_a_forward_move_instead_of_retrying(data: Path) -> None:
    hub = _hub(data)
    try:
        p = _busy_partition(hub, 2)
        at = hub.log.committed(GROUP, TOPIC)[p]
        hub.log.commit_offsets(GROUP, {TopicPartition(TOPIC, p): at + 2})  # any client commits
        ml = ml_of(hub)
        stop = threading.Event()
        health = WorkerHealth(GROUP, stale_s=30)
        failed: list[BaseException] = []

        def work() -> None:
            try:
                follow_scoring(
                    lambda: ml.consumer("payment_risk"),
                    hub.log,
                    stop,
                    health,
                    poll_s=0.05,
                    retry_s=0.05,
                )
            except HubError as exc:
                failed.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(60)
        stop.set()
        worker.join(10)
        assert failed and isinstance(failed[0], OffsetsMoved), failed
    finally:
        hub.close()


def test_a_move_is_taken_only_through_accept_offsets_recorded_on_the_ledger(data: Path) -> None:
    hub = _hub(data)
    try:
        p = _busy_partition(hub, 3)
        bob = hub.keys.create(["ml_engineer"], owner="bob").token
    finally:
        hub.close()
    before, after = _edit_group(data, p, "next_offset + 3")
    runner = CliRunner()
    args = admin_args(data)
    r = runner.invoke(main, [*args, "ml", "score", "payment_risk"])
    assert r.exit_code != 0 and "offsets_moved" in r.output + (r.stderr or ""), r.output
    r = runner.invoke(main, [*args, "ml", "accept-offsets", "payment_risk", "--key", bob])
    assert r.exit_code != 0 and "--reason" in r.output + (r.stderr or "")  # a reason is needed
    r = runner.invoke(
        main,
        [*args, "ml", "accept-offsets", "payment_risk", "--reason", "INC-42 skip", "--key", bob],
    )
    assert r.exit_code == 0, r.output
    moves = json.loads(r.stdout)["moves"]
    assert moves == [{"topic": TOPIC, "partition": p, "expected": before, "found": after}]
    hub = _hub(data)
    try:
        assert ml_of(hub).consumer("payment_risk").run_until_idle() > 0  # from the new place
        skipped = {f"{TOPIC}/{p}/{o}" for o in range(before, after)}
        assert set(_scored(hub)) == set(_initiated(hub)) - skipped  # nothing else was lost
        assert len(_scored(hub)) < 40
        hub.ledger.sync(force_checkpoint=True)
        actions = [
            r
            for r in hub.reader.read("hub.audit", 0, 0, 10_000)
            if r["headers"].get("hub_action") == "config.accept_offsets"
        ]
        assert len(actions) == 1, actions
        value = actions[0]["value"]
        assert actions[0]["headers"].get("ce_subject") == f"consumer_group:{GROUP}"
        details = json.loads(value["details"]) if isinstance(value["details"], str) else value
        assert "INC-42 skip" in json.dumps(details) and str(after) in json.dumps(details)
    finally:
        hub.close()


def test_a_position_written_by_another_producer_is_not_the_scorers(data: Path) -> None:
    """``hub.source-positions`` is shared with ingest; a record under the scorer's source name
    from any other producer (an ingest source named like it) does not move the scorer."""
    from ingest.positions import PositionStore
    from ml.offsets import source_of

    hub = _hub(data)
    try:
        p = _busy_partition(hub, 3)
        at = hub.log.committed(GROUP, TOPIC)[p]
        store = PositionStore(hub.log, hub.registry, hub.publisher)  # ingest's producer
        forged = store.record(source_of(GROUP, TOPIC, p), TOPIC, {"next_offset": at + 3}, at + 3)
        hub.log.append("hub.source-positions", [forged])
        hub.log.commit_offsets(GROUP, {TopicPartition(TOPIC, p): at + 3})
        with pytest.raises(OffsetsMoved):
            ml_of(hub).consumer("payment_risk").step()
    finally:
        hub.close()


def test_a_genuine_old_position_copied_again_does_not_rewind_the_scorer(data: Path) -> None:
    """A Kafka record MAC does not bind the offset: the scorer's own first position record,
    copied again onto ``hub.source-positions``, passes it. Were the latest record the position,
    that plus a group rewound to match would score the records after it twice."""
    from core.ports.eventlog import Record
    from ml.offsets import source_of

    hub = _hub(data)
    try:
        p = _busy_partition(hub, 1)
        ml_of(hub).consumer("payment_risk").run_until_idle()  # all 40 scored
        source = source_of(GROUP, TOPIC, p).encode()
        mine = [
            r
            for q in hub.log.stable_offsets("hub.source-positions")
            for r in hub.log.read("hub.source-positions", q, 0, 10_000)
            if r.key == source
        ]
        assert len(mine) >= 2, mine  # a first position and a later one
        first = mine[0]
        hub.log.append(
            "hub.source-positions",
            [Record(first.value, first.key, first.headers, first.timestamp_ms)],
        )
        (decoded,) = hub.reader.read("hub.source-positions", first.partition, first.offset, 1)
        old = json.loads(decoded["value"]["position"])["next_offset"]
        assert old < hub.log.committed(GROUP, TOPIC)[p]
    finally:
        hub.close()
    hub = _hub(data)
    try:
        hub.log.commit_offsets(GROUP, {TopicPartition(TOPIC, p): old})
        assert ml_of(hub).consumer("payment_risk").run_until_idle() == 0
        sources = _scored(hub)
        assert len(sources) == 40 and len(set(sources)) == 40
        assert _moved(hub, "rewind") == 1
    finally:
        hub.close()


# -- Kafka: the broker's own consumer-group tools ----------------------------------------------
def _commit_raw(kafka: str, wire_topic: str, partition: int, offset: int) -> None:
    """What ``kafka-consumer-groups --reset-offsets`` does: commit the group's offset directly."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as KafkaTP

    c = Consumer({"bootstrap.servers": kafka, "group.id": GROUP, "log_level": 0})
    try:
        c.commit(offsets=[KafkaTP(wire_topic, partition, offset)], asynchronous=False)
    finally:
        c.close()


def test_kafka_group_reset_forward_is_refused_and_back_is_not_rescored(
    kafka_hub: tuple[Hub, str], kafka: str
) -> None:
    hub, prefix = kafka_hub
    _open(hub, "A", "BASIC", "LOW", T - timedelta(days=30))
    _open(hub, "B", "ENHANCED", "LOW", T - timedelta(days=30))
    _seed(hub, 0, 12)
    _champion(hub)
    ml = ml_of(hub)
    assert ml.consumer("payment_risk").run_until_idle() > 0
    assert len(_scored(hub)) == 12
    _seed(hub, 12, 12)
    p = _busy_partition(hub, 2)
    at = hub.log.committed(GROUP, TOPIC)[p]
    _commit_raw(kafka, prefix + TOPIC, p, at + 2)
    with pytest.raises(OffsetsMoved) as caught:
        ml.consumer("payment_risk").step()
    assert f"expected {at}" in caught.value.message and f"found {at + 2}" in caught.value.message
    assert len(_scored(hub)) == 12
    _commit_raw(kafka, prefix + TOPIC, p, at)  # the operator puts it back
    assert ml.consumer("payment_risk").run_until_idle() > 0
    assert len(_scored(hub)) == 24
    _commit_raw(kafka, prefix + TOPIC, p, 0)  # rewound to the start
    assert ml.consumer("payment_risk").run_until_idle() == 0
    sources = _scored(hub)
    assert len(sources) == 24 and len(set(sources)) == 24, sources
    assert hub.log.committed(GROUP, TOPIC)[p] > 0


# -- the Flink feature loader: covers from a group Flink commits ---------------------------------
def test_flink_covers_moved_past_the_stored_vectors_are_capped_and_named(tmp_path: Path) -> None:
    """Flink commits ``features.flink.<view>``; the loader took its offsets as what the stored
    vectors cover. Moved forward, the covers claimed vectors that were never computed (and a
    restarted job would never compute them); moved back, they shrank. The loader now keeps
    only covers the stored vectors back (the first scored event without one caps them) and
    never moves them back; the move is named in its result."""
    from adapters.sqlite_vectors import SqliteFeatureVectors
    from domain.features import VIEWS
    from hub.flink_feature_views import FlinkFeatureView

    hub = _hub(tmp_path / "data")
    store = SqliteFeatureVectors(tmp_path / "vectors.sqlite", mac_key=b"v" * 32)
    try:
        _open(hub, "A", "BASIC", "LOW", T - timedelta(days=30))
        _seed(hub, 0, 16)
        view = VIEWS["payment_risk"]
        p = max(hub.log.stable_offsets(TOPIC).items(), key=lambda kv: kv[1])[0]
        initiated = sorted(
            int(s.rsplit("/", 1)[1]) for s in _initiated(hub) if s.startswith(f"{TOPIC}/{p}/")
        )
        assert len(initiated) >= 4, initiated
        rows = [
            {
                "partition": p,
                "offset": o,
                "subject": f"P-{o}",
                "entity": "7:default:A",
                "time_us": 1_000 + o,
                "features": {n: 0.0 for n in view.names},
            }
            for o in initiated[:2]
        ]
        tp = TopicPartition(TOPIC, p)
        store.apply(view.name, rows, [], 0, {tp: initiated[1] + 1})  # a load that was honest
        fv = FlinkFeatureView(view, hub.log, store, b"k" * 32)
        fv.prepare()
        end = hub.log.stable_offsets(TOPIC)[p]
        hub.log.commit_offsets(fv.group, {tp: end})  # any client with group access
        got = fv.load()
        assert store.covers(view.name)[tp] == initiated[2]  # the first event without a vector
        assert got["covers_refused"] == [
            {"topic": TOPIC, "partition": p, "expected": initiated[2], "found": end}
        ], got
        hub.log.commit_offsets(fv.group, {tp: 0})  # moved back: the covers stay
        got = fv.load()
        assert store.covers(view.name)[tp] == initiated[2] and got["covers_refused"] == []
    finally:
        store.close()
        hub.close()


@pytest.mark.parametrize("role", ["analyst", "publisher", "compliance_officer"])
def test_only_a_model_promoter_accepts_moved_offsets(data: Path, role: str) -> None:
    """``hub ml accept-offsets`` needs ``model.promote``: another role is refused, the move is
    not taken (the scorer still stops on it) and nothing is recorded."""
    hub = _hub(data)
    try:
        p = _busy_partition(hub, 3)
        token = hub.keys.create([role], owner="mallory").token
    finally:
        hub.close()
    _edit_group(data, p, "next_offset + 3")
    args = admin_args(data)
    r = CliRunner().invoke(
        main, [*args, "ml", "accept-offsets", "payment_risk", "--reason", "x", "--key", token]
    )
    assert r.exit_code != 0 and "model.promote" in r.output + (r.stderr or ""), r.output
    r = CliRunner().invoke(main, [*args, "ml", "score", "payment_risk"])
    assert r.exit_code != 0 and "offsets_moved" in r.output + (r.stderr or ""), r.output
    hub = _hub(data)
    try:
        hub.ledger.sync(force_checkpoint=True)
        assert not [
            r
            for r in hub.reader.read("hub.audit", 0, 0, 10_000)
            if r["headers"].get("hub_action") == "config.accept_offsets"
        ]
    finally:
        hub.close()
