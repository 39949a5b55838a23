"""The Flink feature loader's stored positions are MAC'd (session 21; s21-offsets21 "left").

``loaded`` in the vectors file holds, per view, the result topic's next offset (where the loader
resumes) and the covers (the source offsets every stored vector is complete through: what the
scorer waits for). Its vector rows were MAC'd, these were not: whoever could write the file
could move the position past vectors not yet loaded (never loaded, so never scored on) or raise
the covers (the scorer then takes events as covered that have no vector). Now the row carries
a MAC under the stored vectors' key over the view, position and covers; a read refuses a row
without a valid one (``FeatureRowRefused``). A file of before is upgraded by dropping its
positions: derived data, loaded again from the result topic (each vector's row MAC checked).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_vectors import SqliteFeatureVectors
from core.errors import FeatureRowRefused
from core.ports.eventlog import TopicPartition

KEY = b"v" * 32
VIEW = "payment_risk"
COVERS = {TopicPartition("payments", 0): 4, TopicPartition("accounts", 0): 2}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    store = SqliteFeatureVectors(tmp_path / "vectors.sqlite", mac_key=KEY)
    store.apply(VIEW, [], [], 7, COVERS)
    store.close()
    return tmp_path / "vectors.sqlite"


def _edit(path: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute(sql, args).rowcount == 1


def test_untouched_positions_read(path: Path) -> None:
    store = SqliteFeatureVectors(path, mac_key=KEY)
    assert (store.position(VIEW), store.covers(VIEW)) == (7, COVERS)
    assert (store.position("other"), store.covers("other")) == (0, {})  # none stored
    store.close()


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        ("UPDATE loaded SET covers = ?", '{"accounts/0": 2, "payments/0": 40}'),
        ("UPDATE loaded SET next_offset = ?", 70),
        ("UPDATE loaded SET view = ?", "other"),
    ],
    ids=["covers", "position", "view"],
)
def test_edited_positions_are_refused(path: Path, sql: str, args: object) -> None:
    _edit(path, sql, args)
    store = SqliteFeatureVectors(path, mac_key=KEY)
    view = "other" if "view" in sql else VIEW
    for read in (store.covers, store.position):
        with pytest.raises(FeatureRowRefused, match="load positions of view"):
            read(view)
    store.close()


def test_positions_without_a_mac_are_refused(path: Path) -> None:
    _edit(path, "UPDATE loaded SET mac = NULL")
    store = SqliteFeatureVectors(path, mac_key=KEY)
    with pytest.raises(FeatureRowRefused, match="carry no MAC"):
        store.covers(VIEW)
    store.close()


def test_positions_of_another_key_are_refused(path: Path) -> None:
    store = SqliteFeatureVectors(path, mac_key=b"w" * 32)
    with pytest.raises(FeatureRowRefused, match="does not match"):
        store.covers(VIEW)
    store.close()


def test_a_file_of_before_drops_its_positions_to_load_again(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    with sqlite3.connect(path) as db:  # the schema of session 20 (vectors MAC'd, loaded not)
        db.executescript(
            "CREATE TABLE vectors (view TEXT NOT NULL, partition INTEGER NOT NULL, "
            "offset INTEGER NOT NULL, subject TEXT, entity TEXT NOT NULL, time_us INTEGER NOT "
            "NULL, features TEXT NOT NULL, mac TEXT, version INTEGER, PRIMARY KEY (view, "
            "partition, offset)) WITHOUT ROWID;"
            "CREATE TABLE loaded (view TEXT PRIMARY KEY, next_offset INTEGER NOT NULL, "
            "covers TEXT NOT NULL);"
            "INSERT INTO loaded VALUES ('payment_risk', 9, '{\"payments/0\": 99}');"
        )
    store = SqliteFeatureVectors(path, mac_key=KEY)
    assert (store.position(VIEW), store.covers(VIEW)) == (0, {})
    store.apply(VIEW, [], [], 3, COVERS)
    assert (store.position(VIEW), store.covers(VIEW)) == (3, COVERS)
    store.close()
