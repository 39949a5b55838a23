"""Debezium captures a PostgreSQL table through Kafka Connect (infra/connect.sh) and the hub
ingests the changes through its pipeline (ingest/debezium.py): inserts, updates and deletes land
on the log with their LSN and row images, the ledger covers them, a bad row is quarantined with
its original bytes, and neither a restarted source, a restarted connector task nor a change that
Connect emits twice adds a record. The last test measures change-to-log latency.

Real components: Kafka, PostgreSQL (wal_level=logical) and a Kafka Connect worker with the
Debezium connector, started through infra/ (skipped loudly locally, failing under CI=true when one
cannot start). One table and connector per session, released at the end (a replication slot left
behind would keep PostgreSQL's WAL). The hub itself is the embedded footprint. Measured at load
~30-40 on two cores: 61 s with the worker already running (the CLI worker test's process start
is 27 s of it), plus the worker's start when it is not (12 s quiet, 32-43 s at load ~40); the
snapshot takes 3-15 s.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.debezium import DebeziumSource, DebeziumSourceConfig
from ingest.quarantine import decode_entry
from tests.infra import ROOT, in_ci, postgres_url, require, script

EXAMPLES = ROOT / "deploy" / "connect"
TOPIC = "cdc.accounts"
SUBJECT = f"{TOPIC}-value"


@dataclass
class Capture:
    name: str
    table: str
    source_topic: str
    bootstrap: str
    connect_url: str
    pg: Any  # a psycopg connection (autocommit)


def _connect_sh(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["bash", str(script("connect")), *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _end_offset(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hub-test-probe", "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10)
        if topic not in md.topics or md.topics[topic].error is not None:
            return 0
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        c.close()


def _wait_end_offset(cap: Capture, at_least: int, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _end_offset(cap.bootstrap, cap.source_topic) >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(
        f"{cap.source_topic} did not reach {at_least} changes in {timeout} s; "
        f"see 'infra/connect.sh logs'"
    )


def _kafka_value(cap: Capture, offset: int) -> bytes:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cap.bootstrap, "group.id": "hub-test-probe", "log_level": 0})
    try:
        c.assign([TopicPartition(cap.source_topic, 0, offset)])
        msgs = c.consume(1, timeout=10)
        assert msgs and msgs[0].offset() == offset
        value = msgs[0].value()
        assert value is not None
        return bytes(value)
    finally:
        c.close()


@pytest.fixture(scope="module")
def cap() -> Iterator[Capture]:
    import psycopg

    require("kafka", "the Kafka Connect tests")
    url = postgres_url("the Kafka Connect tests")
    require("connect", "the Kafka Connect tests")
    pg = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    wal = pg.execute("SHOW wal_level").fetchone()
    if wal is None or wal[0] != "logical":
        reason = (
            f"PostgreSQL runs with wal_level={wal[0] if wal else '?'}; Debezium needs logical: "
            "restart it with infra/postgres.sh stop && infra/postgres.sh start."
        )
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    name = f"t{uuid.uuid4().hex[:10]}"
    table = f"accounts_{name}"
    pg.execute(
        f"CREATE TABLE {table} (account_id text PRIMARY KEY, customer_name text NOT NULL, "
        "email text, country text, balance numeric(18,2), opened_at timestamptz NOT NULL "
        "DEFAULT now())"
    )
    pg.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")  # whole rows in before
    pg.execute(
        f"INSERT INTO {table} VALUES ('a1', 'Ann', 'ann@example.com', 'GB', 10.50, "
        "'2026-12-01T09:00:00Z')"
    )
    port = os.environ["HUB_CONNECT_PORT"]
    c = Capture(
        name,
        table,
        f"{name}.public.{table}",
        f"127.0.0.1:{os.environ['HUB_KAFKA_PORT']}",
        f"http://127.0.0.1:{port}",
        pg,
    )
    try:
        _connect_sh("capture", name, f"public.{table}")
        _wait_end_offset(c, 1, timeout=90)  # the snapshot of a1 (slot, snapshot: ~3-15 s)
        yield c
    finally:
        try:
            _connect_sh("release", name)
        finally:
            pg.execute(f"DROP TABLE IF EXISTS {table}")
            pg.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path_factory.mktemp("cdc") / "data"))
    h.log.create_topic(TOPIC, 1)
    h.registry.register(SUBJECT, (EXAMPLES / "accounts-cdc.avsc").read_text())
    rules = yaml.safe_load((EXAMPLES / "accounts-cdc.rules.yaml").read_text())
    h.ingest.rules.set(SUBJECT, rules, "ops", "captured accounts")
    yield h
    h.close()


def _source(cap: Capture, hub: Hub, **kw: Any) -> DebeziumSource:
    cfg = DebeziumSourceConfig(
        name=cap.name,
        source_topic=cap.source_topic,
        topic=TOPIC,
        bootstrap_servers=cap.bootstrap,
        **kw,
    )
    return DebeziumSource(hub.ingest, cfg)


def _log(hub: Hub) -> list[dict[str, Any]]:
    return list(hub.reader.read(TOPIC, 0, 0, 10_000))


def test_changes_reach_the_log_and_the_ledger_and_a_bad_row_is_quarantined(
    cap: Capture, hub: Hub
) -> None:
    t, pg = cap.table, cap.pg
    pg.execute(f"INSERT INTO {t} VALUES ('a2', 'Bob', 'bob@example.com', 'FR', 5, now())")
    pg.execute(f"INSERT INTO {t} VALUES ('a3', 'Eve', 'not-an-email', 'DE', 1, now())")
    pg.execute(f"UPDATE {t} SET balance = 11.00 WHERE account_id = 'a1'")
    pg.execute(f"DELETE FROM {t} WHERE account_id = 'a2'")
    _wait_end_offset(cap, 5)

    result = _source(cap, hub).run()

    assert (result.accepted, result.rejected, result.duplicates) == (4, 1, 0)
    records = _log(hub)
    assert [(r["value"]["op"], r["key"]) for r in records] == [
        ("r", "a1"),
        ("c", "a2"),
        ("u", "a1"),
        ("d", "a2"),
    ]
    snap, ins, upd, dele = (r["value"] for r in records)
    assert snap["before"] is None and snap["after"]["email"] == "ann@example.com"
    assert ins["lsn"] < upd["lsn"] < dele["lsn"]  # WAL order
    assert upd["before"]["balance"] == "10.50"  # decimals read back as exact text
    assert upd["after"]["balance"] == "11.00"
    assert dele["after"] is None and dele["before"]["customer_name"] == "Bob"
    assert all(r["value"]["tx_id"] for r in records)

    # The bad row: quarantined with the rule, the field and the bytes Debezium wrote.
    (q,) = list(hub.reader.read("hub.quarantine", 0, 0, 100))
    entry = decode_entry(hub.ingest, q["offset"])
    assert entry["rule_id"] == "cdc.account.email" and entry["field_path"] == "/after/email"
    assert entry["source"] == f"debezium:{cap.name}"
    where = json.loads(entry["source_position"])
    assert where["topic"] == cap.source_topic and where["offset"] == 2
    assert entry["original"] == _kafka_value(cap, 2)

    # The ledger covers each change and the quarantined row, under a signed checkpoint.
    hub.ledger.sync(force_checkpoint=True)
    for topic, offset in [*((TOPIC, r["offset"]) for r in records), ("hub.quarantine", 0)]:
        index = hub.ledger.index_of(topic, 0, offset if topic == TOPIC else q["offset"])
        assert index is not None, (topic, offset)
        assert hub.ledger.entry(index)["proof"] is not None


def test_restarts_and_a_change_emitted_twice_add_nothing(cap: Capture, hub: Hub) -> None:
    before = len(_log(hub))
    again = _source(cap, hub).run()  # a restarted source: resumes after its stored position
    assert (again.accepted, again.rejected, again.duplicates) == (0, 0, 0)

    # Connect re-emits a change after a crash between its produce and its offset flush: here a
    # copy of the update's bytes, produced as Connect would, then the task restarts.
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": cap.bootstrap, "enable.idempotence": True})
    p.produce(cap.source_topic, value=_kafka_value(cap, 3), key=b'{"account_id":"a1"}')
    assert p.flush(10) == 0
    req = urllib.request.Request(
        f"{cap.connect_url}/connectors/{cap.name}/restart?includeTasks=true", method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in (200, 202, 204)
    cap.pg.execute(
        f"INSERT INTO {cap.table} VALUES ('a4', 'Dan', 'dan@example.com', 'IT', 2, now())"
    )
    _wait_end_offset(cap, 7)

    result = _source(cap, hub).run()

    # The copy is a duplicate; anything the restarted task re-emits would be one too.
    assert result.accepted == 1 and result.duplicates >= 1
    records = _log(hub)
    assert len(records) == before + 1 and records[-1]["key"] == "a4"
    pos = hub.ingest.positions.get(f"debezium:{cap.name}")
    assert pos is not None and pos.position == {"offsets": {"0": 7}} and pos.records == 7


def test_follow_mode_latency_from_commit_to_the_log(cap: Capture, hub: Hub) -> None:
    """Each row is committed in PostgreSQL, then timed until it is on the hub's log while the
    source follows the topic (WAL -> Debezium -> Kafka -> hub). Prints p50 and max."""
    stop = threading.Event()
    source = _source(cap, hub, follow=True, poll_s=0.05)
    source.stop = stop
    failed: list[BaseException] = []

    def run() -> None:
        try:
            source.run()
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    latencies = []
    try:
        for i in range(8):
            end = hub.log.end_offsets(TOPIC)[0]
            started = time.perf_counter()
            cap.pg.execute(
                f"INSERT INTO {cap.table} VALUES ('f{i}', 'F', 'f{i}@example.com', 'NL', 1, now())"
            )
            while hub.log.end_offsets(TOPIC)[0] <= end:
                assert not failed, failed
                assert time.perf_counter() - started < 30, "a change took over 30 s to arrive"
                time.sleep(0.005)
            latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        worker.join(30)
    assert not failed, failed
    keys = [r["key"] for r in _log(hub)][-8:]
    assert keys == [f"f{i}" for i in range(8)]  # each once, in commit order
    print(
        f"\ncommit-to-log latency over {len(latencies)} changes: "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


def test_the_example_connector_config_is_a_valid_debezium_source(tmp_path: Path) -> None:
    cfg = yaml.safe_load((EXAMPLES / "accounts-cdc.connector.yaml").read_text())
    assert cfg.pop("kind") == "debezium"
    DebeziumSourceConfig(name="cdc", bootstrap_servers="127.0.0.1:1", **cfg)


def _cli_hub(data: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        h.log.create_topic(TOPIC, 1)
        h.registry.register(SUBJECT, (EXAMPLES / "accounts-cdc.avsc").read_text())
        rules = yaml.safe_load((EXAMPLES / "accounts-cdc.rules.yaml").read_text())
        h.ingest.rules.set(SUBJECT, rules, "ops", "captured accounts")
    finally:
        h.close()


def test_the_cli_ingests_the_topic_and_names_a_missing_one(
    cap: Capture, hub: Hub, tmp_path: Path
) -> None:
    """``hub connector run NAME --config FILE`` (kind: debezium) on a fresh data folder reads the
    whole topic the tests above wrote: the same records as the module's hub (runs after them)."""
    from click.testing import CliRunner

    from hub.cli import main
    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    _cli_hub(data)
    cfg = tmp_path / "cdc.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kind": "debezium",
                "source_topic": cap.source_topic,
                "topic": TOPIC,
                "bootstrap_servers": cap.bootstrap,
            }
        )
    )
    r = CliRunner().invoke(
        main, [*admin_args(data), "connector", "run", cap.name, "--config", str(cfg)]
    )
    assert r.exit_code == 0, r.output
    m = re.search(r"accepted=(\d+) rejected=(\d+) duplicates=(\d+)", r.output)
    assert m is not None, r.output
    assert int(m[1]) == len(_log(hub)) and int(m[2]) == 1 and int(m[3]) >= 1

    # A change emitted again after the hub restarted (a new Hub: its dedupe window is rebuilt
    # from the log's event ids) is still a duplicate.
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": cap.bootstrap, "enable.idempotence": True})
    p.produce(cap.source_topic, value=_kafka_value(cap, 1), key=b'{"account_id":"a2"}')
    assert p.flush(10) == 0
    r = CliRunner().invoke(
        main, [*admin_args(data), "connector", "run", cap.name, "--config", str(cfg)]
    )
    assert r.exit_code == 0, r.output
    assert "accepted=0 rejected=0 duplicates=1" in r.output, r.output

    cfg.write_text(cfg.read_text().replace(cap.source_topic, f"{cap.name}.public.missing"))
    r = CliRunner().invoke(
        main, [*admin_args(data), "connector", "run", cap.name, "--config", str(cfg)]
    )
    assert r.exit_code == 1
    assert f"{cap.name}.public.missing" in r.output and "infra/connect.sh capture" in r.output


