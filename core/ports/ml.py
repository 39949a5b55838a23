"""FeatureStore and ModelRegistry: the ports of machine learning on the log.

(The FeatureStore and ModelRegistry ports, with their embedded adapters in ``adapters/``.)

FeatureStore contract
- ``apply`` MUST store every series point, every attribute version and the positions it is given
  in ONE transaction: after a crash, either all of a batch is there or none of it, so a feed that
  resumes from ``positions()`` folds each record exactly once. With ``expected``, it MUST first
  check, in that transaction, that every named partition's stored position equals the expected
  one (absent = 0) and otherwise raise ``Conflict`` and store nothing: two feeds (threads or
  processes) folding into one store never apply a record twice.
- ``series(name, entities, start_us, end_us)`` MUST return, per entity asked for that has any,
  its points with ``start_us <= time_us < end_us`` in time order (ties in the order applied).
- ``attributes(name, entities, as_of_us)`` MUST return, per entity with a version valid strictly
  before ``as_of_us``, every field's latest non-null value among those versions (an update that
  leaves a field ``None`` keeps the earlier value): nothing from ``as_of_us`` or later.
- ``attribute_state(name, entities, start_us, end_us)`` MUST answer every time in
  ``[start_us, end_us]`` as ``attribute_versions(name, entities, end_us)`` does: the versions
  valid before ``start_us`` MAY be given as one, their field-wise merge at the latest of their
  times (that is what an online store holds), the later ones as they are.
- These reads MUST NOT depend on the order batches were applied in beyond ties: that is what
  makes a training set point-in-time correct and rebuildable.

ModelRegistry contract
- ``put`` stores a version's artifact bytes and metadata and returns its SHA-256; putting the
  same (name, version) again MUST be refused (``Conflict``) unless the bytes are identical.
- ``get`` MUST return exactly the bytes put and raise ``NotFound`` for an unknown version.
- ``set_alias``/``aliases`` mirror the lifecycle folded from ``hub.models`` (the event log is the
  record of truth; an adapter such as MLflow keeps its own alias in step for its own users).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.ports.eventlog import TopicPartition


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One value of an entity's series (``payments`` of account ``ACC-0042``: an amount)."""

    series: str
    entity: str
    time_us: int
    value: float


@dataclass(frozen=True, slots=True)
class AttributeVersion:
    """An entity's attribute values from ``valid_from_us`` on (``None``: unchanged)."""

    attributes: str
    entity: str
    valid_from_us: int
    values: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class History:
    """Points of a series read in one snapshot: ``entity`` (index into the entities asked),
    ``time_us``, ``seq`` (application order) and ``value`` as numpy arrays sorted by (entity,
    time, seq); complete for those entities through ``token``."""

    token: int
    entity: Any
    time_us: Any
    seq: Any
    value: Any


@dataclass(frozen=True, slots=True)
class VersionHistory:
    """Per entity, its versions ``(valid_from_us, seq, values)`` oldest first (ties by seq),
    complete through ``token``."""

    token: int
    versions: dict[str, list[tuple[int, int, dict[str, str | None]]]]


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What ``apply`` stored from a token on: ``points`` as (series, entity, time_us, seq,
    value), ``versions`` as (attributes, entity, valid_from_us, seq, values); ``token`` is the
    store's token at the snapshot read."""

    token: int
    points: list[tuple[str, str, int, int, float]]
    versions: list[tuple[str, str, int, int, dict[str, str | None]]]


