"""An older genuine Flink feature vector sent again to ``flink.features.<view>`` (s19).

Before: a vector carried no version. ``FeatureVectorLoader`` kept the last record per scored
event, so whoever could produce to ``flink.*`` could re-send an older vector the job had written
for an event (MAC valid: it is genuine) and roll the loaded features back (a late fact's
difference, e.g. one fewer payment in the hour) until the job rewrote that event. Now each vector
carries ``version`` (the number of facts it was folded from) inside its MAC; the loader keeps the
highest per event, in one read (``load``) and against the stored one (``load_into``), and refuses
an older or equal one; the stored version is MACed with its row.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.errors import FeatureRowRefused
from core.ports.eventlog import Record, TopicPartition
from domain.features import PAYMENT_RISK
from hub.bootstrap import Hub
from hub.flink import row_key
from hub.flink_feature_views import FlinkFeatureView
from hub.ml_setup import feature_vectors
from ml.flink_features import MAC_COLUMNS, mac_name, result_topic
from projections.flink.rowmac import COLUMN, DELETE_HEADER, delete_header, row_mac

VIEW = PAYMENT_RISK
AT = {"ev_partition": 0, "ev_offset": 5}


def vector(key: bytes, payments: float, version: int | None) -> Record:
    """A vector of the scored event at 0/5 as the job's sink writes it, MACed under ``key``
    (``version`` None: as a job from before versions wrote it)."""
    features = dict.fromkeys(VIEW.names, 0.0) | {"payments_1h": payments}
    row: dict[str, Any] = {"entity": "A1", "subject": "P1", "time_us": 10**15, "features": features}
    if version is not None:
        row["version"] = version
    value: dict[str, Any] = AT | {"vector": json.dumps(row, sort_keys=True)}
    value[COLUMN] = row_mac(key, mac_name(VIEW), [value[n] for n, _ in MAC_COLUMNS])
    return Record(json.dumps(value).encode(), key=json.dumps(AT).encode())


@pytest.fixture
def loaded(hub: Hub) -> Any:
    store = feature_vectors(hub)
    companion = FlinkFeatureView(VIEW, hub.log, store, row_key(hub.settings))
    companion.prepare()
    covers = {TopicPartition(t, 0): 0 for t in companion.topics}
    hub.log.commit_offsets(companion.group, covers)
    yield companion, store
    store.close()


def payments(store: Any) -> list[float]:
    return [r["features"]["payments_1h"] for r in store.rows(VIEW.name)]


def test_an_older_vector_sent_again_does_not_replace_the_newer(hub: Hub, loaded: Any) -> None:
    companion, store = loaded
    key, topic = row_key(hub.settings), result_topic(VIEW)
    older, newer = vector(key, 1.0, 3), vector(key, 2.0, 4)
    hub.log.append(topic, [older, newer])
    companion.load()
    assert payments(store) == [2.0]
    hub.log.append(topic, [older])  # re-sent later: a load of its own (against the store)
    done = companion.load()
    assert payments(store) == [2.0]
    assert companion._loader.stale == 1 and done["stale_vectors"] == 1  # the run reports it
    # a full read of the topic (a training set's source) keeps the newer one too
    assert [r["features"]["payments_1h"] for r in companion._loader.load(VIEW)] == [2.0]
    # the same vector again (a checkpoint restart) is no refusal; a newer one replaces it
    hub.log.append(topic, [newer, vector(key, 3.0, 5)])
    companion.load()
    assert payments(store) == [3.0]
    assert companion._loader.repeated == 1


def test_an_older_vector_in_the_same_read_after_the_newer_is_refused(hub: Hub, loaded: Any) -> None:
    companion, store = loaded
    key, topic = row_key(hub.settings), result_topic(VIEW)
    hub.log.append(topic, [vector(key, 2.0, 4), vector(key, 1.0, 3)])
    companion.load()
    assert payments(store) == [2.0]


def test_a_vector_of_an_old_job_never_replaces_a_versioned_one(hub: Hub, loaded: Any) -> None:
    """The upgrade rule: an unversioned vector (a job from before versions) is loaded where
    nothing or another unversioned one is held (last wins, as before), never over a versioned
    one, which always replaces it."""
    companion, store = loaded
    key, topic = row_key(hub.settings), result_topic(VIEW)
    hub.log.append(topic, [vector(key, 1.0, None), vector(key, 7.0, None)])
    companion.load()
    assert payments(store) == [7.0]
    hub.log.append(topic, [vector(key, 2.0, 0)])
    companion.load()
    assert payments(store) == [2.0]
    hub.log.append(topic, [vector(key, 7.0, None)])
    companion.load()
    assert payments(store) == [2.0]


def test_a_signed_delete_as_of_an_older_version_leaves_the_newer(hub: Hub, loaded: Any) -> None:
    companion, store = loaded
    key, topic = row_key(hub.settings), result_topic(VIEW)
    newer = vector(key, 2.0, 4)
    hub.log.append(topic, [newer])
    companion.load()
    old = delete_header(key, mac_name(VIEW), [0, 5], 3)  # a genuine delete of version 3
    hub.log.append(topic, [dataclasses.replace(newer, value=None, headers=((DELETE_HEADER, old),))])
    companion.load()
    assert payments(store) == [2.0]
    now = delete_header(key, mac_name(VIEW), [0, 5], 4)
    hub.log.append(topic, [dataclasses.replace(newer, value=None, headers=((DELETE_HEADER, now),))])
    companion.load()
    assert payments(store) == []


def test_a_stored_version_edited_in_the_file_is_refused(hub: Hub, loaded: Any) -> None:
    """Whoever writes ml/vectors.sqlite and raises a vector's version (so the job's newer
    vectors are refused as stale) or lowers it (so an older one re-sent replaces it) breaks
    its MAC."""
    companion, store = loaded
    hub.log.append(result_topic(VIEW), [vector(row_key(hub.settings), 2.0, 4)])
    companion.load()
    path = hub.settings.data_dir / "ml" / "vectors.sqlite"
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE vectors SET version = 1000").rowcount == 1
    with pytest.raises(FeatureRowRefused, match="MAC does not match"):
        store.rows(VIEW.name)
    with pytest.raises(FeatureRowRefused):
        store.versions(VIEW.name, [(0, 5)])


def test_a_vectors_file_from_before_versions_is_reloaded(tmp_path: Path) -> None:
    from adapters.sqlite_vectors import SqliteFeatureVectors

    path = tmp_path / "vectors.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE vectors (view TEXT NOT NULL, partition INTEGER NOT NULL, "
            "offset INTEGER NOT NULL, subject TEXT, entity TEXT NOT NULL, time_us INTEGER NOT "
            "NULL, features TEXT NOT NULL, mac TEXT, PRIMARY KEY (view, partition, offset)) "
            "WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE loaded (view TEXT PRIMARY KEY, next_offset INTEGER NOT NULL, "
            "covers TEXT NOT NULL)"
        )
        db.execute("INSERT INTO vectors VALUES ('payment_risk', 0, 5, 'P1', 'A1', 1, '{}', 'x')")
        db.execute("INSERT INTO loaded VALUES ('payment_risk', 9, '{}')")
    store = SqliteFeatureVectors(path, mac_key=b"k" * 32)
    try:
        assert store.rows("payment_risk") == [] and store.position("payment_risk") == 0
    finally:
        store.close()
