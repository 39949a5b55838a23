"""The composition root: the only place that builds real adapters from settings.

``bootstrap(settings)`` returns a ``Hub`` holding every service. Nothing happens at import time.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Native library load order: importing pyarrow AFTER regopy (the Rego engine) aborts the process
# ("double free or corruption", measured with regopy 1.5.2 + pyarrow 16.1.0); before it is fine.
# Projections (chDB views, query export) and Parquet ingest use pyarrow, so load it first.
import pyarrow  # noqa: F401

from adapters.rego_deadline import BoundedEvaluation
from adapters.rego_policy import RegoPolicyEngine
from adapters.subject_tenants import SqliteSubjectTenants
from core import clock
from core.coredumps import forbid_core_dumps
from core.errors import ConfigError, HubError
from core.hubactions import AUDIT_TOPIC, hub_topics
from core.leadership import LeaderElector
from core.lineage import LineageLog
from core.metrics import Metrics
from core.policybundle import PolicyBundle
from core.ports.eventlog import EventLog, StoredRecord
from core.ports.keyfiles import private_dir
from core.ports.keystore import KeyStore, SubjectTenants
from core.ports.ledgerstore import LeafRow, LedgerStore
from core.ports.objectstore import ObjectStore
from core.ports.policy import Decision, PolicyEngine, Principal
from core.ports.signer import Signer
from core.ports.views import Target
from core.projection import Projection
from core.roles import RoleTablePolicy
from core.tenant_mac import PURPOSE as TENANT_MAC_PURPOSE
from governance.apikeys import PEPPER_FILE, ApiKeys, load_pepper
from governance.cases import CaseBook
from governance.catalog import Catalog
from governance.changes import Evaluator, PolicyChanges, PolicyFollower, Reloadable
from governance.configchanges import ConfigChanges
from governance.configstore import ConfigChangeStore
from governance.erasure import Eraser
from governance.erasure_index import ErasureIndex
from governance.erasure_intents import ErasureIntents
from governance.keyring_anchor import KeyringAnchor
from governance.retention import Governance, RetentionJob, cut_expired_rows
from governance.store import PolicyStore
from hub.derived_secrets import derived_secret
from hub.settings import Settings, load_settings
from hub.tracing import configure_tracing
from ingest.pipeline import IngestPipeline
from ingest.publish import EventReader, Publisher
from ledger.errors import LedgerIntegrityError
from ledger.service import Ledger
from ledger.witness_log import WitnessTee
from projections.service import ProjectionService
from registry.owners import adopt as adopt_owners
from registry.service import SchemaRegistry

log = logging.getLogger("hub.bootstrap")


@dataclass
class Hub:
    """Every adapter and service of one hub process, each built once by ``bootstrap``."""

    settings: Settings
    log: EventLog
    registry: SchemaRegistry
    publisher: Publisher
    reader: EventReader
    keys: ApiKeys
    policy: PolicyEngine
    metrics: Metrics
    ingest: IngestPipeline
    ledger: Ledger
    keystore: KeyStore
    cases: CaseBook
    projections: ProjectionService
    governance: Governance  # retention policies and legal holds (``hub.governance``)
    policy_store: PolicyStore  # the active bundle and its history (``hub.policies``)
    policy_changes: PolicyChanges
    policy_follower: PolicyFollower  # started by the HTTP app: keeps ``policy`` on the bundle
    config_changes: ConfigChanges
    retention: RetentionJob
    lineage: LineageLog
    catalog: Catalog
    eraser: Eraser
    subject_tenants: SubjectTenants | None = None  # the frozen legacy record (the eraser's)
    ml: Any = None  # ml.service.MachineLearning, built on first use (hub.ml_setup.ml_of)
    # core.sqlguard_limits.QueryLimiter of the analysts' queries (hub.api.exports.query_limits)
    query_limiter: Any = None
    # Several processes on one footprint (HUB_LEADER_ELECTION): who runs the single writers.
    leader: LeaderElector | None = None
    # Compiles a policy bundle into an embedded engine: how proposed bundles are validated.
    policy_evaluator: Callable[[PolicyBundle], Evaluator] = RegoPolicyEngine
    sync_on_close: bool = True  # False: a verifier that must not change what it checks
    clock_accepted: bool = False  # started on a checkpoint dated ahead (``accepted_floor_ms``)

    def close(self) -> None:
        self.policy_follower.stop()
        if self.ml is not None:
            self.ml.close()
        if self.projections is not None:  # a Hub assembled by hand may have none
            self.projections.close()  # stops runners before the log closes
        close_policy = getattr(self.policy, "close", None)
        if callable(close_policy):
            close_policy()  # stores queued policy decisions before the log closes
        try:  # ... and gives them (and anything else appended) their leaves
            if self.sync_on_close and self.ledger.is_writer():
                if self.clock_accepted:  # the next accepted start's floor (accepted_floor_ms)
                    self.ledger.record_action(
                        "hub", "clock.accepted_stop", "hub.clock", outcome="warning"
                    )
                self.ledger.sync()
        except HubError as exc:
            log.error("the ledger did not sync on close: %s", exc.message)
        except Exception:  # closing must go on: the log and key store still need closing
            log.exception("the ledger did not sync on close")
        if self.leader is not None:
            self.leader.stop()  # a leader hands over now (release), not after its lease
            self.leader.leadership.close()
        self.ledger.close()
        self.keystore.close()
        if self.subject_tenants is not None:
            self.subject_tenants.close()
        if self.ingest.parquet is not None:
            self.ingest.parquet.close()  # its idle decoder processes
        self.log.close()


def build_event_log(settings: Settings) -> EventLog:
    """The EventLog adapter the settings name."""
    if settings.event_log == "sqlite":
        from adapters.local_signer import load_or_create_mac_key
        from adapters.sqlite_log import SqliteEventLog

        return SqliteEventLog(
            settings.log_path,
            synchronous=settings.sqlite_synchronous,
            mac_key=load_or_create_mac_key(settings.log_key_path),
            seal_v1=settings.log_seal_v1,
        )
    if settings.event_log == "kafka":
        from adapters.kafka_log import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap_servers,
            topic_prefix=settings.kafka_topic_prefix,
            replication_factor=settings.kafka_replication_factor,
            transaction_timeout_s=settings.kafka_transaction_timeout_s,
            # every record carries a MAC, so that a producer on the broker without the hub's
            # key cannot write records the hub takes for its own (adapters.kafka_log.auth)
            mac_key=derived_secret(settings, b"hub kafka record MAC"),
            # and every data record a tenant MAC under a key of its own, the one the Flink jobs
            # hold to trust its ce_tenant (core.tenant_mac; hub.flink.tenant_key)
            tenant_key=derived_secret(settings, TENANT_MAC_PURPOSE),
        )
    raise ConfigError(
        f"HUB_EVENT_LOG={settings.event_log!r} has no adapter: use 'sqlite' or 'kafka'."
    )


def build_keystore(settings: Settings) -> KeyStore:
    """The KeyStore adapter the settings name (per-data-subject keys for PII)."""
    if settings.keystore == "vault":
        from adapters.vault_keystore import VaultKeyStore

        token = settings.vault_token.get_secret_value() if settings.vault_token else ""
        return VaultKeyStore(
            settings.vault_url,
            token,
            settings.vault_mount,
            cache_ttl_s=settings.keystore_cache_ttl_s,
        )
    from adapters.local_keystore import open_keyring

    master = settings.master_key.get_secret_value() if settings.master_key else None
    return open_keyring(
        settings.keyring_path,
        settings.master_key_path,
        master,
        cache_ttl_s=settings.keystore_cache_ttl_s,
    )


def build_ingest(
    event_log: EventLog,
    registry: SchemaRegistry,
    publisher: Publisher,
    metrics: Metrics,
    settings: Settings,
) -> IngestPipeline:
    """The ingest pipeline every source uses (rules, positions and dedupe folded from the log)."""
    from datetime import timedelta

    from core.tenant_quota import IngestRates
    from ingest.dedupe import Deduper
    from ingest.parquet_pool import DecoderLimits, ParquetDecoders
    from ingest.positions import PositionStore
    from ingest.rules import RulesStore

    pipeline = IngestPipeline(
        event_log,
        registry,
        publisher,
        metrics,
        RulesStore(event_log, registry, publisher),
        PositionStore(event_log, registry, publisher),
        Deduper(
            event_log,
            settings.dedupe_max_keys,
            timedelta(seconds=settings.dedupe_event_id_window_s),
        ),
        settings.max_record_bytes,
        ParquetDecoders(
            DecoderLimits(
                size=settings.parquet_decoders,
                seconds=settings.parquet_decode_seconds,
                seconds_per_mib=settings.parquet_decode_seconds_per_mib,
                memory_mib=settings.parquet_decoder_memory_mib,
                max_files=settings.parquet_decoder_max_files,
            )
        ),
        IngestRates(
            records_per_s=settings.ingest_records_per_s_per_tenant,
            records_burst=settings.ingest_records_burst_per_tenant,
            bytes_per_s=settings.ingest_bytes_per_s_per_tenant,
            bytes_burst=settings.ingest_bytes_burst_per_tenant,
        ),
        settings.quarantine_max_bytes_per_tenant,
        settings.stored_max_bytes_per_tenant,
    )
    # fold the log now, not inside a first ingest commit
    if pipeline.quarantine_quota.on:
        pipeline.quarantine_quota.held("default")
    if pipeline.stored_quota.on:
        pipeline.stored_quota.held("default")
    return pipeline


TILE_LEDGER_FILE = "ledger-tiles.sqlite"


def log_file_end_offsets(path: Path) -> dict[str, dict[str, int]]:
    """Per topic and partition the end offset in a copy of the embedded log's file (backups)."""
    from adapters.sqlite_log.snapshot import end_offsets

    return end_offsets(path)


