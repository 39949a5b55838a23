"""Backup of the distributed footprint (Kafka log, PostgreSQL ledger, per-subject keys in
OpenBao) and its restore into a fresh cluster (a new topic prefix and a new PostgreSQL schema) and
into the embedded footprint (SQLite log and ledger; the keys stay in OpenBao, which the backup
does not copy: Vault's own snapshot is its backup, and the manifest says so).

What must hold: the log is exported through the EventLog port with its offsets and the ledger
through the LedgerStore port; both restores give the original's ledger root at the backup's
size, a ledger that verifies against the replayed log, the very same records at the very same
offsets, the same projection digests and the PII fields readable through the same OpenBao; a
restore into a log that already holds the topics is refused. Needs a real Kafka, PostgreSQL and
OpenBao (``infra/kafka.sh``, ``infra/postgres.sh``, ``infra/openbao.sh``): started when missing,
skipped loudly locally when they cannot start, required under ``CI=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.kafka_log import KafkaEventLog
from adapters.local_objectstore import LocalObjectStore
from adapters.postgres_ledgerstore import PostgresLedgerStore
from adapters.vault_keystore import _digest
from core.errors import HubError
from core.ports.keystore import scoped_subject
from hub.bootstrap import Hub, bootstrap
from hub.recovery import VAULT_KEYS_NOTE, backup, restore
from hub.settings import Settings, load_settings
from ledger.verify import verify_ledger
from storage.backup import RestoreRefused, create_kek_file
from storage.portable import ReplayRefused
from tests import infra
from tests.contract.test_eventlog_kafka import kafka_bootstrap
from tests.contract.test_keystore_openbao import TOKEN, openbao_url
from tests.integration.test_backup import account

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
TOPICS = ("accounts",)
VIEWS = ["accounts"]


def vault(url: str) -> dict[str, Any]:
    return {"keystore": "vault", "vault_url": url, "vault_token": TOKEN}


def kafka_settings(data: Path, kafka: str, pg: str, tag: str, bao: str) -> Settings:
    return load_settings(
        environ={},
        data_dir=data,
        **vault(bao),
        event_log="kafka",
        kafka_bootstrap_servers=kafka,
        kafka_topic_prefix=f"{tag}.",
        views_sql_url=f"{pg}?options=-csearch_path%3D{tag}_views",
        ledger_store="postgres",
        ledger_postgres_url=pg,
        ledger_postgres_schema=f"{tag}_ledger",
        object_store_dir=data.parent / "objects",
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    kafka = kafka_bootstrap()
    pg = infra.postgres_url("the distributed backup tests (Kafka + PostgreSQL footprint)")
    bao = openbao_url()
    root = tmp_path_factory.mktemp("distributed-backup")
    tags = [f"b{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        for tag in tags:
            conn.execute(sa.text(f'CREATE SCHEMA "{tag}_views"'))
    settings = kafka_settings(root / "site-a" / "hub", kafka, pg, tags[0], bao)
    h = bootstrap(settings)
    try:
        token = h.keys.create(["admin"], owner="dr-admin").token
        for start in range(0, 120, 30):  # several appends: runs and commit markers
            h.publisher.publish(
                "accounts",
                [account(f"ACC-{i:04d}", f"Name {i}") for i in range(start, start + 30)],
                producer="test",
            )
        h.projections.run(VIEWS)
        digests = {n: h.projections.digest(n, save=False) for n in VIEWS}
        kek = create_kek_file(root / "vault" / "backup.kek")
        store = LocalObjectStore(root / "objects")
        manifest = backup(h, store, kek, chunk_bytes=1 << 20)
        records = {
            t: {p: list(h.log.scan(t, p)) for p in range(h.log.topic(t).partitions)} for t in TOPICS
        }
    finally:
        h.close()
    yield {
        "kafka": kafka,
        "pg": pg,
        "bao": bao,
        "root": root,
        "settings": settings,
        "token": token,
        "kek": kek,
        "store": store,
        "manifest": manifest,
        "digests": digests,
        "records": records,
        "fresh_tag": tags[1],
    }
    with admin.begin() as conn:
        for tag in tags:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{tag}_views" CASCADE'))
    admin.dispose()
    for tag in tags:
        s = PostgresLedgerStore(pg, schema=f"{tag}_ledger")
        s.drop()
        s.close()


def check_restored(c: dict[str, Any], h: Hub) -> None:
    m = c["manifest"]
    assert h.ledger.store.root(m.ledger_size).hex() == m.ledger_root
    report = verify_ledger(h.ledger)
    assert report.first is None, report.first.describe()
    for topic, parts in c["records"].items():
        for part, records in parts.items():
            assert list(h.log.scan(topic, part))[: len(records)] == records, (topic, part)
    h.projections.run(VIEWS)
    assert {n: h.projections.digest(n, save=False) for n in VIEWS} == c["digests"]
    names = {
        e["value"]["account_id"]: e["value"]["customer_name"]
        for p in range(h.log.topic("accounts").partitions)
        for e in h.reader.read("accounts", p, 0, 10_000)
    }
    assert len(names) == 120 and names["ACC-0007"] == "Name 7"  # decrypted through OpenBao


def test_the_backup_holds_the_log_export_and_the_ledger_not_the_footprints_files(
    cluster: dict[str, Any],
) -> None:
    m = cluster["manifest"]
    paths = {f.path for f in m.files}
    assert {"log.export.sqlite", "ledger.sqlite"} <= paths and "log.sqlite" not in paths
    footprint = dict(m.stats["footprint"])
    recorded = footprint["vault"]["transit_keys"]
    footprint["vault"] = {k: v for k, v in footprint["vault"].items() if k != "transit_keys"}
    assert footprint == {
        "event_log": "kafka",
        "ledger_store": "postgres",
        "keystore": "vault",
        "vault": {"url": cluster["bao"], "mount": "transit", "keys": VAULT_KEYS_NOTE},
    }
    # the key ids and versions of every subject, never a key (names carry digests, not ids);
    # subject keys are per (tenant, subject): the publisher's tenant here is "default"
    for i in (0, 7, 119):
        assert recorded[f"hub-subject-{_digest(scoped_subject('default', f'ACC-{i:04d}'))}"] >= 1
    assert not any("ACC-" in name for name in recorded)
    assert "raft snapshot" in VAULT_KEYS_NOTE
    assert m.end_offsets["accounts"] and m.records >= 120
    offsets = {t: {int(p): o for p, o in parts.items()} for t, parts in m.end_offsets.items()}
    for topic, parts in cluster["records"].items():
        for part, records in parts.items():
            # the markers of the transactional appends are offsets too: the ends are past them
            assert offsets[topic][part] >= len(records)


def test_restore_into_the_embedded_footprint(cluster: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "site-b" / "hub"
    settings = load_settings(
        environ={},
        data_dir=target,
        object_store_dir=cluster["root"] / "objects",
        **vault(cluster["bao"]),
    )
    result = restore(
        settings,
        cluster["store"],
        cluster["kek"],
        target,
        cluster["token"],
        backup_id=cluster["manifest"].id,
    )
    assert result.ledger_root == cluster["manifest"].ledger_root
    assert (target / "log.sqlite").exists() and not (target / "log.export.sqlite").exists()
    h = bootstrap(settings)
    try:
        assert h.settings.event_log == "sqlite"
        check_restored(cluster, h)
    finally:
        h.close()


def test_restore_into_a_fresh_kafka_and_postgres(cluster: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "site-c" / "hub"
    settings = kafka_settings(
        target, cluster["kafka"], cluster["pg"], cluster["fresh_tag"], cluster["bao"]
    )
    settings = settings.model_copy(update={"object_store_dir": cluster["root"] / "objects"})
    result = restore(
        settings,
        cluster["store"],
        cluster["kek"],
        target,
        cluster["token"],
        backup_id=cluster["manifest"].id,
    )
    assert result.ledger_root == cluster["manifest"].ledger_root
    assert not (target / "ledger.sqlite").exists()  # the ledger went into PostgreSQL
    h = bootstrap(settings)
    try:
        assert type(h.ledger.store).__name__ == "PostgresLedgerStore"
        check_restored(cluster, h)
    finally:
        h.close()


def test_restore_into_a_log_that_holds_the_topics_is_refused(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "site-d" / "hub"
    live = cluster["settings"]  # the original cluster's topic prefix: not empty
    settings = live.model_copy(
        update={"data_dir": target, "object_store_dir": cluster["root"] / "objects"}
    )
    with pytest.raises(ReplayRefused, match="already holds records of topic"):
        restore(
            settings,
            cluster["store"],
            cluster["kek"],
            target,
            cluster["token"],
            backup_id=cluster["manifest"].id,
        )
    assert not target.exists()


def test_restore_where_vault_lacks_the_keys_is_refused_naming_them(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    """The manifest names the Vault transit keys (ids and versions); a Vault that lacks them
    (here: another mount, as after restoring into a fresh Vault without its snapshot) is
    refused before anything is replayed, naming the missing keys and the fix."""
    target = tmp_path / "site-e" / "hub"
    settings = load_settings(
        environ={},
        data_dir=target,
        object_store_dir=cluster["root"] / "objects",
        **vault(cluster["bao"]),
        vault_mount=f"empty-{uuid.uuid4().hex[:8]}",
    )
    with pytest.raises(RestoreRefused) as err:
        restore(
            settings,
            cluster["store"],
            cluster["kek"],
            target,
            cluster["token"],
            backup_id=cluster["manifest"].id,
        )
    n = len(cluster["manifest"].stats["footprint"]["vault"]["transit_keys"])
    assert f"lacks {n} of the {n} keys backup" in err.value.message, err.value.message
    # the first keys it names: subject keys, or the tenant marker keys beside scoped ones
    assert "(missing)" in err.value.message and "raft snapshot" in err.value.message
    assert "hub-subject-" in err.value.message or "hub-tenant-" in err.value.message
    assert not target.exists()


@pytest.mark.parametrize("stage", ["replay", "verify"])
def test_a_failed_kafka_restore_rolls_back_what_it_wrote(
    cluster: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """A failure injected mid-restore (the broker lost after the first partition is replayed,
    or a verify failure after the ledger went into PostgreSQL): the topics the restore created
    under the fresh prefix are deleted, the ledger schema it filled is dropped, the staging
    folder is gone, and the error names the failure and what was rolled back."""
    import ledger.verify
    import storage.portable

    tag = f"r{uuid.uuid4().hex[:10]}"
    with sa.create_engine(cluster["pg"]).begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{tag}_views"'))
    target = tmp_path / "site-f" / "hub"
    settings = kafka_settings(target, cluster["kafka"], cluster["pg"], tag, cluster["bao"])
    settings = settings.model_copy(update={"object_store_dir": cluster["root"] / "objects"})
    if stage == "replay":
        real = storage.portable._replay_partition
        calls = []

        def flaky(*args: Any) -> int:
            calls.append(args)
            if len(calls) > 1:
                raise HubError("injected: the broker went away", code="log_unavailable")
            return real(*args)

        monkeypatch.setattr(storage.portable, "_replay_partition", flaky)
    else:

        def broken(*_args: Any, **_kw: Any) -> Any:
            raise HubError("injected: verify could not read the ledger", code="ledger_error")

        monkeypatch.setattr(ledger.verify, "verify_ledger", broken)
    with pytest.raises(HubError) as err:
        restore(
            settings,
            cluster["store"],
            cluster["kek"],
            target,
            cluster["token"],
            backup_id=cluster["manifest"].id,
        )
    message = err.value.message
    assert "injected" in message and "rolled back" in message, message
    assert f"under prefix '{tag}.'" in message and f"{tag}.accounts" in message, message
    log = KafkaEventLog(cluster["kafka"], topic_prefix=f"{tag}.")
    try:
        assert log.namespace_topics() == set()  # nothing of the restore is left in Kafka
    finally:
        log.close()
    with sa.create_engine(cluster["pg"]).begin() as conn:
        schemas = {
            r[0]
            for r in conn.execute(sa.text("SELECT schema_name FROM information_schema.schemata"))
        }
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{tag}_views" CASCADE'))
    assert f"{tag}_ledger" not in schemas
    if stage == "verify":
        assert "dropped the PostgreSQL ledger schema" in message
    assert not target.exists()
    assert not target.parent.exists() or not list(target.parent.glob(".hub.restoring-*"))


def test_a_kafka_log_with_an_aborted_transaction_and_a_retention_cut_restores_exactly(
    tmp_path: Path,
) -> None:
    """An aborted transaction leaves offsets that no committed read returns (its records and its
    abort marker) and a retention cut raises a start offset: the restore into a fresh topic
    prefix recreates both (``storage.portable``), so the same records sit at the same offsets,
    the ledger has the original's root and verifies (the cut is the recorded one), and the
    projections give the same digests. Only Kafka is needed (the ledger and keys stay local).
    Slow-ish (96 s at load 25 here; most of it creating two hubs' topics on the broker): the
    one end-to-end proof that Kafka's own aborted-transaction offsets are recreated."""
    from core.ports.eventlog import Record

    kafka = kafka_bootstrap()
    tag = f"x{uuid.uuid4().hex[:10]}"

    def at(data: Path, prefix: str) -> Settings:
        return load_settings(
            environ={},
            data_dir=data,
            event_log="kafka",
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=prefix,
            object_store_dir=tmp_path / "objects",
        )

    h = bootstrap(at(tmp_path / "site-a" / "hub", f"{tag}a."))
    try:
        token = h.keys.create(["admin"], owner="dr-admin").token
        h.publisher.publish(
            "accounts", [account(f"ACC-{i:03d}", "A") for i in range(20)], producer="t"
        )
        with h.log.transaction("aborted-writer") as txn:
            txn.append("accounts", [Record(value=b"never", partition=0)] * 2)
            txn.abort()
        h.publisher.publish(
            "accounts", [account(f"ACC-{i:03d}", "B") for i in range(20, 40)], producer="t"
        )
        p0 = [r.offset for r in h.log.scan("accounts", 0)]
        gap = next(i for i in range(1, len(p0)) if p0[i] - p0[i - 1] >= 3)
        assert gap >= 2, p0  # two records before the aborted transaction: one is cut
        keep = h.log.end_offsets("accounts")[0] - p0[gap - 1]  # a cut just before the last one
        h.governance.set_policy("topic:accounts", max_records=keep, actor="dr-admin")
        h.retention.run()
        begins = h.log.beginning_offsets("accounts")
        records = {p: list(h.log.scan("accounts", p)) for p in begins}
        h.projections.run(VIEWS)
        digests = {n: h.projections.digest(n, save=False) for n in VIEWS}
        kek = create_kek_file(tmp_path / "vault" / "backup.kek")
        made = backup(h, LocalObjectStore(tmp_path / "objects"), kek, chunk_bytes=1 << 20)
    finally:
        h.close()
    assert begins[0] == p0[gap - 1]  # the cut, then the aborted transaction's 3 offsets
    assert [r.offset for r in records[0]][:2] == [p0[gap - 1], p0[gap]]

    target = tmp_path / "site-b" / "hub"
    restored = at(target, f"{tag}b.")
    done = restore(restored, LocalObjectStore(tmp_path / "objects"), kek, target, token)
    assert done.ledger_root == made.ledger_root
    r = bootstrap(restored, install_domain=False)
    try:
        assert r.ledger.store.root(made.ledger_size).hex() == made.ledger_root
        report = verify_ledger(r.ledger)
        assert report.first is None, report.first.describe()
        assert r.log.beginning_offsets("accounts") == begins
        assert {p: list(r.log.scan("accounts", p)) for p in begins} == records
        r.projections.run(VIEWS)
        assert {n: r.projections.digest(n, save=False) for n in VIEWS} == digests
    finally:
        r.close()
