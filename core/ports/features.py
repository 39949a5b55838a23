"""FeatureStore: the port the ML service reads features through (online and point-in-time).

Adapters (the ML issue builds them): an embedded store folded from the log, later Feast. A
feature is named by a *feature ref* ``"<view>:<feature>"`` (``"payments_1h:count"``); an
*entity* is one key of the view's entity (``{"account_id": "ACC-0002"}``).

Contract
- ``get_online_features`` returns, per entity given and in the same order, one mapping with
  every ref asked for: the latest value the store holds, or None when it holds none. An unknown
  ref raises ``FeatureNotFound`` naming it (never a silent None).
- ``get_historical_features`` is point-in-time correct: for each row of ``entity_rows`` (an
  entity plus ``event_timestamp``, an aware ``datetime``) it returns the value each feature had
  at that instant, computed only from events whose event time is at or before it; a value from
  later MUST NOT appear. Rows come back in the order given, each with its entity, timestamp and
  one column per ref.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from core.errors import NotFound

FeatureRow = Mapping[str, Any]
"""An entity's key columns (plus ``event_timestamp`` in a training request)."""


class FeatureNotFound(NotFound):
    code = "feature_not_found"


@runtime_checkable
class FeatureStore(Protocol):
    def get_online_features(
        self, entities: Sequence[FeatureRow], feature_refs: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The latest value of each ref for each entity, in the order given."""
        ...

    def get_historical_features(
        self, entity_rows: Sequence[FeatureRow], feature_refs: Sequence[str]
    ) -> list[dict[str, Any]]:
        """A training set: each row's features as of its ``event_timestamp`` (point in time)."""
        ...

    def as_of(self) -> datetime | None:
        """The event time up to which the store has folded the log (None: nothing yet)."""
        ...
