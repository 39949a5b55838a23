"""The embedded store of Flink's feature vectors (``<data_dir>/ml/vectors.sqlite``): the loader
checks each vector's Flink row MAC, then the file kept it unauthenticated, and the scoring
consumer (``HUB_FEATURE_ENGINE=flink``) scored on whatever the file held. Whoever could write the
file could make any scored event look low-risk. Each stored row now carries a MAC over the view,
its place (partition, offset), subject, entity, time and features; a read refuses a row that is
edited, forged, moved, or stored before the MACs (``FeatureRowRefused``, nothing scored)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_vectors import SqliteFeatureVectors
from core.errors import FeatureRowRefused
from core.ports.eventlog import TopicPartition

KEY = b"v" * 32
VIEW = "payment_risk"
COVERS = {TopicPartition("payments", 0): 3}


def _row(offset: int, entity: str, amount: float) -> dict[str, Any]:
    return {
        "partition": 0,
        "offset": offset,
        "subject": f"P-{offset}",
        "entity": entity,
        "time_us": 1_000 + offset,
        "features": {"amount": amount, "near_threshold_24h": 3.0},
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    store = SqliteFeatureVectors(tmp_path / "vectors.sqlite", mac_key=KEY)
    store.apply(VIEW, [_row(0, "7:default:A", 9800.0), _row(1, "7:default:B", 12.0)], [], 2, COVERS)
    store.close()
    return tmp_path / "vectors.sqlite"


def _edit(path: Path, sql: str, *args: Any) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute(sql, args).rowcount == 1


def _open(path: Path, key: bytes = KEY) -> SqliteFeatureVectors:
    return SqliteFeatureVectors(path, mac_key=key)


def test_untouched_rows_read(path: Path) -> None:
    store = _open(path)
    got = store.at(VIEW, [(0, 0), (0, 1)])
    assert got[(0, 0)]["features"]["amount"] == 9800.0 and len(store.rows(VIEW)) == 2
    store.close()


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        # an edited feature value: the 'near threshold' count of a structuring pattern zeroed
        (
            "UPDATE vectors SET features = ? WHERE offset = 0",
            json.dumps({"amount": 9800.0, "near_threshold_24h": 0.0}, sort_keys=True),
        ),
        ("UPDATE vectors SET entity = ? WHERE offset = 0", "7:default:B"),  # another entity's
        ("UPDATE vectors SET time_us = ? WHERE offset = 0", 5),
        ("UPDATE vectors SET view = ? WHERE offset = 0", "other_view"),  # then moved back below
        ("UPDATE vectors SET mac = NULL WHERE offset = 0", None),
    ],
    ids=["features", "entity", "time", "view", "no-mac"],
)
def test_an_edited_row_is_refused(path: Path, sql: str, args: Any) -> None:
    _edit(path, sql, *([] if args is None else [args]))
    if "SET view" in sql:  # B's row relabelled: read under the other view's name
        store = _open(path)
        with pytest.raises(FeatureRowRefused, match="does not match"):
            store.at("other_view", [(0, 0)])
        store.close()
        return
    store = _open(path)
    with pytest.raises(FeatureRowRefused, match="Nothing was scored") as err:
        store.at(VIEW, [(0, 0)])
    assert "partition 0 offset 0" in err.value.message
    with pytest.raises(FeatureRowRefused):
        store.rows(VIEW)
    assert store.at(VIEW, [(0, 1)])[(0, 1)]["entity"] == "7:default:B"  # the other row reads
    store.close()


def test_a_row_moved_to_another_events_place_is_refused(path: Path) -> None:
    """A's vector (low amount wanted? here B's, 12.00) put at A's place, B's row removed: the
    entity and time are set to A's too, so only the place-bound MAC tells."""
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM vectors WHERE offset = 0")
        db.execute(
            "UPDATE vectors SET offset = 0, subject = 'P-0', entity = '7:default:A', "
            "time_us = 1000 WHERE offset = 1"
        )
    store = _open(path)
    with pytest.raises(FeatureRowRefused, match="does not match"):
        store.at(VIEW, [(0, 0)])
    store.close()


def test_a_row_under_another_key_is_refused(path: Path) -> None:
    store = _open(path, b"x" * 32)
    with pytest.raises(FeatureRowRefused, match="does not match"):
        store.at(VIEW, [(0, 0)])
    store.close()


def test_a_file_from_before_the_macs_is_emptied_for_a_reload(tmp_path: Path) -> None:
    """The old schema (no ``mac`` column): its rows cannot be vouched for, so opening it drops
    them and the load positions (the next load reads the result topics from the start); a
    reload writes MACed rows. A pre-MAC row left behind by hand is refused."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE vectors (view TEXT NOT NULL, partition INTEGER NOT NULL, "
            "offset INTEGER NOT NULL, subject TEXT, entity TEXT NOT NULL, time_us INTEGER NOT "
            "NULL, features TEXT NOT NULL, PRIMARY KEY (view, partition, offset)) WITHOUT ROWID;"
            "CREATE TABLE loaded (view TEXT PRIMARY KEY, next_offset INTEGER NOT NULL, "
            "covers TEXT NOT NULL);"
        )
        db.execute(
            "INSERT INTO vectors VALUES (?, 0, 0, 'P-0', '7:default:A', 1000, ?)",
            (VIEW, json.dumps({"amount": 1.0})),
        )
        db.execute("INSERT INTO loaded VALUES (?, 1, ?)", (VIEW, '{"payments/0": 1}'))
    store = _open(path)
    assert store.rows(VIEW) == [] and store.position(VIEW) == 0 and store.covers(VIEW) == {}
    store.apply(VIEW, [_row(0, "7:default:A", 9800.0)], [], 1, COVERS)
    assert store.at(VIEW, [(0, 0)])[(0, 0)]["features"]["amount"] == 9800.0
    store.close()
    _edit(path, "UPDATE vectors SET mac = NULL WHERE offset = 0")
    store = _open(path)
    with pytest.raises(FeatureRowRefused, match=r"carries no MAC.*load them again"):
        store.at(VIEW, [(0, 0)])
    store.close()


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="at least 32"):
        SqliteFeatureVectors(tmp_path / "v.sqlite", mac_key=b"short")


def test_an_edited_embedded_feature_table_is_refused(tmp_path: Path) -> None:
    """Whoever can write ``<data_dir>/ml/features.sqlite`` could change the attributes (and
    series) scoring reads, with HUB_FEATURE_STORE=sqlite (the default) and feast alike (the Feast
    rows are written, and MACed, from this table); its rows now carry MACs
    (tests/adversarial/test_s18_feature_table_mac.py tries the other edits)."""
    from adapters.sqlite_features import SqliteFeatureStore
    from core.ports.ml import AttributeVersion

    path = tmp_path / "features.sqlite"
    store = SqliteFeatureStore(path, mac_key=KEY)
    store.apply([], [AttributeVersion("accounts", "A", 100, {"risk_rating": "HIGH"})], {})
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE versions SET value = 'LOW' WHERE field = 'risk_rating'")
    store = SqliteFeatureStore(path, mac_key=KEY)
    try:
        with pytest.raises(FeatureRowRefused):
            store.attribute_state("accounts", ["A"], 1_000, 1_000)
    finally:
        store.close()
