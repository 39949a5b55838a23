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

Series windows (counts and sums over 1 h / 24 h) stay range scans of the SQLite table: Feast has
no raw-series read. Feast is imported when the adapter is built, never at CLI start-up.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from adapters.sqlite_features import SqliteFeatureStore
from core.errors import HubError
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint

PROJECT = "hub"
ENTITY = "entity"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(time_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=time_us)


class FeastFeatureStore(FeatureStore):
    def __init__(
        self,
        folder: Path,
        *,
        online: Literal["sqlite", "redis"] = "sqlite",
        redis_url: str = "",
    ) -> None:
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
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "offline").mkdir(exist_ok=True)
        self._base = SqliteFeatureStore(folder / "features.sqlite")
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

    # -- online serving ---------------------------------------------------------------------------
    def _push(self, name: str, entities: Sequence[str]) -> None:
        """Write the entities' state in force now to Feast's online store (lock held)."""
        import pandas as pd

        fields = self._fields[name]
        rows = []
        end = 2**62
        for entity, versions in self._base.attribute_state(name, entities, end, end).items():
            if not versions:
                continue
            valid_from, values = versions[-1]
            rows.append(
                {ENTITY: entity, "event_timestamp": _ts(valid_from)}
                | {f: values.get(f) for f in fields}
            )
            self._online[name][entity] = valid_from
        if rows:
            frame = pd.DataFrame(rows).astype({f: "object" for f in fields})
            self.feast.write_to_online_store(name, frame)

    def _serving(self, name: str) -> tuple[str, ...]:
        """The set's fields, its online rows in step with the SQLite table (lock held)."""
        if name not in self._online:
            if not self._base.attribute_entities(name):
                return ()  # nothing folded yet: nothing to register
            self._fields[name] = self._export(name)
            self._dirty.discard(name)
            self._online[name] = {}
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
            got = self.feast.get_online_features(
                features=[f"{name}:{f}" for f in fields],
                entity_rows=[{ENTITY: e} for e in served],
            ).to_dict()
            for i, entity in enumerate(got[ENTITY]):
                values: dict[str, str | None] = {
                    f: got[f][i] for f in fields if isinstance(got[f][i], str)
                }
                out[str(entity)] = [(online[str(entity)], values)]
        return out

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
            for valid_from, values in history:
                state.update({k: v for k, v in values.items() if v is not None})
                fields.update(values)
                # Ties: the last version applied at a time wins (a dict keeps the last write).
                rows[(entity, valid_from)] = {ENTITY: entity, "ts": valid_from, **state}
        names = tuple(sorted(fields))
        frame = pd.DataFrame(
            [{**{f: None for f in names}, **r} for r in rows.values()],
            columns=[ENTITY, "ts", *names],
        )
        frame["event_timestamp"] = pd.to_datetime(frame["ts"], unit="us", utc=True)
        frame = frame.drop(columns=["ts"]).astype({f: "object" for f in names})
        path = self._folder / "offline" / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        key = Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.STRING)
        view = FeatureView(
            name=name,
            entities=[key],
            ttl=timedelta(0),  # no expiry: a version is in force until the next one
            schema=[Field(name=f, dtype=String) for f in names],
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
            entity_df=asked, features=[f"{name}:{f}" for f in fields]
        ).to_df()
        out: dict[str, dict[str, str]] = {}
        for rec in got.to_dict("records"):
            values = {f: rec[f] for f in fields if isinstance(rec.get(f), str)}
            if values:
                out[str(rec[ENTITY])] = values
        return out

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
        got = self.feast.get_online_features(
            features=[f"{name}:{f}" for f in fields], entity_rows=[{ENTITY: e} for e in entities]
        ).to_dict()
        out: dict[str, dict[str, str]] = {}
        for i, entity in enumerate(got[ENTITY]):
            values = {f: got[f][i] for f in fields if isinstance(got[f][i], str)}
            if values:
                out[str(entity)] = values
        return out

    def close(self) -> None:
        self._base.close()
