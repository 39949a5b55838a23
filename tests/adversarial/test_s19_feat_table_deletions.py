"""Rows deleted from the embedded feature table (``ml/features.sqlite``) (s19).

Before: every row carried a MAC, but a row deleted whole went unnoticed: whoever could write the
file deleted an account's later KYC version (so the older, weaker level applied), a payment (so
a window counted one fewer), or an entity's whole history, and scoring read what was left. Now
the store keeps a MACed head per (series or set, entity) counting its rows, and a MACed summary
(sequence counter, total rows, feed positions); a read whose counts disagree refuses, the table
is emptied (positions too, so the feed folds the log again), and an ERROR log
(``feature_table_reset``) and the refusal metric name it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.errors import Conflict, FeatureRowRefused
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, SeriesPoint
from domain.features import PAYMENT_RISK
from ml.features import FeatureEngine, entity_key
from ml.series_cache import CachedFeatureStore

KEY = b"d" * 32
T = 10 * 3600 * 10**6
A = entity_key("acme", "ACC-A")
B = entity_key("acme", "ACC-B")
TP = TopicPartition("payments", 0)


def fill(store: FeatureStore) -> None:
    """A's KYC: BASIC, then ENHANCED; two payments each for A and B (two feed batches)."""
    store.apply(
        [SeriesPoint("payments", A, T - 90_000_000, 9_800.0)],
        [AttributeVersion("accounts", A, 100, {"kyc_level": "BASIC", "risk_rating": "HIGH"})],
        {TP: 2},
    )
    store.apply(
        [
            SeriesPoint("payments", A, T - 60_000_000, 9_700.0),
            SeriesPoint("payments", B, T - 60_000_000, 12.0),
            SeriesPoint("payments", B, T - 50_000_000, 13.0),
        ],
        [AttributeVersion("accounts", A, 200, {"kyc_level": "ENHANCED", "risk_rating": "LOW"})],
        {TP: 6},
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "features.sqlite"
    store = SqliteFeatureStore(path, mac_key=KEY)
    fill(store)
    store.close()
    return path


def edit(path: Path, *sql: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in sql:
            assert db.execute(statement).rowcount >= 1, statement


def opened(path: Path, told: list[tuple[str, str]]) -> SqliteFeatureStore:
    return SqliteFeatureStore(
        path, mac_key=KEY, on_refused=lambda n, r: told.append((n, r)), check_every_s=0
    )


def test_a_later_kyc_version_deleted_is_refused_and_the_table_refolded(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edit(path, f"DELETE FROM versions WHERE entity = '{A}' AND valid_from_us = 200")
    told: list[tuple[str, str]] = []
    store = opened(path, told)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="adapters.sqlite_features"),
            pytest.raises(FeatureRowRefused, match="missing from the embedded feature table"),
        ):
            store.attributes("accounts", [A], 1_000)  # BASIC/HIGH before
        assert told == [("accounts", "rows missing")]
        reset = [r for r in caplog.records if getattr(r, "event", "") == "feature_table_reset"]
        assert len(reset) == 1 and "ACC-A" not in caplog.text
        # emptied with its positions: the feed folds the log again (here: the same facts)
        assert store.positions() == {} and store.attributes("accounts", [A], 1_000) == {}
        fill(store)
        assert store.attributes("accounts", [A], 1_000) == {
            A: {"kyc_level": "ENHANCED", "risk_rating": "LOW"}
        }
    finally:
        store.close()


@pytest.mark.parametrize("read", ["series", "series_columns", "series_history"])
def test_a_deleted_payment_is_refused_on_every_series_read(path: Path, read: str) -> None:
    edit(path, f"DELETE FROM series WHERE entity = '{A}' AND time_us = {T - 60_000_000}")
    store = opened(path, [])
    try:
        with pytest.raises(FeatureRowRefused, match="rows where its head counts 2"):
            if read == "series_history":
                store.series_history("payments", [A, B])
            else:  # the window holds only the remaining payment: counted over all times
                getattr(store, read)("payments", [B, A], T - 100_000_000, T - 80_000_000)
    finally:
        store.close()


def test_the_scorer_through_the_cache_refuses_a_deleted_version(path: Path) -> None:
    edit(path, f"DELETE FROM versions WHERE entity = '{A}' AND valid_from_us = 200")
    cached = CachedFeatureStore(opened(path, []), max_points=1_000)
    event = {
        "payment_id": "P-1",
        "account_id": "ACC-A",
        "amount": "9900.00",
        "counterparty_country": "GB",
        "initiated_at": T,
    }
    try:
        with pytest.raises(FeatureRowRefused, match="Nothing was scored"):
            FeatureEngine(PAYMENT_RISK, cached).vectors([event], ["acme"])
        fill(cached)  # the feed folds again; the cache starts afresh (no fact twice)
        (vector,) = FeatureEngine(PAYMENT_RISK, cached).vectors([event], ["acme"])
        assert vector["payments_24h"] == 2 and vector["kyc_level"] == 3.0  # ENHANCED
    finally:
        cached.close()


def test_an_entity_deleted_whole_with_its_heads_is_seen(path: Path) -> None:
    edit(
        path,
        f"DELETE FROM series WHERE entity = '{B}'",
        f"DELETE FROM heads WHERE entity = '{B}'",
    )
    store = opened(path, [])  # on open: the heads' sum is below the summary's rows
    try:
        assert store.resets == 1 and store.positions() == {}
        assert store.series("payments", [B], 0, 2 * T) == {}
    finally:
        store.close()
    # the same found by a read of the entity, in a process that opened the file before
    fresh = tmp = path.with_name("late.sqlite")
    store = SqliteFeatureStore(tmp, mac_key=KEY, check_every_s=0)
    try:
        fill(store)
        edit(
            fresh,
            f"DELETE FROM series WHERE entity = '{B}'",
            f"DELETE FROM heads WHERE entity = '{B}'",
        )
        with pytest.raises(FeatureRowRefused, match="heads count"):
            store.series("payments", [B], 0, 2 * T)
    finally:
        store.close()


def test_an_older_head_put_back_with_the_later_row_deleted_is_seen(path: Path) -> None:
    """The head of A's series from after the first batch (a genuine older copy of the file),
    with A's second payment deleted: A's count and head agree, the table's totals do not."""
    older = path.with_name("older.sqlite")
    store = SqliteFeatureStore(older, mac_key=KEY)
    store.apply(
        [SeriesPoint("payments", A, T - 90_000_000, 9_800.0)],
        [AttributeVersion("accounts", A, 100, {"kyc_level": "BASIC", "risk_rating": "HIGH"})],
        {TP: 2},
    )
    store.close()
    with sqlite3.connect(older) as db:
        (mac,) = db.execute(f"SELECT mac FROM heads WHERE kind = 's' AND entity = '{A}'").fetchone()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE heads SET n = 1, mac = ? WHERE kind = 's' AND entity = ?", (mac, A))
        db.execute(f"DELETE FROM series WHERE entity = '{A}' AND time_us = {T - 60_000_000}")
    store = opened(path, [])
    try:
        assert store.resets == 1 and store.series("payments", [A], 0, 2 * T) == {}
    finally:
        store.close()


def test_positions_moved_back_alone_are_seen_before_the_feed_folds_twice(path: Path) -> None:
    """Moving the feed's position back (rows kept) would make it fold the same records again:
    every payment counted twice."""
    edit(path, "UPDATE positions SET next_offset = 2")
    store = SqliteFeatureStore(path, mac_key=KEY, check_every_s=3600)
    try:
        assert store.resets == 1 and store.positions() == {}
    finally:
        store.close()
    # in a process that has the file open: its next apply refuses (Conflict: the feed reads
    # the emptied positions and folds from the start)
    store = SqliteFeatureStore(path, mac_key=KEY, check_every_s=3600)
    try:
        fill(store)
        edit(path, "UPDATE positions SET next_offset = 2")
        with pytest.raises(Conflict, match="emptied"):
            store.apply([SeriesPoint("payments", A, T, 1.0)], [], {TP: 3}, {TP: 2})
        assert store.positions() == {}
    finally:
        store.close()


def test_a_recent_row_deleted_under_the_cache_is_seen_by_its_change_feed(path: Path) -> None:
    store = opened(path, [])
    cached = CachedFeatureStore(store, max_points=1_000)
    try:
        before = cached.series("payments", [A, B], 0, 2 * T)  # both entities cached
        assert len(before[B]) == 2
        store.apply([SeriesPoint("payments", B, T - 40_000_000, 14.0)], [], {TP: 7})
        edit(path, f"DELETE FROM series WHERE entity = '{B}' AND time_us = {T - 40_000_000}")
        with pytest.raises(FeatureRowRefused, match="applied since"):
            cached.series("payments", [B], 0, 2 * T)
    finally:
        cached.close()


BOOKKEEPING = {
    "a payment deleted, the row count lowered": [
        f"DELETE FROM series WHERE entity = '{B}' AND time_us = {T - 50_000_000}",
        "UPDATE meta SET v = v - 1 WHERE k = 'rows'",
    ],
    "a payment deleted, its head lowered": [
        f"DELETE FROM series WHERE entity = '{B}' AND time_us = {T - 50_000_000}",
        f"UPDATE heads SET n = n - 1 WHERE kind = 's' AND entity = '{B}'",
    ],
    "a head copied from another entity": [
        f"UPDATE heads SET mac = (SELECT mac FROM heads WHERE kind = 's' AND entity = '{A}') "
        f"WHERE kind = 's' AND entity = '{B}'",
    ],
    "the summary deleted": ["DELETE FROM table_mac"],
    "the sequence counter moved back": ["UPDATE meta SET v = v - 1 WHERE k = 'seq'"],
}


@pytest.mark.parametrize("edit", sorted(BOOKKEEPING))
def test_edited_bookkeeping_is_seen(path: Path, edit: str) -> None:
    """Whoever deletes rows and edits the counts to match (without the key) is seen: on open
    (the summary) or on the entity's read (its head)."""
    edit_sql = BOOKKEEPING[edit]
    with sqlite3.connect(path) as db:
        for statement in edit_sql:
            db.execute(statement)
    store = opened(path, [])
    try:
        if store.resets == 0:
            with pytest.raises(FeatureRowRefused, match="missing from the embedded"):
                store.series("payments", [B], 0, 2 * T)
        assert store.resets == 1 and store.positions() == {}
    finally:
        store.close()


def test_the_hub_scorer_refuses_a_deleted_kyc_version_then_scores_honestly(
    tmp_path: Path,
) -> None:
    """End to end (``HUB_FEATURE_STORE=sqlite``, the default, with its cache): A's KYC level
    went from ENHANCED down to BASIC; the later version deleted from ml/features.sqlite would
    have A scored as ENHANCED. The prediction is refused (nothing recorded), the refusal
    counted; the retry's feed folds the log again and scores on BASIC, as before the edit."""
    from datetime import timedelta

    from hub.bootstrap import bootstrap
    from hub.ml_setup import ml_of
    from hub.settings import load_settings
    from tests.service.test_ml import ALICE, BOB, _open, _payment, _register_small_model, _update
    from tests.service.test_ml import T as NOW

    environ = {"HUB_PROJECTION_AUTOSTART": "false"}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "hub"))
    try:
        ml = ml_of(hub)
        _open(hub, "A", "ENHANCED", "LOW", NOW - timedelta(days=30))
        _update(hub, "A", "BASIC", NOW - timedelta(days=1))
        version = _register_small_model(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", version, "s19")
        ml.changes.approve(BOB, change.change_id)
        event = _payment("Q-1", "A", "9800.00", NOW, "KP")
        honest = ml.predict(ALICE, "payment_risk", event, record=False)
        assert honest.features["kyc_level"] == 1.0  # BASIC
        path = hub.settings.data_dir / "ml" / "features.sqlite"
        with sqlite3.connect(path) as db:
            latest = db.execute(
                "SELECT max(valid_from_us) FROM versions WHERE entity = ?",
                (entity_key("default", "A"),),
            ).fetchone()[0]
            assert db.execute("DELETE FROM versions WHERE valid_from_us = ?", (latest,)).rowcount
        ml.features.clear()  # type: ignore[attr-defined]  # as after a restart or an eviction
        with pytest.raises(FeatureRowRefused, match="missing from the embedded feature table"):
            ml.predict(ALICE, "payment_risk", event, record=False)
        refused = hub.metrics.registry.get_sample_value(
            "hub_feature_rows_refused_total", {"view": "accounts", "reason": "rows missing"}
        )
        assert refused == 1.0
        again = ml.predict(ALICE, "payment_risk", event, record=False)
        assert again.features == honest.features and again.score == honest.score
    finally:
        hub.close()
