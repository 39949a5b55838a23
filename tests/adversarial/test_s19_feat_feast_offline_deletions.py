"""Versions deleted from Feast's offline Parquet table (s19).

Before: every offline row carried a MAC over its own values and time, but the rows were not
linked: whoever could write ``<data_dir>/ml/feast/offline/<set>.parquet`` deleted an account's
later KYC version, and Feast's point-in-time join (``attributes``: training sets, backfills)
answered the older, weaker one, MAC valid. Now each row also carries, inside its MAC, the
valid-from of the entity's next version (``hub_row_until``): a row answered for a time at or
after its successor's is refused (and the file exported again); an entity the join finds no
row for while the feature table holds a version is refused too; an older row put online
(it names a successor) is refused as superseded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adapters.feast_features import ENTITY, TIME_FIELD, FeastFeatureStore
from core.errors import FeatureRowRefused
from core.ports.ml import AttributeVersion
from ml.features import entity_key

KEY = b"q" * 32
A = entity_key("acme", "ACC-A")
B = entity_key("acme", "ACC-B")
ENHANCED = {A: {"kyc": "ENHANCED", "risk": "LOW"}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeastFeatureStore]:
    s = FeastFeatureStore(tmp_path / "feast", row_key=KEY)
    s.apply(
        [],
        [
            AttributeVersion("acc", A, 100, {"kyc": "BASIC", "risk": "HIGH"}),
            AttributeVersion("acc", A, 200, {"kyc": "ENHANCED", "risk": "LOW"}),
            AttributeVersion("acc", B, 100, {"kyc": "BASIC", "risk": "LOW"}),
        ],
        {},
    )
    assert s.attributes("acc", [A], 1_000) == ENHANCED  # exports the Parquet file
    yield s
    s.close()


def drop(store: FeastFeatureStore, entity: str, time_us: int) -> None:
    """The attacker deletes one version's row from the offline Parquet file."""
    path = store._folder / "offline" / "acc.parquet"
    frame = pd.read_parquet(path)
    keep = ~((frame[ENTITY] == entity) & (frame[TIME_FIELD] == str(time_us)))
    assert (~keep).sum() == 1
    frame[keep].to_parquet(path, index=False)


def test_a_later_version_deleted_from_the_parquet_file_is_refused(
    store: FeastFeatureStore,
) -> None:
    drop(store, A, 200)
    with pytest.raises(FeatureRowRefused, match=r"next version .* is missing"):
        store.attributes("acc", [A], 1_000)  # BASIC/HIGH before
    assert store.attributes("acc", [A], 1_000) == ENHANCED  # exported again from the table
    # before the deleted version's time the older row is the honest answer
    drop(store, A, 200)
    assert store.attributes("acc", [A], 150) == {A: {"kyc": "BASIC", "risk": "HIGH"}}


def test_an_entitys_only_or_earliest_version_deleted_is_refused(
    store: FeastFeatureStore,
) -> None:
    drop(store, A, 100)
    with pytest.raises(FeatureRowRefused, match="versions before the time asked are missing"):
        store.attributes("acc", [A], 150)
    assert store.attributes("acc", [A], 150) == {A: {"kyc": "BASIC", "risk": "HIGH"}}  # healed
    drop(store, B, 100)
    with pytest.raises(FeatureRowRefused, match="missing"):
        store.attributes("acc", [A, B], 1_000)
    assert store.attributes("acc", [B], 50) == {}  # nothing was in force then: no refusal


def test_an_older_offline_row_put_online_is_refused(store: FeastFeatureStore) -> None:
    """``materialize`` copies the latest offline row online; the older one (MAC valid, it names
    its successor) written there instead is superseded."""
    store.materialize()
    assert store.online_attributes("acc", [A]) == ENHANCED
    frame = pd.read_parquet(store._folder / "offline" / "acc.parquet")
    older: dict[str, Any] = frame[(frame[ENTITY] == A) & (frame[TIME_FIELD] == "100")].to_dict(
        "records"
    )[0]
    older["event_timestamp"] = pd.Timestamp(10**12, unit="us", tz="UTC")  # newer for Feast
    store.feast.write_to_online_store("acc", pd.DataFrame([older]).astype({"kyc": "object"}))
    with pytest.raises(FeatureRowRefused, match="not the entity's latest version"):
        store.online_attributes("acc", [A])


def test_an_online_row_put_in_the_parquet_file_is_refused(store: FeastFeatureStore) -> None:
    """An online row (unchained: an entity's latest state as the hub wrote it online, e.g.
    captured from Redis while BASIC was A's latest) put in the offline table over the later
    versions would claim to be the latest: only chained rows are read there."""
    from adapters.feast_features import MAC_FIELD, UNTIL_FIELD, row_mac

    path = store._folder / "offline" / "acc.parquet"
    frame = pd.read_parquet(path)
    frame = frame[~((frame[ENTITY] == A) & (frame[TIME_FIELD] == "200"))]
    older = (frame[ENTITY] == A) & (frame[TIME_FIELD] == "100")
    online = row_mac(KEY, "acc", A, {"kyc": "BASIC", "risk": "HIGH"}, 100)  # as _push MACs it
    frame.loc[older, UNTIL_FIELD] = None
    frame.loc[older, MAC_FIELD] = online
    frame.to_parquet(path, index=False)
    with pytest.raises(FeatureRowRefused, match="does not match"):
        store.attributes("acc", [A], 1_000)
