"""FeastFeatureStore: the FeatureStore port with Feast serving the attribute features.

The log's fold (series points, attribute versions, feed positions) is kept by the embedded SQLite
store in one transaction, as the port's exactly-once contract asks; it is the projection's offline
table. From it this adapter generates a Feast repository under its folder:

- one Feast ``Entity`` (``entity``) and, per attribute set (e.g. ``account``), a ``FeatureView``
  over a Parquet ``FileSource``: one row per version with the values *in force from* that version
  on (earlier non-null values carried forward, as the contract's field-wise merge says);
- ``attributes(name, entities, as_of)`` is Feast's point-in-time join
  (``get_historical_features``) with each entity's timestamp one microsecond before ``as_of``, so
  nothing valid from ``as_of`` on is read (the contract's "strictly before");
- ``materialize()`` loads the latest values into Feast's online store (SQLite file embedded; Redis
  distributed, ``online="redis"``), read by ``online_attributes``.

- ``attribute_state`` (what scoring reads, ``HUB_FEATURE_STORE=feast``) is served from Feast's
  online store for every entity whose online row is older than the earliest time asked (the
  row is then exactly the state in force); others (an event dated before its entity's latest
  version, as in a training set) fall back to the SQLite table. The online store is kept in step
  by ``apply``: after the SQLite commit, the new state of every entity it touched is written
  with ``write_to_online_store`` (no materialize job per batch); on first use in a process the
  whole attribute set is written once. The index of what is online (entity -> its row's time)
  lives in the process: another process that folds into the same files writes the online rows
  too, but this process only learns their times from the SQLite table when it falls back.

Every row the hub writes to Feast (online rows, and the offline Parquet rows ``materialize``
copies online) carries two more fields: ``hub_row_time`` (the row's valid-from, µs) and
``hub_row_mac``, HMAC-SHA256 under a key of its own (``row_key``: the hub derives it from its
local MAC key with the label ``hub feast feature rows``; Redis never sees it) over the tenant, the
feature view, the entity key, the non-null values and that time. Whoever can write to Redis (or
the online SQLite file) could otherwise change the features a model scores on. A read verifies
each row and refuses one whose MAC is missing or wrong (edited, forged, copied from another
entity, tenant or view), or, on the scoring path, whose time is older than the row this process
last wrote for the entity (a replayed older row): ``FeatureRowRefused`` (counted, logged) reaches
the scorer, which scores nothing on it; the refused entities' rows are written again from the
SQLite table first, so a retry reads valid rows.

Deleted versions (session 19): the rows of the offline table are chained. Each also carries
``hub_row_until``, the valid-from of the entity's next version (empty for its latest), inside its
MAC. The point-in-time join answers the row in force just before ``as_of``; when its
``hub_row_until`` is at or before that instant, a later version should have answered and was
deleted from the Parquet file: refused, and the file is exported again. An entity the join finds
no row for while the SQLite table holds a version before ``as_of`` (its earliest versions
deleted) is refused the same way. Online rows are an entity's latest state: one with a
``hub_row_until`` (an older offline row put online) is refused as superseded.

Series windows (counts and sums over 1 h / 24 h) stay range scans of the SQLite table: Feast has
no raw-series read. Feast is imported when the adapter is built, never at CLI start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from adapters.sqlite_features import MAC_LABEL as TABLE_MAC_LABEL
from adapters.sqlite_features import SqliteFeatureStore
from adapters.sqlite_open import shred_freed
from core.errors import FeatureRowRefused, HubError
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint

PROJECT = "hub"
ENTITY = "entity"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAC_FIELD = "hub_row_mac"
TIME_FIELD = "hub_row_time"
UNTIL_FIELD = "hub_row_until"  # the valid-from of the entity's next version ("": none)
RESERVED = (MAC_FIELD, TIME_FIELD, UNTIL_FIELD)
ROW_KEY_LABEL = b"hub feast feature rows"  # the purpose the hub derives ``row_key`` with

log = logging.getLogger(__name__)


def entity_ref(entity_key: str) -> str:
    """How errors and logs name an entity: a digest, not its id (an account id may identify a
    person, and logs outlive erasures); ``entity_ref`` of a known key finds it."""
    return "entity #" + hashlib.sha256(entity_key.encode()).hexdigest()[:16]


def tenant_of(entity_key: str) -> str:
    """The tenant of an ``ml.features.entity_key`` (``<len>:<tenant>:<entity>``); "" for a key
    not of that form (a store used without tenants): the MAC covers the whole key anyway."""
    head, sep, rest = entity_key.partition(":")
    if sep and head.isdigit() and len(rest) > int(head) and rest[int(head)] == ":":
        return rest[: int(head)]
    return ""


def row_mac(
    key: bytes,
    view: str,
    entity_key: str,
    values: Mapping[str, Any],
    time_us: int,
    until_us: int | None = None,
    *,
    chained: bool = False,
) -> str:
    """The hex MAC of one feature row: its non-null values (a nulled value is noticed) and
    valid-from; ``chained`` (an offline row, v2) also the next version's (``until_us``; None:
    the entity's latest). An online row is not chained (v1): rows written before the chain
    still verify, and an online row (an entity's latest state, captured) put in the offline
    table, where only chained rows are read, does not."""
    present = sorted((f, v) for f, v in values.items() if v is not None)
    tenant = tenant_of(entity_key)
    if chained:
        data: list[Any] = ["hub-feast-row/v2", tenant, view, entity_key, time_us, until_us, present]
    else:
        if until_us is not None:
            raise ValueError("only a chained (offline) row names its next version")
        data = ["hub-feast-row/v1", tenant, view, entity_key, time_us, present]
    message = json.dumps(data, separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def check_row(
    key: bytes,
    view: str,
    entity_key: str,
    row: Mapping[str, Any],
    fields: Sequence[str],
    *,
    offline: bool = False,
) -> tuple[int, dict[str, str], int | None] | str:
    """(its time, its values, the next version's time or None) when the row read back is
    authentic, else why it is refused. A value that is not text counts as changed: the hub
    writes text only. ``offline``: a row of the Parquet table, which must be chained; online,
    an unchained row, or a chained one ``materialize`` copied."""
    mac, when, until = row.get(MAC_FIELD), row.get(TIME_FIELD), row.get(UNTIL_FIELD)
    if not isinstance(mac, str) or not mac:
        return f"it carries no {MAC_FIELD} (missing, or not written by the hub)"
    if not isinstance(when, str) or not _digits(when):
        return f"its {TIME_FIELD} is missing or not a time"
    if until is not None and not (isinstance(until, str) and _digits(until)):
        return f"its {UNTIL_FIELD} is not a time"
    next_us = None if until is None else int(until)
    values = {f: row[f] for f in fields if row.get(f) is not None}
    if any(not isinstance(v, str) for v in values.values()):
        return "it holds a value that is not text (the hub writes text only)"
    time_us = int(when)
    if offline or next_us is not None:
        want = [row_mac(key, view, entity_key, values, time_us, next_us, chained=True)]
    else:  # written online by the hub, or an offline latest row materialized
        want = [row_mac(key, view, entity_key, values, time_us)]
        if not hmac.compare_digest(mac, want[0]):
            want.append(row_mac(key, view, entity_key, values, time_us, chained=True))
    if not hmac.compare_digest(mac, want[-1]):
        return (
            f"its {MAC_FIELD} does not match its values (edited, forged, copied from another "
            "entity, tenant or view, or written under another hub's key)"
        )
    return time_us, values, next_us


SUPERSEDED = "it is not the entity's latest version (an older offline row put online)"


def _ts(time_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=time_us)


def _missing(value: Any) -> bool:
    """A value the point-in-time join left empty (None, or pandas' NaN / NA)."""
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


class FeastFeatureStore(FeatureStore):
    def __init__(
        self,
        folder: Path,
        *,
        row_key: bytes,
        table_key: bytes | None = None,
        online: Literal["sqlite", "redis"] = "sqlite",
        redis_url: str = "",
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        """``row_key``: the key of the rows' MACs (32+ bytes; the hub's is derived with
        ``ROW_KEY_LABEL``); ``table_key``: the key of the SQLite table's row MACs the Feast rows
        are written from (the hub's is derived with ``adapters.sqlite_features.MAC_LABEL``;
        omitted: derived from ``row_key`` with that label); ``on_refused(view, reason)``:
        told of every refused row, Feast's or the table's (a metric)."""
        if len(row_key) < 32:
            raise HubError(
                f"The Feast feature rows' MAC key is {len(row_key)} bytes: give at least 32."
            )
        try:
            import feast  # noqa: F401  (seconds to import: only when this adapter is chosen)
        except ImportError as exc:  # pragma: no cover - the lock installs it
            raise HubError(
                "The Feast feature store needs the feast package: run `make setup`."
            ) from exc
        from feast import FeatureStore as Feast
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
        from feast.repo_config import RepoConfig

        self._folder = folder
        self._key = row_key
        self._on_refused = on_refused
        self.refused = 0  # rows refused by this process
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "offline").mkdir(exist_ok=True)
        if table_key is None:
            table_key = hmac.new(row_key, TABLE_MAC_LABEL, hashlib.sha256).digest()
        self._base = SqliteFeatureStore(
            folder / "features.sqlite", mac_key=table_key, on_refused=on_refused
        )
        online_store: Any
        if online == "redis":
            if not redis_url.startswith("redis://"):
                raise HubError(
                    f"The Feast Redis online store needs a redis://host:port URL, not "
                    f"{redis_url!r}: `bash infra/redis.sh url` prints one."
                )
            from feast.infra.online_stores.redis import RedisOnlineStoreConfig

            host_port = redis_url.removeprefix("redis://").split("/", 1)[0]
            online_store = RedisOnlineStoreConfig(connection_string=host_port)
        else:
            from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

            online_store = SqliteOnlineStoreConfig(path=str(folder / "online.sqlite"))
        config = RepoConfig(
            project=PROJECT,
            registry=str(folder / "registry.db"),
            provider="local",
            online_store=online_store,
            offline_store=DaskOfflineStoreConfig(),
            entity_key_serialization_version=3,
            repo_path=str(folder),
        )
        self.feast = Feast(config=config, repo_path=str(folder))
        self._lock = threading.RLock()
        self._dirty: set[str] = set()
        self._fields: dict[str, tuple[str, ...]] = {}
        self._online: dict[str, dict[str, int]] = {}  # set -> entity -> its online row's time
        self._macs: dict[str, dict[str, str]] = {}  # set -> entity -> its online row's MAC
        self._redis_url = redis_url if online == "redis" else ""

    # -- the fold: the embedded store, one transaction --------------------------------------------
    def apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        self._base.apply(points, versions, positions, expected)
        with self._lock:
            self._dirty.update(v.attributes for v in versions)
            touched: dict[str, set[str]] = {}
            for v in versions:
                if v.attributes not in self._online:
                    continue
                if not set(v.values) <= set(self._fields.get(v.attributes, ())):
                    del self._online[v.attributes]  # a new field: registered again on next read
                    touched.pop(v.attributes, None)
                    continue
                touched.setdefault(v.attributes, set()).add(v.entity)
            for name, entities in touched.items():
                if name in self._online:
                    self._push(name, sorted(entities))

    def forget(self, entities: Sequence[str]) -> int:
        """The port's ``forget`` (an erasure): the SQLite table's rows (``SqliteFeatureStore.
        forget``), then each exported set's offline Parquet file written again without them,
        and their online rows deleted (Redis: the entity's hash; SQLite: its rows of every
        view's table)."""
        with self._lock:
            deleted = self._base.forget(entities)
            exported = {p.stem for p in (self._folder / "offline").glob("*.parquet")}
            for name in sorted(exported | set(self._fields)):
                self._fields[name] = self._export(name)
                self._dirty.discard(name)
            self._delete_online(sorted(exported | set(self._fields)), entities)
            for name in self._online:
                for entity in entities:
                    self._online[name].pop(entity, None)
                    self._macs.get(name, {}).pop(entity, None)
        return deleted

    def _delete_online(self, names: Sequence[str], entities: Sequence[str]) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [
            EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=e)]) for e in entities
        ]
        if self._redis_url:
            import redis
            from feast.infra.online_stores.helpers import _redis_key

            client = redis.Redis.from_url(self._redis_url)
            try:
                for key in keys:
                    client.delete(_redis_key(PROJECT, key, 3))
            finally:
                client.close()
            return
        path = self._folder / "online.sqlite"
        if not path.exists():
            return
        import sqlite3

        blobs = [(serialize_entity_key(k, entity_key_serialization_version=3),) for k in keys]
        db = sqlite3.connect(path, isolation_level=None)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            db.execute("BEGIN IMMEDIATE")
            for name in names:
                table = f"{PROJECT}_{name}"
                if table in tables:
                    db.executemany(f'DELETE FROM "{table}" WHERE entity_key = ?', blobs)
            db.execute("COMMIT")
            shred_freed(db)  # not in the file's free pages either
        finally:
            db.close()

    # -- online serving ---------------------------------------------------------------------------
    def _push(self, name: str, entities: Sequence[str], *, heal: bool = False) -> None:
        """Write the entities' state in force now to Feast's online store (lock held)."""
        import pandas as pd

        fields = self._fields[name]
        rows: list[dict[str, Any]] = []
        blocked: list[str] = []
        end = 2**62
        for entity, versions in self._base.attribute_state(name, entities, end, end).items():
            if not versions:
                continue
            valid_from, values = versions[-1]
            row = {f: values.get(f) for f in fields}
            mac = row_mac(self._key, name, entity, row, valid_from)
            rows.append(
                {ENTITY: entity, "event_timestamp": _ts(valid_from)}
                | row
                | {TIME_FIELD: str(valid_from), UNTIL_FIELD: None, MAC_FIELD: mac}
            )
            if heal or valid_from <= self._online[name].get(entity, -1):
                blocked.append(entity)  # a tie with the stored time: Feast's Redis would skip it
            self._online[name][entity] = valid_from
            self._macs.setdefault(name, {})[entity] = mac
        if rows:
            columns = (*fields, *RESERVED)
            frame = pd.DataFrame(rows).astype({f: "object" for f in columns})
            if blocked:
                self._unblock(name, blocked)
            self.feast.write_to_online_store(name, frame)

    def _unblock(self, name: str, entities: Sequence[str]) -> None:
        """Redis only: remove the view's stored event time of the entities, so that the rows
        written next land. Feast's Redis writer skips a row not newer than the stored time, and
        whoever wrote a refused row may have dated it far in the future to keep the hub's
        rewrite out. (The SQLite online store overwrites unconditionally.)"""
        if not self._redis_url:
            return
        import redis
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        client = redis.Redis.from_url(self._redis_url)
        try:
            for entity in entities:
                key = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=entity)])
                client.hdel(_redis_key(PROJECT, key, 3), f"_ts:{name}")  # type: ignore[arg-type]
        finally:
            client.close()

    def _serving(self, name: str) -> tuple[str, ...]:
        """The set's fields, its online rows in step with the SQLite table (lock held)."""
        if name not in self._online:
            if not self._base.attribute_entities(name):
                return ()  # nothing folded yet: nothing to register
            self._fields[name] = self._export(name)
            self._dirty.discard(name)
            self._online[name] = {}
            self._macs[name] = {}
            if self._fields[name]:
                self._push(name, self._base.attribute_entities(name))
        return self._fields[name]

    def attribute_state(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        """From Feast's online store where its row is the state at ``start_us`` (see above)."""
        with self._lock:
            fields = self._serving(name)
            online = dict(self._online.get(name, {}))
        asked = list(dict.fromkeys(entities))
        served = [e for e in asked if online.get(e, start_us) < start_us]
        rest = [e for e in asked if online.get(e, start_us) >= start_us]
        out = self._base.attribute_state(name, rest, start_us, end_us) if rest else {}
        if served and fields:
            newer: list[str] = []
            refused: dict[str, str] = {}
            # The index as it is now (dict reads are atomic): another thread's write since the
            # snapshot above must not read as a replay.
            times, macs = self._online.get(name, {}), self._macs.get(name, {})
            for entity, row in zip(served, self._online_rows(name, fields, served), strict=True):
                got = check_row(self._key, name, entity, row, fields)
                known = times.get(entity, -1)
                if isinstance(got, str):
                    refused[entity] = got
                elif got[2] is not None:
                    refused[entity] = SUPERSEDED
                elif got[0] < known:
                    refused[entity] = (
                        f"it is an older row (valid from {got[0]} µs) than the one the hub last "
                        f"wrote (from {known} µs): replayed or rolled back"
                    )
                elif got[0] > known or got[0] >= start_us:
                    newer.append(entity)  # a later state (another writer): the table's answer
                elif not hmac.compare_digest(row[MAC_FIELD], macs.get(entity, "")):
                    refused[entity] = (
                        "it is another row of the same time than the one the hub last wrote "
                        "(replayed, or a write of the hub's that Feast dropped)"
                    )
                else:
                    out[entity] = [(got[0], dict(got[1]))]
            if refused:
                self._refuse(name, refused)
            if newer:
                out.update(self._base.attribute_state(name, newer, start_us, end_us))
        return out

    def _online_rows(
        self, name: str, fields: Sequence[str], entities: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Feast's online row of every entity, in order (all fields None when it has none)."""
        got = self.feast.get_online_features(
            features=[f"{name}:{f}" for f in (*fields, *RESERVED)],
            entity_rows=[{ENTITY: e} for e in entities],
        ).to_dict()
        return [{f: got[f][i] for f in (*fields, *RESERVED)} for i in range(len(entities))]

    def _refuse(self, name: str, refused: Mapping[str, str]) -> None:
        """Count and log every refused row, write the entities' rows again from the SQLite table
        (so that a retry reads valid ones), then raise: nothing may be scored on them."""
        for entity, reason in refused.items():
            self.refused += 1
            log.error("Feast feature row %s/%s refused: %s", name, entity_ref(entity), reason)
            if self._on_refused is not None:
                self._on_refused(name, reason.split(" (", 1)[0])
        with self._lock:
            if name in self._online:
                self._push(name, sorted(refused), heal=True)
        first, reason = next(iter(refused.items()))
        raise FeatureRowRefused(
            f"{len(refused)} feature row(s) of {name!r} read from Feast's online store failed "
            f"verification, e.g. {entity_ref(first)}: {reason}. Nothing was scored on them; their "
            "rows were written again from the feature table, so a retry reads verified values "
            "(check who can write to the online store)."
        )

    def positions(self) -> dict[TopicPartition, int]:
        return self._base.positions()

    def series(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, float]]]:
        return self._base.series(name, entities, start_us, end_us)

    def attribute_versions(
        self, name: str, entities: Sequence[str], end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        return self._base.attribute_versions(name, entities, end_us)

    # -- the Feast repository ---------------------------------------------------------------------
    def _export(self, name: str) -> tuple[str, ...]:
        """Write the attribute set's offline table (Parquet) and apply its feature view."""
        import pandas as pd
        from feast import Entity, FeatureView, Field, FileSource, ValueType
        from feast.types import String

        entities = self._base.attribute_entities(name)
        versions = self._base.attribute_versions(name, entities, 2**62)
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        fields: set[str] = set()
        for entity, history in versions.items():
            state: dict[str, str] = {}
            times = sorted({valid_from for valid_from, _ in history})
            after = dict(zip(times, [*times[1:], None], strict=True))  # the chain (docstring)
            for valid_from, values in history:
                state.update({k: v for k, v in values.items() if v is not None})
                fields.update(values)
                until = after[valid_from]
                # Ties: the last version applied at a time wins (a dict keeps the last write).
                rows[(entity, valid_from)] = {
                    ENTITY: entity,
                    "ts": valid_from,
                    **state,
                    TIME_FIELD: str(valid_from),
                    UNTIL_FIELD: None if until is None else str(until),
                    MAC_FIELD: row_mac(
                        self._key, name, entity, state, valid_from, until, chained=True
                    ),
                }
        clash = fields & set(RESERVED)
        if clash:
            raise HubError(
                f"Attribute set {name!r} has a field named {sorted(clash)}: the Feast adapter "
                "keeps that name for its row MAC; rename the attribute."
            )
        names = tuple(sorted(fields))
        columns = (*names, *RESERVED)
        frame = pd.DataFrame(
            [{**{f: None for f in columns}, **r} for r in rows.values()],
            columns=[ENTITY, "ts", *columns],
        )
        frame["event_timestamp"] = pd.to_datetime(frame["ts"], unit="us", utc=True)
        frame = frame.drop(columns=["ts"]).astype({f: "object" for f in columns})
        path = self._folder / "offline" / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        key = Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.STRING)
        view = FeatureView(
            name=name,
            entities=[key],
            ttl=timedelta(0),  # no expiry: a version is in force until the next one
            schema=[Field(name=f, dtype=String) for f in columns],
            source=FileSource(path=str(path), timestamp_field="event_timestamp"),
            online=True,
        )
        self.feast.apply([key, view])
        return names

    def _view(self, name: str) -> tuple[str, ...]:
        with self._lock:
            if name in self._dirty or name not in self._fields:
                self._fields[name] = self._export(name)
                self._dirty.discard(name)
            return self._fields[name]

    def attributes(
        self, name: str, entities: Sequence[str], as_of_us: int
    ) -> dict[str, dict[str, str]]:
        """Feast's point-in-time join, one microsecond before ``as_of_us``."""
        import pandas as pd

        fields = self._view(name)
        if not fields or not entities:
            return {}
        asked = pd.DataFrame(
            {
                ENTITY: list(entities),
                "event_timestamp": [_ts(as_of_us - 1)] * len(entities),
                "hub_row": range(len(entities)),
            }
        )
        got = self.feast.get_historical_features(
            entity_df=asked, features=[f"{name}:{f}" for f in (*fields, *RESERVED)]
        ).to_df()
        out: dict[str, dict[str, str]] = {}
        refused: dict[str, str] = {}
        nothing: list[str] = []
        for rec in got.to_dict("records"):
            entity = str(rec[ENTITY])
            row = {f: None if _missing(rec.get(f)) else rec.get(f) for f in (*fields, *RESERVED)}
            if all(row[f] is None for f in fields) and row[MAC_FIELD] is None:
                nothing.append(entity)  # no version before as_of (or deleted: below)
                continue
            checked = check_row(self._key, name, entity, row, fields, offline=True)
            if isinstance(checked, str):
                refused[entity] = checked
            elif checked[2] is not None and checked[2] < as_of_us:
                refused[entity] = (
                    f"its next version (valid from {checked[2]} µs, before the time asked) is "
                    "missing (deleted from the offline table)"
                )
            elif checked[1]:
                out[entity] = checked[1]
        # the join left out (or found no row for) these: the table must hold no version before
        nothing += [e for e in dict.fromkeys(entities) if e not in set(got[ENTITY].astype(str))]
        if nothing:
            held = self._base.attribute_versions(name, nothing, as_of_us)
            for entity in held:
                refused[entity] = (
                    "its versions before the time asked are missing (deleted from the offline "
                    "table)"
                )
        if refused:
            self._refuse_offline(name, refused)
        return out

    def _refuse_offline(self, name: str, refused: Mapping[str, str]) -> None:
        for entity, reason in refused.items():
            self.refused += 1
            log.error(
                "Feast offline feature row %s/%s refused: %s", name, entity_ref(entity), reason
            )
            if self._on_refused is not None:
                self._on_refused(name, reason.split(" (", 1)[0])
        with self._lock:
            self._dirty.add(name)  # the Parquet file is written again from the table next read
        first, reason = next(iter(refused.items()))
        raise FeatureRowRefused(
            f"{len(refused)} feature row(s) of {name!r} read from Feast's offline table failed "
            f"verification, e.g. {entity_ref(first)}: {reason}. Nothing was read from them; the "
            "table is written again from the feature store on the next read."
        )

    def materialize(self) -> None:
        """Load every attribute set's latest values into Feast's online store."""
        with self._lock:
            for name in list(self._dirty | set(self._fields)):
                self._view(name)
            self.feast.materialize(EPOCH, datetime.now(UTC) + timedelta(days=1))

    def online_attributes(self, name: str, entities: Sequence[str]) -> dict[str, dict[str, str]]:
        """The latest values from Feast's online store (as of the last ``materialize``)."""
        fields = self._fields.get(name)
        if not fields:
            return {}
        out: dict[str, dict[str, str]] = {}
        refused: dict[str, str] = {}
        online = self._online.get(name, {})
        for entity, row in zip(entities, self._online_rows(name, fields, entities), strict=True):
            if all(v is None for v in row.values()) and entity not in online:
                continue  # never written: the entity has no values
            checked = check_row(self._key, name, entity, row, fields)
            if isinstance(checked, str):
                refused[entity] = checked
            elif checked[2] is not None:
                refused[entity] = SUPERSEDED
            elif checked[0] < online.get(entity, checked[0]):
                refused[entity] = "it is an older row than the one the hub last wrote (replayed)"
            elif checked[1]:
                out[entity] = checked[1]
        if refused:
            self._refuse(name, refused)
        return out

    def close(self) -> None:
        self._base.close()