SIDE_INDEX_PURPOSE = b"hub ledger side-index MAC"
ROWS_KEYED_MARKER = "ledger-rows.keyed"  # keys/: the row store's rows were keyed once


def open_ledger_file(
    path: Path, side_key: bytes | None = None, keyed_marker: Path | None = None
) -> LedgerStore:
    """The LedgerStore of a ledger file (the embedded footprint's store, or a backup's copy of
    it): the tile store for ``ledger-tiles.sqlite``, the row store otherwise; the caller
    closes it. ``side_key``: the tile store's side-index MAC key (``derived_secret`` of
    ``SIDE_INDEX_PURPOSE``); without it side-index batches are checked by their SHA-256 only
    and written unkeyed. The row store uses the same key for its rows' MAC, and
    ``keyed_marker`` (in ``keys/``) to key the rows of an older file once only."""
    if path.name == TILE_LEDGER_FILE:
        from adapters.tile_ledgerstore import TileLedgerStore

        return TileLedgerStore(path, side_key=side_key)
    from adapters.sqlite_ledgerstore import SqliteLedgerStore

    if side_key is None:
        return SqliteLedgerStore(path)
    return SqliteLedgerStore(path, side_key=side_key, keyed_marker=keyed_marker)


def ledger_file_in(folder: Path) -> Path | None:
    """The embedded ledger file a data folder (or a backup's snapshot of one) holds (tiles or
    rows); None when it holds neither, ConfigError when it holds both."""
    found = [folder / n for n in (TILE_LEDGER_FILE, "ledger.sqlite") if (folder / n).exists()]
    if len(found) > 1:
        raise ConfigError(
            f"{folder} holds two ledgers, {found[0].name} and {found[1].name}; move the one "
            "HUB_LEDGER_STORE does not name out of the folder."
        )
    return found[0] if found else None


def open_ledger_store(settings: Settings) -> LedgerStore:
    """The LedgerStore the settings name (C2SP tiles, SQLite rows, or PostgreSQL); the caller
    closes it. ``HUB_LEDGER_STORE`` picks the embedded store of a NEW data folder; a folder
    that already holds a ledger file keeps it (``ledger_file_in``)."""
    store: LedgerStore
    if settings.ledger_store == "postgres":
        from adapters.postgres_ledgerstore import PostgresLedgerStore

        if not settings.ledger_postgres_url:
            raise ConfigError(
                "HUB_LEDGER_STORE=postgres needs HUB_LEDGER_POSTGRES_URL (for example "
                "postgresql://hub:hub@127.0.0.1:15432/hub); set it or use HUB_LEDGER_STORE=sqlite."
            )
        store = PostgresLedgerStore(
            settings.ledger_postgres_url,
            schema=settings.ledger_postgres_schema,
            idle_timeout_s=settings.ledger_postgres_idle_timeout_s,
            # the rows' MAC key and keyed-once marker live in keys/, never in the database
            side_key=derived_secret(settings, SIDE_INDEX_PURPOSE),
            keyed_marker=settings.log_key_path.parent
            / f"ledger-rows.{settings.ledger_postgres_schema}.keyed",
        )
    else:  # embedded: a folder keeps the ledger file it has (a ledger is never forked)
        new = TILE_LEDGER_FILE if settings.ledger_store == "tiles" else "ledger.sqlite"
        path = ledger_file_in(settings.data_dir) or settings.data_dir / new
        # the side index's MAC key comes from keys/, never from the ledger file it guards
        store = open_ledger_file(
            path,
            derived_secret(settings, SIDE_INDEX_PURPOSE),
            settings.log_key_path.parent / ROWS_KEYED_MARKER,
        )
    return store


def process_id(settings: Settings) -> str:
    """This process's name among the hub processes (HUB_LEADER_ID, else host name and pid)."""
    import os
    import socket

    return settings.leader_id or f"{socket.gethostname()}:{os.getpid()}"


def views_set_aside(settings: Settings) -> list[dict[str, object]]:
    """The view stores set aside as unreadable and rebuilt from the log (``hub status``)."""
    from adapters.view_setaside import set_asides

    return set_asides(settings.data_dir / "views")