def test_the_cli_follows_until_sigterm(cap: Capture, tmp_path: Path) -> None:
    """``--follow`` as a worker runs it: a change committed while it runs lands (printed per
    batch), and SIGTERM ends it after the batch in flight with exit code 0. A real process
    (SIGTERM is what a container stop sends): its start-up (imports, bootstrap) dominates, ~5 s
    on a quiet machine, 27 s measured at load ~30."""
    import queue

    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    _cli_hub(data)
    cfg = tmp_path / "cdc.yaml"
    settings = {"kind": "debezium", "source_topic": cap.source_topic, "topic": TOPIC}
    cfg.write_text(yaml.safe_dump({**settings, "bootstrap_servers": cap.bootstrap, "poll_s": 0.05}))
    hub_bin = str(ROOT / ".venv" / "bin" / "hub")
    args = [*admin_args(data), "connector", "run", cap.name, "--config", str(cfg), "--follow"]
    proc = subprocess.Popen(
        [hub_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True).start()

    def next_batch() -> str:
        while True:
            line = lines.get(timeout=60)
            if " batch: " in line:
                return line

    try:
        next_batch()  # the backlog the tests above wrote
        cap.pg.execute(
            f"INSERT INTO {cap.table} VALUES ('z1', 'Zoe', 'zoe@example.com', 'SE', 3, now())"
        )
        assert "accepted=1 rejected=0" in next_batch()
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert re.search(r"^cdc\S*|accepted=\d+ rejected=1 duplicates=\d+", rest[-1]), rest
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        assert [r["key"] for r in h.reader.read(TOPIC, 0, 0, 10_000)][-1] == "z1"
    finally:
        h.close()