class FeatureStore(abc.ABC):
    """Entity series and attribute versions folded from the log, read as of a time."""

    @abc.abstractmethod
    def apply(
        self,
        points: Sequence[SeriesPoint],
        versions: Sequence[AttributeVersion],
        positions: Mapping[TopicPartition, int],
        expected: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        """Store points, versions and the feed's next offsets atomically (compare-and-set on
        ``expected``)."""

    @abc.abstractmethod
    def positions(self) -> dict[TopicPartition, int]:
        """The feed's next offset per partition (absent: never folded)."""

    @abc.abstractmethod
    def series(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, float]]]:
        """Per entity, its ``(time_us, value)`` points in ``[start_us, end_us)``, in time order."""

    def series_columns(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> tuple[Any, Any, Any]:
        """``series`` as three numpy arrays, sorted by (entity, time): the entity's index in
        ``entities``, ``time_us`` and ``value`` (what a batch of events reads at once)."""
        import numpy as np

        index = {e: i for i, e in enumerate(entities)}
        got = self.series(name, entities, start_us, end_us)
        ents: list[int] = []
        times: list[int] = []
        values: list[float] = []
        for entity in sorted(got, key=index.__getitem__):
            points = got[entity]
            ents.extend([index[entity]] * len(points))
            times.extend(t for t, _ in points)
            values.extend(v for _, v in points)
        return (
            np.asarray(ents, dtype=np.int64),
            np.asarray(times, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
        )

    @abc.abstractmethod
    def attribute_versions(
        self, name: str, entities: Sequence[str], end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        """Per entity, its versions valid from before ``end_us``, oldest first (ties in the
        order applied)."""

    def attribute_state(
        self, name: str, entities: Sequence[str], start_us: int, end_us: int
    ) -> dict[str, list[tuple[int, dict[str, str | None]]]]:
        """Per entity, enough versions to answer any time in ``[start_us, end_us]``: those
        valid before ``start_us`` merged into one, then the later ones (see the contract)."""
        out: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
        for entity, versions in self.attribute_versions(name, entities, end_us).items():
            late = [(t, v) for t, v in versions if t >= start_us]
            early = [(t, v) for t, v in versions if t < start_us]
            if early:
                merged: dict[str, str | None] = {}
                for _, values in early:
                    merged.update({k: v for k, v in values.items() if v is not None})
                late.insert(0, (early[-1][0], merged))
            out[entity] = late
        return out

    def attributes(
        self, name: str, entities: Sequence[str], as_of_us: int
    ) -> dict[str, dict[str, str]]:
        """Per entity, the attribute values in force strictly before ``as_of_us``."""
        out: dict[str, dict[str, str]] = {}
        for entity, versions in self.attribute_versions(name, entities, as_of_us).items():
            merged: dict[str, str] = {}
            for _, values in versions:
                merged.update({k: v for k, v in values.items() if v is not None})
            if merged:
                out[entity] = merged
        return out

    # Change feed for an in-memory cache (``ml.series_cache``): optional; a store that cannot
    # say what changed returns None from ``change_token`` and is read directly.

    def change_token(self) -> int | None:
        """A number that grows with every ``apply`` by anyone (each point and version applied
        gets a sequence number below it), or None when the store cannot say."""
        return None

    def changes_since(self, token: int, limit: int) -> ChangeSet | None:
        """Every point and version applied with a sequence number ``>= token``, read in one
        snapshot; None when more than ``limit`` rows changed (the caller starts afresh)."""
        return None

    def series_history(self, name: str, entities: Sequence[str]) -> History:
        """Every point of ``entities`` in series ``name``, whatever its time, read in one
        snapshot with the token it is complete through (``change_token`` at that snapshot)."""
        raise NotImplementedError

    def versions_history(self, name: str, entities: Sequence[str]) -> VersionHistory:
        """Every version of ``entities`` in attribute set ``name``, with the token (as above)."""
        raise NotImplementedError

    def forget(self, entities: Sequence[str]) -> int:
        """Delete every point and version of ``entities`` (entity keys, ``ml.features.
        entity_key``), with their bookkeeping, in one transaction: an erased data subject's
        derived facts (``governance.erasure``); returns the rows deleted. The feed positions
        stay (the feed leaves an erased subject out of what it folds later). A store that
        cannot delete raises ``NotImplementedError``, and the erasure says so."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class FeatureVectors(abc.ABC):
    """A feature view's offline table: one vector per scored event, computed by an engine beside
    the hub (Flink's job writes them to ``flink.features.<view>``) and loaded from that topic.
    A row is ``{"subject", "entity", "time_us", "features", "partition", "offset"}``, keyed by the
    scored event's ``(partition, offset)`` in the view's event topic.

    - ``apply(view, rows, deleted, position, covers)`` MUST, in ONE transaction, upsert ``rows``,
      remove the ``deleted`` keys, and store ``position`` (the result topic's next offset: a
      loader resumes there and reads each result record once) and ``covers`` (the source
      positions every vector is complete through: the engine had read its topics that far).
    - ``rows(view)`` MUST return every stored row of the view; ``at(view, keys)`` the rows
      stored at those keys (keys without one left out); ``position`` and ``covers`` what the
      last ``apply`` stored (0 and ``{}`` before any).
    - A row given to ``apply`` may carry ``version`` (an int; -1 without one): stored with it,
      covered by the row's integrity check, and returned by ``versions(view, keys)`` (keys
      without a row left out), not by ``rows`` or ``at``.
    """

    @abc.abstractmethod
    def apply(
        self,
        view: str,
        rows: Sequence[Mapping[str, Any]],
        deleted: Sequence[tuple[int, int]],
        position: int,
        covers: Mapping[TopicPartition, int],
    ) -> None:
        """Store rows, deletions, the result position and the coverage atomically."""

    @abc.abstractmethod
    def rows(self, view: str) -> list[dict[str, Any]]:
        """Every stored vector row of ``view``."""

    @abc.abstractmethod
    def at(
        self, view: str, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], dict[str, Any]]:
        """The stored rows of ``view`` at ``keys`` (partition, offset), by key."""

    @abc.abstractmethod
    def versions(self, view: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The versions of the rows of ``view`` stored at ``keys``, by key."""

    @abc.abstractmethod
    def position(self, view: str) -> int:
        """The result topic's next offset the last ``apply`` stored (0: none)."""

    @abc.abstractmethod
    def covers(self, view: str) -> dict[TopicPartition, int]:
        """The source positions the stored vectors are complete through."""

    def shred(self) -> None:  # noqa: B027 - optional hook
        """Make rows deleted by ``apply`` unreadable from the store's files too (an erasure
        deleted them): a store whose deletes leave no bytes behind does nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


@dataclass(frozen=True, slots=True)
class StoredModel:
    name: str
    version: int
    sha256: str
    size: int
    metadata: Mapping[str, Any]


class ModelRegistry(abc.ABC):
    """Model artifacts by (name, version), and the aliases (champion, challenger) in force."""

    @abc.abstractmethod
    def put(
        self, name: str, version: int, artifact: bytes, metadata: Mapping[str, Any]
    ) -> StoredModel:
        """Store a version; ``Conflict`` when it exists with other bytes."""

    @abc.abstractmethod
    def get(self, name: str, version: int, sha256: str | None = None) -> bytes:
        """The artifact bytes; ``NotFound`` for an unknown version. With ``sha256`` (the
        ledgered hash), a registry that may hold several candidates for one version (MLflow:
        versions tagged alike by its users) returns the one whose bytes hash to it, if any;
        the caller checks the hash either way."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[StoredModel]:
        """Every stored version of a model, oldest first."""

    @abc.abstractmethod
    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point ``alias`` at a version (``None`` removes it)."""

    @abc.abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """The model's aliases and the versions they name."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