def _chdb_folder(settings: Settings) -> Path:
    """The analytics store's chDB folder of this process (one per process id under leader
    election: each process folds its own copy from the log, ``hub.ha``)."""
    folder = "chdb"
    if settings.leader_election != "none":  # even when the processes share a data folder
        folder += "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", process_id(settings))
    return settings.data_dir / "views" / folder


def _sqlite_views_file(settings: Settings) -> Path | None:
    """The transactional store's SQLite file, None when it is a server (PostgreSQL)."""
    if not settings.views_sql_url:
        return settings.data_dir / "views" / "transactional.sqlite"
    from sqlalchemy.engine import make_url

    url = make_url(settings.views_sql_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _chdb_view_names() -> frozenset[str]:
    """The chDB tables the analytics projections keep as views (definitions without rows):
    every table's read view and an aggregate table's ``<t>__p`` (``adapters.clickhouse_views``:
    its rows are in the shared table). An unreadable one is made again, not folded again."""
    from projections.catalog import PROJECTIONS

    out: set[str] = set()
    for p in PROJECTIONS:
        if p.store != "analytics":
            continue
        for t in p.tables:
            name = Target(p.name).table(t.name)
            out |= {name, f"{name}__p"} if t.kind == "aggregate" else {name}
    return frozenset(out)


def views_cut_from_log(log: EventLog, kind: str) -> list[str]:
    """``topic/partition < offset`` of every partition read by a projection of store ``kind``
    whose first record the log (its cold tier included) no longer holds: what retention cut.
    A view store folded again from the log would lack the rows of those records."""
    from core.errors import TopicNotFound
    from projections.catalog import PROJECTIONS

    out = []
    topics = sorted({t for p in PROJECTIONS if p.store == kind for t in p.topics})
    for topic in topics:
        try:
            starts = log.beginning_offsets(topic)
        except TopicNotFound:
            continue
        out += [f"{topic}/{p} < {start}" for p, start in sorted(starts.items()) if start > 0]
    return out


def refuse_lossy_set_aside(log: EventLog, kind: str, where: Path | str) -> Callable[..., None]:
    """The view stores' ``may_set_aside`` (``adapters.view_setaside``): an unreadable store
    is moved aside and folded again from the log only when the log still holds every record
    it was folded from; otherwise ``ConfigError`` names the store, what is broken, the topics
    retention cut and the repairs, and the store stays where it is (the hub does not start on
    it, as before session 22). Silently rebuilding would lose those records' rows."""

    def check(reason: str, files: Sequence[str]) -> None:
        cut = views_cut_from_log(log, kind)
        if not cut:
            return
        shown = ", ".join(cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
        raise ConfigError(
            f"The {kind} view store {where} cannot be opened ({reason}; broken: "
            f"{', '.join(files[:5]) or 'see the reason'}) and was NOT moved aside to be folded "
            f"again from the log: retention has cut records it was folded from and no cold "
            f"tier keeps them ({shown}), so a rebuild would lose their rows. Restore the store "
            f"from a backup, or accept losing those rows: `hub projection set-aside {kind} "
            "--lose-rows` (moves it aside, kept and dated), then start the hub again."
        )

    return check


def set_views_aside(settings: Settings, log: EventLog, kind: str) -> dict[str, object]:
    """Move the embedded view store ``kind`` (the chDB folder, the SQLite views file) aside
    at the operator's word (``hub projection set-aside KIND --lose-rows``): the next start
    folds it again from what the log holds. The note names the records the log lost."""
    from adapters.view_setaside import set_aside

    paths: list[Path]
    if kind == "analytics" and settings.views_analytics != "clickhouse":
        paths = [_chdb_folder(settings)]
    elif kind == "transactional" and (file := _sqlite_views_file(settings)) is not None:
        paths = [file, *(file.with_name(file.name + x) for x in ("-wal", "-shm", "-journal"))]
    else:
        raise ConfigError(
            f"The {kind} view store is a server's (not files of this data folder): there is "
            "nothing here to move aside. Drop its tables there, or rebuild its projections."
        )
    if not paths[0].exists():
        raise ConfigError(f"The {kind} view store {paths[0]} does not exist: nothing to move.")
    cut = views_cut_from_log(log, kind)
    reason = (
        "moved aside by `hub projection set-aside --lose-rows`; rows of records cut from the "
        f"log are not folded again: {', '.join(cut) or 'none cut'}"
    )
    moved = set_aside(paths, [paths[0].name], reason)
    return {"store": kind, "moved_to": moved.folder, "reason": moved.reason}


def build_leader(settings: Settings, name: str | None = None) -> LeaderElector | None:
    """The leader elector when several processes share the footprint (HUB_LEADER_ELECTION);
    ``name`` picks another lease than the hub's (a scoring worker's, one per model)."""
    if settings.leader_election == "none":
        return None
    from adapters.postgres_leadership import PostgresLeadership

    url = settings.leader_postgres_url or settings.ledger_postgres_url
    if not url or settings.ledger_store != "postgres":
        raise ConfigError(
            "HUB_LEADER_ELECTION=postgres needs the ledger in PostgreSQL (HUB_LEDGER_STORE="
            "postgres and HUB_LEDGER_POSTGRES_URL, which the lease uses unless "
            "HUB_LEADER_POSTGRES_URL is set): several processes cannot share a ledger file."
        )
    holder = process_id(settings)
    return LeaderElector(
        PostgresLeadership(
            url, name or settings.leader_name, holder, lease_s=settings.leader_lease_s
        )
    )


def build_ledger(
    settings: Settings,
    event_log: EventLog,
    registry: SchemaRegistry,
    publisher: Publisher,
    leader: LeaderElector | None = None,
    store: LedgerStore | None = None,
    *,
    witness_refuses: bool = True,
    log_held_records: bool = True,
) -> Ledger:
    """The audit ledger: its store (``store``, else the one the settings name), local key-file
    signer, witness (``witness_refuses``: see ``outside_witness``). ``log_held_records``:
    whether the event log held records when this process opened it (``holds_records``, before
    anything was appended): only a start over an empty log is the hub's first, which may make
    the signing key and build the ledger over the log."""
    from adapters.local_signer import LocalKeyFileSigner
    from ledger.service import LedgerConfig

    store = store or open_ledger_store(settings)
    config = LedgerConfig(
        origin=settings.ledger_origin,
        checkpoint_every_leaves=settings.checkpoint_every_leaves,
        checkpoint_every_ms=settings.checkpoint_every_ms,
        sync_batch=settings.ledger_sync_batch,
        max_pending_ms=settings.ledger_max_pending_ms,
        hash_threads=settings.ledger_hash_threads,
        verify_threads=settings.ledger_verify_threads,
    )
    # Before the signer makes a key: a refused start leaves no new key behind.
    key_is_new = not settings.ledger_key_path.exists()
    refuse_a_new_key_over_a_ledger(settings, store, key_is_new)
    if settings.event_log == "sqlite":
        refuse_a_rebuilt_ledger(
            settings, event_log, store, key_is_new and not log_held_records, key_is_new
        )
    signer = LocalKeyFileSigner(settings.ledger_key_path, settings.ledger_origin)
    witness = None
    if settings.ledger_witness:
        witness = outside_witness(settings, store, signer, refuse=witness_refuses)
    ledger = Ledger(
        event_log,
        store,
        signer,
        config,
        witness=witness,
        publisher=publisher,
        registry=registry,
        fence=None if leader is None else leader.fence_of("ledger"),
    )
    if signer.created and leader is None and settings.event_log == "sqlite":
        # The first start signs what its set-up wrote before it serves anything: a crash
        # later leaves a non-empty ledger, which the next start opens (an empty ledger under
        # an older key is refused above), so kill -9 of a new hub does not strand its folder.
        ledger.sync(force_checkpoint=True)
    return ledger


def outside_witness(
    settings: Settings, store: LedgerStore, signer: Signer, *, refuse: bool = True
) -> WitnessTee:
    """The witness folder teed to the outside witness (``ledger.witness_log``), after checking
    the ledger against it: a ledger smaller than, or not extending, the newest checkpoint the
    outside witness holds was rolled back with its folder, and the hub refuses to open (and to
    sign anything over it) unless a restore acknowledged the rollback there. ``refuse=False``
    (``hub ledger verify``, which names every problem, this one included): opened, but nothing
    is appended to the outside witness (no checkpoint of that ledger gets witnessed)."""
    from adapters.local_objectstore import LocalObjectStore
    from ledger.witness_log import WitnessLog, WitnessLogError, check_ledger, log_path

    key = signer.verifier()
    wlog = WitnessLog(log_path(settings.outside_witness_dir, key), [key], settings.ledger_origin)
    try:
        problem, _head = check_ledger(store, wlog)
    except WitnessLogError as exc:  # a record that does not verify: the file was edited
        problem = exc.message
    if problem is not None and refuse:  # else verify names it (step 10), among the others
        raise LedgerIntegrityError(f"Refusing to open the ledger: {problem}")
    return WitnessTee(LocalObjectStore(settings.witness_dir), wlog, append=problem is None)


def holds_records(log: EventLog) -> str | None:
    """A topic of ``log`` holding records (None: the log is empty)."""
    for t in log.topics():
        starts = log.beginning_offsets(t.name)
        if any(end > starts.get(p, 0) for p, end in log.end_offsets(t.name).items()):
            return t.name
    return None


def refuse_a_new_key_over_a_ledger(
    settings: Settings, store: LedgerStore, key_is_new: bool
) -> None:
    """A ledger that holds entries but whose signing key is missing: the key was removed (a
    hub makes its key before its first entry). Making a new one would sign the ledger as found
    under it, and the outside witness, a file per key, would start empty: an older genuine
    folder copied back with its key, checkpoints and witness copies removed passed start-up
    and `hub ledger verify` (s20 red team audit)."""
    if not key_is_new:
        return
    size = store.tree_size()
    if size == 0:
        return
    raise LedgerIntegrityError(
        f"The ledger of {settings.data_dir} holds {size} entries, but its signing key "
        f"{settings.ledger_key_path} is missing: the key was removed, and the hub does not sign "
        "an existing ledger under a new key (its checkpoints and outside witness would start "
        "afresh over whatever the folder holds). Restore the key file (with the ledger and "
        "witness folder, or the whole folder) from a backup."
    )


def refuse_a_rebuilt_ledger(
    settings: Settings,
    log: EventLog,
    store: LedgerStore,
    first_start: bool,
    key_is_new: bool = False,
) -> None:
    """An empty ledger over a log that holds records, unless this is the hub's first start:
    the ledger was removed (or replaced by an empty one). Opening would rebuild it from the log
    and sign that under the hub's key, with fresh checkpoint times, the retention cuts' removed
    records gone from the tree and no witness copy older than today: verify would pass.
    ``first_start``: the signing key is made now AND the log was empty when this process opened
    it. A missing key alone is not a first start: removing keys/ledger.key with the ledger made
    the hub rebuild and sign it under a key of its own making (s19 red team c)."""
    if first_start or store.tree_size() > 0:
        return
    topic = holds_records(log)
    if topic is None:
        return
    new_folder = (
        "A new data folder whose first start stopped before its ledger signed anything holds "
        "nothing of value yet: remove that folder and start again."
    )
    if key_is_new:
        raise LedgerIntegrityError(
            f"The ledger of {settings.data_dir} is empty and its signing key "
            f"{settings.ledger_key_path} is missing, but the event log held records (topic "
            f"{topic!r}) before this start: the ledger and its key were removed, and the hub "
            "does not rebuild the ledger under a new key. Restore the ledger file, its key (and "
            f"the witness folder) from a backup. {new_folder}"
        )
    raise LedgerIntegrityError(
        f"The ledger of {settings.data_dir} is empty, but the event log holds records "
        f"(topic {topic!r}) and the ledger signing key {settings.ledger_key_path} "
        "existed before: the ledger store was removed or replaced, and the hub does not "
        "rebuild and re-sign it. Restore the ledger file (and witness folder) from a "
        f"backup. {new_folder}"
    )


def build_object_store(settings: Settings, *, write_once: bool = True) -> ObjectStore:
    """The ObjectStore the settings name (backups, the erasure journal, the cold tier, the
    lake): write-once unless asked otherwise (the cold tier deletes what retention expires)."""
    if settings.object_store == "s3":
        from adapters.s3_objectstore import S3ObjectStore

        return S3ObjectStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            secure=settings.s3_secure,
            write_once=write_once,
        )
    if settings.object_store == "hdfs":
        from adapters.webhdfs_objectstore import WebHdfsObjectStore

        return WebHdfsObjectStore(
            settings.hdfs_url, settings.hdfs_root, user=settings.hdfs_user, write_once=write_once
        )
    from adapters.local_objectstore import LocalObjectStore

    return LocalObjectStore(settings.objects_dir, write_once=write_once)


def build_tiered_log(settings: Settings, hot: EventLog, leaves: LedgerStore) -> EventLog:
    """The hot log with reads below its beginning served from the cold tier's segments, each
    checked against the ledger's ``leaves`` before it is served."""
    from ledger.leaves import LeafEncoder
    from storage.tiering import ColdTier, TieredEventLog

    def leaf_hashes(records: Sequence[StoredRecord]) -> list[bytes]:
        return LeafEncoder().leaf_hashes(records)  # one encoder per call: reads run in threads

    cold = ColdTier(
        build_object_store(settings, write_once=False), leaves=leaves, leaf_hashes=leaf_hashes
    )
    return TieredEventLog(hot, cold)


def build_projections(
    settings: Settings,
    event_log: EventLog,
    registry: SchemaRegistry,
    reader: EventReader,
    publisher: Publisher,
    metrics: Metrics,
    ledger: Ledger,
    keystore: KeyStore,
    cut_expired: Callable[[Projection, Target, bool], object],
    leader: LeaderElector | None = None,
) -> ProjectionService:
    """The projection service; its view stores open on first use (chDB only when needed)."""
    from core.ports.views import ViewStore
    from core.projection import Windowing

    s = settings

    def analytics() -> ViewStore:
        from adapters.clickhouse_views import ClickHouseSqlViews

        store: ClickHouseSqlViews
        if s.views_analytics == "clickhouse":
            from adapters.clickhouse_views import ClickHouseViewStore

            store = ClickHouseViewStore(s.views_clickhouse_url)
        else:
            from adapters.chdb_views import ChdbViewStore

            folder = _chdb_folder(s)
            store = ChdbViewStore(
                folder,
                may_set_aside=refuse_lossy_set_aside(event_log, "analytics", folder),
                views=_chdb_view_names().__contains__,
            )
        store.query_memory_bytes = s.query_max_memory_bytes
        reported("analytics", store)
        return store

    def reported(kind: str, store: ViewStore) -> None:
        """A warning and a count when ``store`` opened empty because its files were unreadable
        and went aside (``core.ports.views.SetAside``)."""
        moved = store.set_aside
        if moved is not None:
            metrics.views_set_aside.labels(kind).inc()
            log.warning(
                "view store unreadable at start: its broken files set aside (set-aside.json "
                "says whether its views were made again or are folded again from the log)",
                extra={
                    "store": kind,
                    "files": list(moved.files),
                    "reason": moved.reason,
                    "moved_to": moved.folder,
                },
            )

    def transactional() -> ViewStore:
        from adapters.sqlalchemy_views import SqlAlchemyViewStore
        from projections.flink.sealed import reader as sealed_reader

        url = s.views_sql_url
        if not url:
            (s.data_dir / "views").mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{s.data_dir / 'views' / 'transactional.sqlite'}"
        # PostgreSQL keeps PII sealed, opened here with the subject's key (crypto-shredding)
        store = SqlAlchemyViewStore(
            url,
            unseal=sealed_reader(registry, keystore),
            may_set_aside=refuse_lossy_set_aside(
                event_log, "transactional", _sqlite_views_file(s) or "(server)"
            ),
        )
        store.query_memory_bytes = s.query_max_memory_bytes  # its results (SQLite, PostgreSQL)
        reported("transactional", store)
        return store

    return ProjectionService(
        event_log,
        registry,
        reader,
        publisher,
        metrics,
        {"analytics": analytics, "transactional": transactional},
        windowing=Windowing(
            int(s.projection_allowed_lateness_s * 1_000_000), s.projection_late_mode
        ),
        batch_records=s.projection_batch_records,
        ledger=ledger,
        keystore=keystore,
        cut_expired=cut_expired,
        leader=leader,
    )


def build_policy(
    settings: Settings,
    event_log: EventLog,
    registry: SchemaRegistry,
    publisher: Publisher,
    policy_store: PolicyStore,
    cases: CaseBook | None = None,
    metrics: Metrics | None = None,
) -> PolicyEngine:
    """The PolicyEngine the settings name, on the active bundle (the fold of ``hub.policies``),
    recording every decision on ``hub.decisions`` unless ``policy_record_decisions`` is off.
    With ``cases``, a request that names a case is decided with the open cases in its context
    (without recording, cases are not consulted: such reads stay masked)."""
    from governance.decisions import DecisionCommitter, LogDecisionSink, RecordingPolicyEngine

    engine: PolicyEngine
    if settings.policy_engine == "roletable":
        engine = RoleTablePolicy()
    else:
        from core.decisioncache import DecisionCache

        bundle = policy_store.active_bundle()
        ttl = settings.policy_cache_ttl_ms
        cache = DecisionCache(ttl) if ttl else None
        if settings.policy_engine == "rego":
            engine = RegoPolicyEngine(
                bundle,
                cache=cache,
                decision_bound_ms=settings.policy_decision_bound_ms,
                decision_wall_ms=settings.policy_decision_wall_ms,
                stuck_max=settings.policy_stuck_max,
                child_memory_mb=settings.policy_eval_memory_mb,
                on_timeout=None
                if metrics is None
                else metrics.policy_eval_timeouts.labels("rego-cpp").inc,
            )
        else:
            from adapters.opa_policy import OpaPolicyEngine
            from core.policybundle import PolicyError

            opa = OpaPolicyEngine(
                settings.opa_url,
                bundle,
                timeout_s=settings.opa_timeout_ms / 1000,
                cache=cache,
                on_timeout=None
                if metrics is None
                else metrics.policy_eval_timeouts.labels("OPA").inc,
            )
            try:
                if opa.loaded_version() != bundle.version:
                    opa.load(bundle)
            except PolicyError as exc:  # decisions deny with a reason until OPA answers
                log.warning("OPA does not run the active policy bundle: %s", exc.message)
            engine = opa
    if not settings.policy_record_decisions:
        return engine
    sink = LogDecisionSink(event_log, registry, publisher)
    return RecordingPolicyEngine(
        engine,
        DecisionCommitter(sink),
        enrich=None if cases is None else cases.enrich,
        unsynced=settings.unsynced_read_actions,
        inner_blocks=settings.policy_engine == "opa",  # network I/O: not in an event loop
    )


def build_policy_timing(settings: Settings) -> BoundedEvaluation:
    """How long a proposed bundle's decisions may take (``HUB_POLICY_EVAL_BOUND_MS``): each
    case evaluated in a child process (``adapters.rego_deadline``)."""
    return BoundedEvaluation(
        settings.policy_eval_bound_ms, memory_mb=settings.policy_eval_memory_mb
    )


def _reloadable(engine: PolicyEngine) -> Reloadable | None:
    """The engine, when it loads policy bundles (Rego, OPA, a recording engine around them)."""
    return engine if hasattr(engine, "load") and hasattr(engine, "version") else None


def bootstrap(
    settings: Settings | None = None,
    *,
    install_domain: bool = True,
    kafka_migration: bool = False,
    witness_refuses: bool = True,
    check_erasures: bool = True,
    clock_refuses: bool = True,
) -> Hub:
    """Build a hub: every adapter and service once, each handed only the ports it needs.

    Steps: 1. settings; 2. event log; 3. registry (replays ``_schemas``); 4. domain topics and
    schemas (idempotent); 5. publisher, reader, API keys, policy, ingest, ledger; 6. governance
    (retention state, projections, config and policy changes, lineage, catalog, erasure).
    ``kafka_migration``: only for ``hub migrate kafka-seal`` (``hub.migrate_kafka``).
    ``witness_refuses=False``: only for ``hub ledger verify`` (``outside_witness``).
    ``clock_refuses=False``: only for ``hub ledger verify``, which opens a ledger whose newest
    checkpoint is dated ahead of the clock (``checkpoint_ahead``) to name it, not refuse it.
    ``check_erasures``: refuse erasures undone by a key store put back (``refuse_undone_erasures``,
    through the erasure index: every open); False only for ``hub ledger verify``, which reads
    the whole ledger's erasures and reports them, and for a restore's staged folder, which
    re-applies the journalled erasures itself (``hub.recovery``).
    """
    settings = settings or load_settings()  # 1
    if not settings.core_dumps:  # before any key is read: a crash must not write them out
        for missed in forbid_core_dumps():
            log.warning("core dumps not forbidden", extra={"reason": missed})
    private_dir(settings.data_dir)  # the log and views hold every tenant's records: owner only
    mode = settings.data_dir.stat().st_mode & 0o777
    if mode & 0o077:  # made before the hub made it 0700, or widened since: say so each start
        log.warning(
            "data folder readable by other users",
            extra={
                "data_dir": str(settings.data_dir),
                "mode": f"{mode:o}",
                "fix": f"chmod -R go-rwx {settings.data_dir}",
            },
        )
    configure_tracing(settings)  # off by default (HUB_OTEL_EXPORTER)
    hot_log = build_event_log(settings)  # 2
    # Before anything is appended: only a start over an empty log may make the ledger's key.
    log_held_records = True
    if settings.event_log == "sqlite":
        # (A topic failing its MAC: not a first start; the ledger's own checks name it.)
        with contextlib.suppress(HubError):
            log_held_records = holds_records(hot_log) is not None
    # the ledger's store first: the cold tier serves no segment the ledger does not vouch for
    ledger_store = open_ledger_store(settings)
    if kafka_migration:  # an unsealed deployment: read the pre-MAC records the ledger vouches for
        from hub.migrate_kafka import kafka_log_of, ledger_vouch

        kafka_log_of(hot_log).vouch_unsealed(ledger_vouch(ledger_store))
    event_log = build_tiered_log(settings, hot_log, ledger_store) if settings.cold_tier else hot_log
    metrics = Metrics()
    if settings.event_log == "kafka":  # readers skip a replayed record: counted
        from adapters.kafka_log import KafkaEventLog

        if isinstance(hot_log, KafkaEventLog):
            skipped = metrics.log_replays_skipped.labels
            hot_log.on_replay(lambda topic: skipped(topic).inc())
    refused = metrics.tenant_refusals.labels
    registry = SchemaRegistry(
        event_log,
        settings.registry_compatibility,
        strict_logical_types=settings.registry_strict_logical_types,
        max_subjects_per_tenant=settings.registry_max_subjects_per_tenant,
        max_versions_per_tenant=settings.registry_max_versions_per_tenant,
        refused=lambda tenant, limit: refused(tenant, limit).inc(),
        tail_watch_s=settings.registry_tail_watch_s,
    )  # 3
    adopt_owners(registry, event_log)  # subjects registered before owners were recorded (once)
    keystore = build_keystore(settings)  # PII is encrypted under it before it enters the log
    try:  # a keyring put back to an older copy of itself is refused
        KeyringAnchor(
            settings.keyring_anchor_path,
            derived_secret(settings, b"hub keyring anchor MAC"),
            settings.keyring_path,
        ).hold(keystore)
    except BaseException:
        keystore.close()
        raise
    publisher = Publisher(event_log, registry, settings.max_record_bytes, metrics, keystore)
    subject_tenants = SqliteSubjectTenants(
        settings.data_dir / "keys" / "subject_tenants.sqlite",
        mac_key=derived_secret(settings, b"hub subject tenants MAC"),
        # the sets of an older file are built once (the marker is a file of its own)
        keyed_marker=settings.data_dir / "keys" / "subject-sets.keyed",
        keystore=keystore,  # a subject with an older key and no record is not new
    )
    # Keys are per (tenant, subject) now (core.ports.keystore.TenantKeys): the record of which
    # tenants named each hub-wide (legacy) key is frozen, read by the eraser and by the tenant
    # views for legacy keys only; no naming adds to it (a publisher naming another tenant's
    # subject made it "shared", blocking that tenant's officer from erasing it).
    keystore.legacy_tenants = subject_tenants.tenants_of
    if install_domain:
        from hub.domain_setup import install

        install(event_log, registry, settings)  # 4
    reader = EventReader(event_log, registry, keystore)  # 5
    cases = CaseBook(event_log, reader, publisher)
    keys = ApiKeys(
        event_log,
        EventReader(event_log, registry, redact=False),  # the key fold alone sees the hashes
        publisher,
        load_pepper(settings.data_dir / "keys" / PEPPER_FILE),
    )
    policy_store = PolicyStore(event_log, reader)

    # People who may approve enrol through a second approver while any two-person rule is on:
    # a rule is only as strong as the set of approvers (governance.enrolment).
    def two_person_on() -> bool:
        policy_store.refresh()  # another process may have changed the active bundle
        return bool(policy_store.active_bundle().hub_data.get("two_person"))

    keys.use_two_person(two_person_on)
    policy = build_policy(settings, event_log, registry, publisher, policy_store, cases, metrics)
    ingest = build_ingest(event_log, registry, publisher, metrics, settings)
    leader = build_leader(settings)  # None unless several processes share the footprint
    ledger = build_ledger(  # verifies the hot log
        settings,
        hot_log,
        registry,
        publisher,
        leader,
        store=ledger_store,
        witness_refuses=witness_refuses,
        log_held_records=log_held_records,
    )
    # key and enrolment expiry, approvals and retention never read a time earlier than the
    # newest signed checkpoint's (verified above): a clock stepped back before a restart
    newest = ledger_store.latest_checkpoint()
    ahead_accepted = None
    if newest is not None:
        try:
            ahead_accepted = checkpoint_ahead(settings, newest.size, newest.time_us, clock_refuses)
        except LedgerIntegrityError:
            for opened in (ledger, keystore, event_log):
                with contextlib.suppress(Exception):
                    opened.close()
            raise
        if ahead_accepted is None:
            clock.raise_floor(newest.time_us * 1000)
        else:  # the checkpoints are no floor now; what the hub wrote since it accepted them is
            since = accepted_floor_ms(ledger_store, hub_topics(t.name for t in event_log.topics()))
            if since is not None:
                try:  # refused past the bound, as a checkpoint is: a clock stepped back that far
                    wrote_ahead(settings, since)
                except LedgerIntegrityError:
                    for opened in (ledger, keystore, event_log):
                        with contextlib.suppress(Exception):
                            opened.close()
                    raise
                clock.raise_floor(since * 1_000_000)
    if settings.cold_tier:
        from ledger.cuts import RecordedCuts
        from storage.tiering import TieredEventLog

        assert isinstance(event_log, TieredEventLog)
        # the cold tier starts where the ledger's retention cuts say, not a marker in the store
        event_log.cold.vouch_starts(RecordedCuts(ledger).cold_cut)
    governance = Governance(event_log, reader, publisher)  # 6

    def cut_expired(proj: Projection, target: Target, record: bool) -> object:
        return cut_expired_rows(governance, projections, proj, target, record=record)

    projections = build_projections(
        settings,
        event_log,
        registry,
        reader,
        publisher,
        metrics,
        ledger,
        keystore,
        cut_expired,
        leader,
    )
    config_changes = ConfigChanges(
        event_log,
        registry,
        publisher,
        policy_store,
        ConfigChangeStore(event_log, reader),
        rules=ingest.rules,
        governance=governance,
        ledger=ledger,
        identities=keys,
    )
    ingest.rules.governed = config_changes
    policy_changes = PolicyChanges(
        policy_store,
        publisher,
        _reloadable(policy),
        evaluator=RegoPolicyEngine,
        identities=keys,
        ledger=ledger,
        timing=build_policy_timing(settings),
    )
    # a revoked proposer's pending changes are withdrawn on the log, not left to be refused
    # (model promotions are changes on hub.config-changes too: config_changes withdraws them)
    keys.on_revoked(policy_changes.withdraw_revoked)

    # A pending change counts while its proposer may still propose it under the policy in
    # force, decided again at approval on the active bundle (another process may have just
    # activated one: sync first), not only while they keep their roles.
    def decide_in_force(
        principal: Principal, action: str, resource: str, context: Mapping[str, Any] | None
    ) -> Decision:
        policy_changes.sync()
        return policy.decide(principal, action, resource, context)

    keys.use_policy(decide_in_force)
    keys.on_revoked(config_changes.withdraw_revoked)
    # a policy that takes a permission away withdraws the pending changes proposed under it:
    # policy changes in the activation's own append, configuration changes right after
    policy_changes.on_activated(config_changes.withdraw_not_permitted)
    lineage = LineageLog(event_log, reader)
    retention = RetentionJob(
        event_log, reader, registry, publisher, ledger, governance, projections
    )
    hub = Hub(
        settings=settings,
        log=event_log,
        registry=registry,
        publisher=publisher,
        reader=reader,
        keys=keys,
        policy=policy,
        metrics=metrics,
        ingest=ingest,
        ledger=ledger,
        keystore=keystore,
        cases=cases,
        projections=projections,
        governance=governance,
        policy_store=policy_store,
        policy_changes=policy_changes,
        policy_follower=PolicyFollower(policy_changes),
        config_changes=config_changes,
        retention=retention,
        lineage=lineage,
        catalog=Catalog(event_log, registry, governance, lineage),
        eraser=Eraser(
            keystore,
            ledger,
            governance,
            projections,
            subject_tenants,
            retention,
            ErasureIndex(settings.erasure_index_path, erasure_index_key(settings), ledger),
            ErasureIntents(settings.erasure_intents_dir),
        ),
        subject_tenants=subject_tenants,
        leader=leader,
    )
    hub.eraser.derived = lambda subject, tenants: forget_derived(hub, subject, tenants)
    if not settings.policy_record_decisions:
        record_decisions_off(hub)
    if ahead_accepted is not None:
        record_clock_ahead_accepted(hub, ahead_accepted)
        hub.clock_accepted = True
    if check_erasures:
        try:
            refuse_undone_erasures(hub)
        except BaseException:
            hub.close()
            raise
        complete_interrupted_erasures(hub)
    log.info(
        "hub ready",
        extra={"event_log": settings.event_log, "data_dir": str(settings.data_dir)},
    )
    return hub


def checkpoint_ahead(
    settings: Settings, size: int, time_us: int, refuses: bool = True
) -> dict[str, Any] | None:
    """Refuse a start whose newest signed checkpoint is dated ahead of the system clock by more
    than ``clock_max_ahead_s``, unless the operator accepted checkpoint times up to
    ``clock_accept_ahead_until``: then the hub's time starts at the wall clock (not that
    checkpoint's) and the acceptance is returned, to be recorded on the ledger.

    The floor of ``core.clock`` follows the newest checkpoint so that a clock stepped back
    cannot revive an expired key. A checkpoint signed while the clock ran far ahead (a bad NTP
    source, or someone holding the ledger key) would otherwise move the hub's time ahead at
    every start: keys refused as expired, retention cutting early. Either way the two clocks
    disagree by more than the bound, which only the operator can settle, so the start says so
    and names both times. None: nothing to record (within the bound, or ``refuses`` is False:
    ``hub ledger verify`` opens the ledger as it is, and its report warns)."""
    wall_ns = clock.wall_ns()
    ahead_s = (time_us * 1000 - wall_ns) / 1e9
    if not refuses or ahead_s <= settings.clock_max_ahead_s:
        return None
    stamp = _utc(time_us)
    until = settings.clock_accept_ahead_until
    if until is not None and time_us <= until.timestamp() * 1e6:
        return {
            "checkpoint_size": size,
            "checkpoint_time": stamp,
            "ahead_s": round(ahead_s, 3),
            "accepted_until": until.isoformat(),
            "setting": "HUB_CLOCK_ACCEPT_AHEAD_UNTIL",
        }
    raise LedgerIntegrityError(
        f"Refusing to start: the newest signed checkpoint (size {size}, time {stamp}) is "
        f"{ahead_s:,.0f} s ahead of this machine's clock "
        f"({_utc(wall_ns // 1000)}; "
        f"HUB_CLOCK_MAX_AHEAD_S={settings.clock_max_ahead_s:g}). "
        "Either the clock was stepped back (fix it: NTP) or that checkpoint was signed while "
        "the clock ran ahead. In the second case only, set HUB_CLOCK_ACCEPT_AHEAD_UNTIL to a "
        "time at or after the checkpoint's: the hub then starts on the wall clock and records "
        "the acceptance on the ledger (clock.ahead_accepted). `hub ledger verify` still runs."
    )


ACCEPTED_FLOOR_LEAVES = 1000
"""The newest ledger leaves an accepted start reads for the time the hub last wrote."""


def accepted_floor_ms(store: LedgerStore, internal: Sequence[str]) -> int | None:
    """The floor of a start whose checkpoint dated ahead was accepted (``checkpoint_ahead``):
    the latest time on the ledger that a start since the acceptance wrote, or None before the
    first accepted start is on it.

    Checkpoint times never go back, so after an acceptance every checkpoint keeps the time
    dated ahead until the clock catches up, and the floor cannot follow them. Without another
    floor a clock stepped back before a later restart (session 24's attack) would revive
    expired keys for as long as the acceptance lasts. The newest ``clock.ahead_accepted``
    entry was recorded by an accepted start on its wall clock, and so was everything the hub
    wrote after it, up to the ``clock.accepted_stop`` its close records: the latest of those
    times (the internal topics' leaves among the newest ``ACCEPTED_FLOOR_LEAVES``: only the
    hub writes them) has passed. A process that ended without closing (killed) leaves the
    floor at the last of its writes the ledger synced."""
    accepted: LeafRow | None = None
    after = -1
    while rows := store.query(
        action="clock.ahead_accepted", topic=AUDIT_TOPIC, after=after, limit=1000
    ):
        accepted, after = rows[-1], rows[-1][0]
    if accepted is None:
        return None
    newest = store.query(
        topics=internal,
        after=max(accepted[0] - 1, store.tree_size() - ACCEPTED_FLOOR_LEAVES - 1),
        limit=ACCEPTED_FLOOR_LEAVES,
    )
    return max([accepted[4], *(r[4] for r in newest)])


def wrote_ahead(settings: Settings, since_ms: int) -> None:
    """Refuse a start whose accepted floor (``accepted_floor_ms``) leads the system clock by
    more than ``clock_max_ahead_s``. What the hub wrote since an accepted start was dated by
    the wall clock then, so the clock was stepped back since (or a broker producer dated a
    record of an internal topic ahead). ``HUB_CLOCK_ACCEPT_AHEAD_UNTIL`` does not cover it:
    it accepts checkpoint times only."""
    wall_ns = clock.wall_ns()
    ahead_s = (since_ms * 1_000_000 - wall_ns) / 1e9
    if ahead_s <= settings.clock_max_ahead_s:
        return
    raise LedgerIntegrityError(
        f"Refusing to start: since the last accepted start (clock.ahead_accepted) the hub wrote "
        f"at {_utc(since_ms * 1000)}, {ahead_s:,.0f} s ahead of this machine's clock "
        f"({_utc(wall_ns // 1000)}; HUB_CLOCK_MAX_AHEAD_S={settings.clock_max_ahead_s:g}). "
        "The clock was stepped back since (fix it: NTP); HUB_CLOCK_ACCEPT_AHEAD_UNTIL accepts "
        "checkpoint times only. `hub ledger verify` still runs."
    )


def _utc(time_us: int) -> str:
    """``time_us`` as an ISO 8601 UTC time; one no calendar holds (a forged checkpoint's year
    38504) as its microseconds."""
    try:
        return datetime.fromtimestamp(time_us / 1e6, tz=UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{time_us} us after the epoch"


def record_clock_ahead_accepted(hub: Hub, accepted: Mapping[str, Any]) -> None:
    """The operator's acceptance of a checkpoint dated ahead is on the ledger at every start it
    is used (the hub's time then started on the wall clock, not the checkpoint's)."""
    hub.ledger.record_action(
        "hub", "clock.ahead_accepted", "hub.clock", outcome="warning", details=dict(accepted)
    )
    log.warning("a checkpoint dated ahead of the clock was accepted", extra=dict(accepted))


def record_decisions_off(hub: Hub) -> None:
    """A start that records no access decision (``policy_record_decisions`` off) is itself on
    the ledger: the CC6 population ("every access decision") lacks this process's decisions,
    and the evidence of the period says so (``audit.controls.DECISIONS_UNRECORDED``, named by
    ``hub-verify bundle``) instead of being silently short."""
    s = hub.settings
    hub.ledger.record_action(
        "hub",
        "policy.decisions_unrecorded",
        "hub.decisions",
        outcome="warning",
        details={"setting": "HUB_POLICY_RECORD_DECISIONS=false", "engine": s.policy_engine},
    )
    log.warning(
        "access decisions are not recorded",
        extra={
            "setting": "HUB_POLICY_RECORD_DECISIONS=false",
            "recorded": "policy.decisions_unrecorded",
        },
    )


def forget_derived(hub: Hub, subject: str, tenants: Sequence[str]) -> dict[str, Any]:
    """An erasure's step 3b (``governance.erasure``): the ML side deletes the subject's derived
    rows (``MachineLearning.forget``); nothing to do on a hub that never used it (no ``ml``
    folder: no feature row was ever stored)."""
    if hub.ml is None and not (hub.settings.data_dir / "ml").exists():
        return {}
    from hub.ml_setup import ml_of

    return ml_of(hub).forget(subject, tenants)


def erasure_index_key(settings: Settings) -> bytes:
    """The erasure index's MAC key (``governance.erasure_index``), kept in keys/, never in the
    index file it guards."""
    return derived_secret(settings, b"hub erasure index MAC")


def undone_erasures_problem(hub: Hub, *, full: bool = False) -> str | None:
    """The erasures the ledger records whose data subject key is live again (``Eraser.undone``):
    the keyring was put back to a copy from before them, and the hub would read the erased
    subjects' PII again. None when there is none. ``full``: read every erasure entry of the
    ledger (and compare the erasure index with them), not the index."""
    undone = hub.eraser.undone(full=full)
    if not undone:
        return None
    named = ", ".join(f"{subject!r} (tenant {t}, ledger entry {i})" for i, t, subject in undone[:5])
    s = hub.settings
    where = str(s.keyring_path) if s.keystore == "local" else "Vault"
    return (
        f"{len(undone)} erasure(s) the ledger records are undone: the key of {named} is in the "
        f"key store again, and an erased subject never gets a new key: the key store ({where}) "
        "was put back to a copy from before the erasure. Put the current one back, or restore "
        "the newest backup (`hub backup restore` re-applies every journalled erasure)."
    )


ERASURES_WRITER = "erasures.interrupted"  # the lease's fence the completion runs in


def complete_interrupted_erasures(hub: Hub) -> None:
    """Complete the erasures a killed process began and did not record
    (``Eraser.complete_interrupted``: its keys destroyed, the views not yet scrubbed, nothing
    on the ledger); each is logged. One that fails again is logged with what to run: the
    open goes on (the subject's key is destroyed whatever happens: reads show it erased).

    Under leader election the processes share the data folder, so each would find the same
    intents and record the same erasure again: only the lease's holder completes them (taking
    the lease when it is free, as a CLI command does), inside the lease's fence (a newer
    leader's completion waits for this one, then finds the intents gone). A follower leaves
    them, and the leader completes them when it is elected (``hub.ha.single_writers``)."""
    leader = hub.leader
    if leader is None:
        _complete_interrupted(hub)
        return
    folder = hub.settings.erasure_intents_dir
    if not folder.is_dir() or not any(folder.glob("*.json")):
        return  # nothing left half done: no lease to take
    try:
        token = leader.fence(ERASURES_WRITER)
        if token is None:
            holder = leader.leadership.current()
            log.info(
                "interrupted erasures left to the leader",
                extra={"leader": None if holder is None else holder.holder},
            )
            return
        with leader.leadership.fenced(token):
            _complete_interrupted(hub)
    except HubError as exc:  # the lease's store, or the fence (a newer leader took over)
        log.error(
            "interrupted erasures not completed",
            extra={"detail": exc.message, "fix": "the leader completes them when elected"},
        )


def _complete_interrupted(hub: Hub) -> None:
    try:
        for line in hub.eraser.complete_interrupted():
            log.warning("interrupted erasure", extra={"detail": line})
    except HubError as exc:
        log.error(
            "interrupted erasure not completed",
            extra={
                "detail": exc.message,
                "fix": f"run `hub erase SUBJECT --reason ...` again (intents in "
                f"{hub.settings.erasure_intents_dir})",
            },
        )


def refuse_undone_erasures(hub: Hub) -> None:
    problem = undone_erasures_problem(hub)
    if problem is not None:
        raise LedgerIntegrityError(f"Refusing to open: {problem}")
