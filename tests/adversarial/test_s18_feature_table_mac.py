"""The embedded feature table (``<data_dir>/ml/features.sqlite``, HUB_FEATURE_STORE=sqlite, and
the table Feast's rows are written from): every series point and attribute version carries a MAC
over its identifying columns and value(s), the tenant-qualified entity included. Each edit an
attacker with write access to the file could make is refused on every read path, counted and
logged, so nothing is scored on it; a file from before the MACs is emptied for a re-fold."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.errors import FeatureRowRefused, HubError
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, SeriesPoint
from domain.features import PAYMENT_RISK
from ml.features import FeatureEngine, entity_key
from ml.series_cache import CachedFeatureStore

KEY = b"f" * 32
T = 10 * 3600 * 10**6
A = entity_key("acme", "ACC-A")
B = entity_key("acme", "ACC-B")
GLOBEX_A = entity_key("globex", "ACC-A")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "features.sqlite"
    store = SqliteFeatureStore(path, mac_key=KEY)
    store.apply(
        [
            SeriesPoint("payments", A, T - 60_000_000, 9_800.0),
            SeriesPoint("payments", B, T - 60_000_000, 12.0),
            SeriesPoint("payments", GLOBEX_A, T - 50_000_000, 5.0),
        ],
        [
            AttributeVersion("accounts", A, 100, {"kyc_level": "BASIC", "risk_rating": "HIGH"}),
            AttributeVersion("accounts", B, 100, {"kyc_level": "FULL", "risk_rating": "LOW"}),
            AttributeVersion("accounts", GLOBEX_A, 100, {"kyc_level": "FULL", "risk_rating": None}),
        ],
        {TopicPartition("payments", 0): 3},
    )
    store.close()
    return path


def _edit(path: Path, *sql: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in sql:
            assert db.execute(statement).rowcount >= 1, statement


def _series_reads(store: Any) -> list[Callable[[], object]]:
    return [
        lambda: store.series("payments", [A, B], 0, 2 * T),
        lambda: store.series_columns("payments", [A, B], 0, 2 * T),
        lambda: store.series_history("payments", [A, B]),
        lambda: store.changes_since(0, 100),
    ]


def _version_reads(store: Any) -> list[Callable[[], object]]:
    return [
        lambda: store.attribute_state("accounts", [A, B], 1_000, 1_000),
        lambda: store.attributes("accounts", [A, B], 1_000),
        lambda: store.versions_history("accounts", [A, B]),
        lambda: store.changes_since(0, 100),
    ]


POINT_EDITS = {
    "value lowered": "UPDATE series SET value = 1.0 WHERE entity = '{A}'",
    "moved in time": "UPDATE series SET time_us = time_us - 3600000000 WHERE entity = '{A}'",
    "moved to another entity": "DELETE FROM series WHERE entity = '{B}'",  # then A's becomes B's
    "copied from another tenant": "DELETE FROM series WHERE entity = '{A}'",
    "MAC removed": "UPDATE series SET mac = NULL WHERE entity = '{A}'",
    "renumbered": "UPDATE series SET seq = seq + 7 WHERE entity = '{A}'",
}
FOLLOW_UP = {
    "moved to another entity": "UPDATE series SET entity = '{B}' WHERE entity = '{A}'",
    "copied from another tenant": "UPDATE series SET entity = '{A}' WHERE entity = '{GLOBEX_A}'",
}


@pytest.mark.parametrize("edit", sorted(POINT_EDITS))
def test_an_edited_series_point_is_refused_on_every_read(path: Path, edit: str) -> None:
    names = {"A": A, "B": B, "GLOBEX_A": GLOBEX_A}
    _edit(path, *(s.format(**names) for s in (POINT_EDITS[edit], FOLLOW_UP.get(edit)) if s))
    store = SqliteFeatureStore(path, mac_key=KEY)
    try:
        for read in _series_reads(store):
            with pytest.raises(FeatureRowRefused, match=r"series row of 'payments'.*refused"):
                read()
        assert store.refused == 4
    finally:
        store.close()


VERSION_EDITS = {
    "value edited": [
        "UPDATE versions SET value = 'LOW' WHERE entity = '{A}' AND field = 'risk_rating'"
    ],
    "value nulled": [
        "UPDATE versions SET value = NULL WHERE entity = '{A}' AND field = 'risk_rating'"
    ],
    "values swapped between fields": [
        "UPDATE versions SET value = CASE field WHEN 'kyc_level' THEN 'LOW' ELSE 'FULL' END "
        "WHERE entity = '{B}'"
    ],
    "a field dropped": ["DELETE FROM versions WHERE entity = '{A}' AND field = 'risk_rating'"],
    "a field added": [
        "INSERT INTO versions SELECT attributes, entity, valid_from_us, seq, 'pep', 'NO', mac "
        "FROM versions WHERE entity = '{A}' AND field = 'kyc_level'"
    ],
    "copied from another tenant": [
        "DELETE FROM versions WHERE entity = '{A}'",
        "UPDATE versions SET entity = '{A}' WHERE entity = '{GLOBEX_A}'",
    ],
    "MAC removed": ["UPDATE versions SET mac = NULL WHERE entity = '{B}'"],
    "another version's MAC": [
        "UPDATE versions SET mac = (SELECT mac FROM versions WHERE entity = '{B}' LIMIT 1) "
        "WHERE entity = '{A}'"
    ],
    "moved in time": ["UPDATE versions SET valid_from_us = 5 WHERE entity = '{A}'"],
}


@pytest.mark.parametrize("edit", sorted(VERSION_EDITS))
def test_an_edited_attribute_version_is_refused_on_every_read(path: Path, edit: str) -> None:
    names = {"A": A, "B": B, "GLOBEX_A": GLOBEX_A}
    _edit(path, *(s.format(**names) for s in VERSION_EDITS[edit]))
    store = SqliteFeatureStore(path, mac_key=KEY)
    try:
        for read in _version_reads(store):
            with pytest.raises(FeatureRowRefused, match=r"attribute row of 'accounts'.*refused"):
                read()
    finally:
        store.close()


def test_the_honest_file_reads_back_and_another_key_is_refused(path: Path) -> None:
    store = SqliteFeatureStore(path, mac_key=KEY)
    try:
        assert store.series("payments", [A], 0, 2 * T) == {A: [(T - 60_000_000, 9_800.0)]}
        assert store.attributes("accounts", [A, GLOBEX_A], 1_000) == {
            A: {"kyc_level": "BASIC", "risk_rating": "HIGH"},
            GLOBEX_A: {"kyc_level": "FULL"},
        }
        assert store.refused == 0
    finally:
        store.close()
    other = SqliteFeatureStore(path, mac_key=b"o" * 32)  # another hub's key
    try:
        # its summary's MAC fails on open (s19): nothing of the file is used, the table is
        # emptied for the feed to fold the log again under this key
        assert other.resets == 1 and other.positions() == {}
        assert other.attributes("accounts", [A], 1_000) == {}
    finally:
        other.close()


def test_a_refusal_is_counted_logged_by_digest_and_nothing_is_scored(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _edit(path, f"UPDATE versions SET value = 'LOW' WHERE entity = '{A}'")
    told: list[tuple[str, str]] = []
    store = SqliteFeatureStore(path, mac_key=KEY, on_refused=lambda v, r: told.append((v, r)))
    cached = CachedFeatureStore(store, max_points=1_000)
    event = {
        "payment_id": "P-1",
        "account_id": "ACC-A",
        "amount": "9900.00",
        "counterparty_country": "GB",
        "initiated_at": T,
    }
    try:
        with (
            caplog.at_level(logging.ERROR, logger="adapters.sqlite_features"),
            pytest.raises(FeatureRowRefused, match="Nothing was scored"),
        ):
            FeatureEngine(PAYMENT_RISK, cached).vectors([event], ["acme"])
        assert told == [("accounts", "wrong MAC")]
        assert "entity #" in caplog.text and "ACC-A" not in caplog.text
    finally:
        cached.close()


def test_a_file_from_before_the_macs_is_emptied_for_a_refold(tmp_path: Path) -> None:
    path = tmp_path / "features.sqlite"
    with sqlite3.connect(path) as old:  # the schema as released before the MACs, with rows
        old.executescript(
            "CREATE TABLE series (series TEXT NOT NULL, entity TEXT NOT NULL, time_us INTEGER "
            "NOT NULL, seq INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (series, entity, "
            "time_us, seq)) WITHOUT ROWID;"
            "CREATE TABLE versions (attributes TEXT NOT NULL, entity TEXT NOT NULL, valid_from_us "
            "INTEGER NOT NULL, seq INTEGER NOT NULL, field TEXT NOT NULL, value TEXT, PRIMARY KEY "
            "(attributes, entity, valid_from_us, seq, field)) WITHOUT ROWID;"
            "CREATE TABLE positions (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset "
            "INTEGER NOT NULL, PRIMARY KEY (topic, partition));"
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
            f"INSERT INTO series VALUES ('payments', '{A}', 1, 0, 9800.0);"
            f"INSERT INTO versions VALUES ('accounts', '{A}', 1, 1, 'risk_rating', 'LOW');"
            "INSERT INTO positions VALUES ('payments', 0, 2);"
            "INSERT INTO meta VALUES ('seq', 2), ('entity_keys', 2);"
        )
    store = SqliteFeatureStore(path, mac_key=KEY)
    try:
        assert store.positions() == {}  # the feed folds the authenticated log again
        assert store.series("payments", [A], 0, 10) == {}
        assert store.attributes("accounts", [A], 10) == {}
        assert store.change_token() == 3  # change tokens only grow (past the old ones)
        store.apply([SeriesPoint("payments", A, 5, 1.0)], [], {TopicPartition("payments", 0): 1})
        assert store.series("payments", [A], 0, 10) == {A: [(5, 1.0)]}
    finally:
        store.close()


def test_a_file_store_without_a_key_or_with_a_short_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="needs a MAC key"):
        SqliteFeatureStore(tmp_path / "f.sqlite")
    with pytest.raises(HubError, match="at least 32"):
        SqliteFeatureStore(tmp_path / "f.sqlite", mac_key=b"short")
    SqliteFeatureStore(":memory:").close()  # private to this process: a random key
