"""Someone with write access to Feast's online store (Redis in the distributed footprint, the
online SQLite file embedded) changes the features a model scores on: every row the hub writes
carries a MAC over (tenant, view, entity key, values, valid-from) and the scoring read path
refuses a row that is edited, missing, copied from another entity or tenant, or replayed from
an older state (``FeatureRowRefused``, counted), then writes the row again from the feature
table, so that a retry is served verified values.

Both online stores: the embedded SQLite file, and the real Redis of ``infra/redis.sh`` (started
if needed; required under ``CI=true``)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adapters.feast_features import (
    ENTITY,
    MAC_FIELD,
    TIME_FIELD,
    UNTIL_FIELD,
    FeastFeatureStore,
    entity_ref,
    row_mac,
)
from core.errors import FeatureRowRefused
from core.ports.ml import AttributeVersion
from ml.features import entity_key
from tests import infra

KEY = b"s" * 32
# One Redis serves every test (and Feast's Redis keys do not hold the project folder): the
# accounts' ids are unique per test run (``_ids``), the tenants are not.
ACME_A = ACME_B = GLOBEX_A = ""
LATER = 10_000  # every read: after every version below, so the online row serves it
FIELDS = ("kyc", "risk")


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeastFeatureStore]:
    global ACME_A, ACME_B, GLOBEX_A
    run = f"{tmp_path.name}-{time.time_ns()}"
    ACME_A, ACME_B = entity_key("acme", f"A-{run}"), entity_key("acme", f"B-{run}")
    GLOBEX_A = entity_key("globex", f"A-{run}")
    refused: list[tuple[str, str]] = []
    if request.param == "redis":
        infra.require("redis", "the Feast Redis online-row MAC tests")
        url = subprocess.run(
            ["bash", str(infra.script("redis")), "url"], capture_output=True, text=True, check=True
        ).stdout.strip()
        s = FeastFeatureStore(
            tmp_path / "feast",
            row_key=KEY,
            online="redis",
            redis_url=url,
            on_refused=lambda v, r: refused.append((v, r)),
        )
    else:
        s = FeastFeatureStore(
            tmp_path / "feast", row_key=KEY, on_refused=lambda v, r: refused.append((v, r))
        )
    s.apply(
        [],
        [
            AttributeVersion("acc", ACME_A, 100, {"kyc": "BASIC", "risk": "HIGH"}),
            AttributeVersion("acc", ACME_B, 100, {"kyc": "ENHANCED", "risk": "LOW"}),
            AttributeVersion("acc", GLOBEX_A, 100, {"kyc": "ENHANCED", "risk": "LOW"}),
        ],
        {},
    )
    s.refused_reasons = refused  # type: ignore[attr-defined]
    # First read: registers the view and writes every entity's row online.
    assert _state(s, ACME_A) == {"kyc": "BASIC", "risk": "HIGH"}
    yield s
    s.close()


def _state(s: FeastFeatureStore, entity: str) -> dict[str, str | None]:
    got = s.attribute_state("acc", [entity], LATER, LATER)
    return got[entity][-1][1] if got.get(entity) else {}


def _online_row(s: FeastFeatureStore, entity: str) -> dict[str, Any]:
    """What a reader of the online store sees for the entity (every field, MAC included)."""
    got = s.feast.get_online_features(
        features=[f"acc:{f}" for f in (*FIELDS, TIME_FIELD, UNTIL_FIELD, MAC_FIELD)],
        entity_rows=[{ENTITY: entity}],
    ).to_dict()
    return {f: got[f][0] for f in (*FIELDS, TIME_FIELD, UNTIL_FIELD, MAC_FIELD)}


def _write_row(s: FeastFeatureStore, entity: str, row: dict[str, Any], at_us: int) -> None:
    """The attacker's write: any row under ``entity`` (Feast's own writer, newer timestamp so
    that its skip-older check does not drop it; a raw Redis HSET does the same)."""
    row = {UNTIL_FIELD: None} | row  # Feast writes every field of the view (s19: one more)
    frame = pd.DataFrame(
        [{ENTITY: entity, "event_timestamp": pd.Timestamp(at_us, unit="us", tz="UTC"), **row}]
    ).astype({f: "object" for f in row})
    s.feast.write_to_online_store("acc", frame)


def _delete_row(s: FeastFeatureStore, entity: str) -> None:
    """The attacker removes the entity's row from the store itself (Feast has no such call)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=entity)])
    url = s._redis_url
    if url:
        import redis

        client = redis.Redis.from_url(url)
        assert client.delete(_redis_key("hub", key, 3)) == 1
        client.close()
    else:
        with sqlite3.connect(s._folder / "online.sqlite") as db:
            done = db.execute(
                "DELETE FROM hub_acc WHERE entity_key = ?", (serialize_entity_key(key, 3),)
            )
            assert done.rowcount > 0


def _refused(s: FeastFeatureStore, entity: str, why: str) -> None:
    before = s.refused
    with pytest.raises(FeatureRowRefused, match=why) as err:
        _state(s, entity)
    assert entity_ref(entity) in err.value.message and "Nothing was scored" in err.value.message
    assert entity.split(":")[-1] not in err.value.message  # no account id in errors or logs
    assert s.refused == before + 1
    assert s.refused_reasons[-1][0] == "acc"  # type: ignore[attr-defined]


def test_a_tampered_value_is_refused_then_healed(store: FeastFeatureStore) -> None:
    row = _online_row(store, ACME_A)
    _write_row(store, ACME_A, row | {"risk": "LOW"}, 10**12)  # MAC kept, value changed
    _refused(store, ACME_A, "does not match its values")
    # The refused row was written again from the feature table: a retry scores on the truth.
    assert _state(store, ACME_A) == {"kyc": "BASIC", "risk": "HIGH"}


def test_a_nulled_value_is_refused(store: FeastFeatureStore) -> None:
    row = _online_row(store, ACME_A)
    _write_row(store, ACME_A, row | {"risk": None}, 10**12)  # drop HIGH: defaults score lower
    _refused(store, ACME_A, "does not match its values")


def test_a_forged_row_without_mac_is_refused(store: FeastFeatureStore) -> None:
    forged = {"kyc": "ENHANCED", "risk": "LOW", TIME_FIELD: "100", MAC_FIELD: None}
    _write_row(store, ACME_A, forged, 10**12)
    _refused(store, ACME_A, "carries no hub_row_mac")


def test_a_mac_under_another_key_is_refused(store: FeastFeatureStore) -> None:
    values = {"kyc": "ENHANCED", "risk": "LOW"}
    mac = row_mac(b"x" * 32, "acc", ACME_A, values, 100)
    _write_row(store, ACME_A, values | {TIME_FIELD: "100", MAC_FIELD: mac}, 10**12)
    _refused(store, ACME_A, "another hub's key")


def test_a_row_copied_from_another_entity_is_refused(store: FeastFeatureStore) -> None:
    _write_row(store, ACME_A, _online_row(store, ACME_B), 10**12)  # B's ENHANCED/LOW under A
    _refused(store, ACME_A, "copied from another")


def test_a_row_copied_from_another_tenant_is_refused(store: FeastFeatureStore) -> None:
    """globex's account A (ENHANCED/LOW) copied over acme's account A (BASIC/HIGH)."""
    _write_row(store, ACME_A, _online_row(store, GLOBEX_A), 10**12)
    _refused(store, ACME_A, "copied from another")
    assert _state(store, GLOBEX_A) == {"kyc": "ENHANCED", "risk": "LOW"}  # its own, unchanged


def test_a_deleted_row_is_refused(store: FeastFeatureStore) -> None:
    """A row the hub wrote and someone removed is not read as 'no facts' (default features)."""
    _delete_row(store, ACME_A)
    assert all(v is None for v in _online_row(store, ACME_A).values())
    _refused(store, ACME_A, "carries no hub_row_mac")


def test_a_replayed_older_row_is_refused(store: FeastFeatureStore) -> None:
    """The row of the entity's earlier state, captured, written back after an upgrade: its MAC
    is valid, but it is older than the row this process last wrote (the in-process index)."""
    old = _online_row(store, ACME_A)
    store.apply([], [AttributeVersion("acc", ACME_A, 200, {"kyc": "ENHANCED"})], {})
    assert _state(store, ACME_A) == {"kyc": "ENHANCED", "risk": "HIGH"}
    _write_row(store, ACME_A, old, 10**12)
    _refused(store, ACME_A, "older row")
    assert _state(store, ACME_A) == {"kyc": "ENHANCED", "risk": "HIGH"}


def test_a_replayed_row_of_the_same_time_is_refused(store: FeastFeatureStore) -> None:
    """Two versions at one time (the later applied wins): the first one's row, valid MAC and
    same time, written back. The hub's own rewrite at the same time is not dropped by Feast's
    Redis writer (it skips rows not newer than the stored one)."""
    old = _online_row(store, ACME_A)
    store.apply([], [AttributeVersion("acc", ACME_A, 100, {"risk": "LOW"})], {})
    assert _state(store, ACME_A) == {"kyc": "BASIC", "risk": "LOW"}
    _write_row(store, ACME_A, old, 10**12)
    _refused(store, ACME_A, "another row of the same time")
    assert _state(store, ACME_A) == {"kyc": "BASIC", "risk": "LOW"}


def test_values_swapped_between_fields_are_refused(store: FeastFeatureStore) -> None:
    row = _online_row(store, ACME_A)
    _write_row(store, ACME_A, row | {"kyc": row["risk"], "risk": row["kyc"]}, 10**12)
    _refused(store, ACME_A, "does not match its values")


def test_a_row_time_moved_forward_is_refused(store: FeastFeatureStore) -> None:
    """A later ``hub_row_time`` would make the row look written by another process (read from
    the table instead) or outlive a rewrite: the MAC covers the time."""
    row = _online_row(store, ACME_A)
    _write_row(store, ACME_A, row | {TIME_FIELD: "5000"}, 10**12)
    _refused(store, ACME_A, "does not match its values")


def test_a_row_copied_from_another_view_is_refused(store: FeastFeatureStore) -> None:
    """Another attribute set with the same fields: its row for the same entity key, copied."""
    store.apply([], [AttributeVersion("acc2", ACME_A, 100, {"kyc": "ENHANCED", "risk": "LOW"})], {})
    assert store.attribute_state("acc2", [ACME_A], LATER, LATER)[ACME_A][-1][1]["kyc"] == "ENHANCED"
    got = store.feast.get_online_features(
        features=[f"acc2:{f}" for f in (*FIELDS, TIME_FIELD, MAC_FIELD)],
        entity_rows=[{ENTITY: ACME_A}],
    ).to_dict()
    _write_row(store, ACME_A, {f: got[f][0] for f in (*FIELDS, TIME_FIELD, MAC_FIELD)}, 10**12)
    _refused(store, ACME_A, "does not match its values")


def test_a_row_planted_for_an_entity_without_facts_is_not_read(store: FeastFeatureStore) -> None:
    """An account the hub never wrote online (no facts folded): scoring reads the table for it
    (no attributes), never a row someone planted online."""
    ghost = entity_key("acme", f"GHOST-{ACME_A}")
    _write_row(store, ghost, _online_row(store, ACME_B), 10**12)
    assert not store.attribute_state("acc", [ghost], LATER, LATER).get(ghost)
    with pytest.raises(FeatureRowRefused, match="copied from another"):
        store.online_attributes("acc", [ghost])  # the MAC binds B's row to B


def test_untouched_rows_are_served_and_count_nothing(store: FeastFeatureStore) -> None:
    assert _state(store, ACME_B) == {"kyc": "ENHANCED", "risk": "LOW"}
    assert store.online_attributes("acc", [ACME_A, GLOBEX_A]) == {
        ACME_A: {"kyc": "BASIC", "risk": "HIGH"},
        GLOBEX_A: {"kyc": "ENHANCED", "risk": "LOW"},
    }
    assert store.refused == 0


def test_materialized_rows_verify_and_a_tampered_one_is_refused(
    store: FeastFeatureStore,
) -> None:
    """``materialize`` copies the offline table's rows (MACed when exported) online."""
    store.materialize()
    assert store.online_attributes("acc", [ACME_A]) == {ACME_A: {"kyc": "BASIC", "risk": "HIGH"}}
    _write_row(store, ACME_A, _online_row(store, ACME_B), 10**12)
    with pytest.raises(FeatureRowRefused, match="copied from another"):
        store.online_attributes("acc", [ACME_A])


def test_a_tampered_offline_row_is_refused(store: FeastFeatureStore, tmp_path: Path) -> None:
    """The point-in-time join reads the Parquet file under the data folder: an edited value
    there (MAC kept) is refused too."""
    assert store.attributes("acc", [ACME_A], LATER) == {ACME_A: {"kyc": "BASIC", "risk": "HIGH"}}
    path = tmp_path / "feast" / "offline" / "acc.parquet"
    frame = pd.read_parquet(path)
    frame.loc[frame[ENTITY] == ACME_A, "risk"] = "LOW"
    frame.to_parquet(path, index=False)
    with pytest.raises(FeatureRowRefused, match="offline table"):
        store.attributes("acc", [ACME_A], LATER)
    # The file is exported again from the feature table on the next read.
    assert store.attributes("acc", [ACME_A], LATER) == {ACME_A: {"kyc": "BASIC", "risk": "HIGH"}}


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="at least 32"):
        FeastFeatureStore(tmp_path / "feast", row_key=b"short")


def test_the_hub_scorer_refuses_a_tampered_online_row(tmp_path: Path) -> None:
    """End to end, ``HUB_FEATURE_STORE=feast``: an account's online row edited to look like a
    low-risk, enhanced-KYC account. The prediction is refused with the reason (nothing scored on
    it), the refusal counted in ``hub_feature_rows_refused_total``; a retry scores on the
    account's real attributes."""
    from datetime import timedelta

    from hub.bootstrap import bootstrap
    from hub.ml_setup import ml_of
    from hub.settings import load_settings
    from tests.service.test_ml import ALICE, BOB, T, _open, _pay, _payment, _register_small_model

    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_STORE": "feast"}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "hub"))
    try:
        ml = ml_of(hub)
        _open(hub, "A", "BASIC", "HIGH", T - timedelta(days=30))
        _pay(hub, "P-1", "A", "9500.00", T - timedelta(minutes=30))
        version = _register_small_model(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", version, "s18")
        ml.changes.approve(BOB, change.change_id)
        event = _payment("Q-1", "A", "9800.00", T, "KP")
        honest = ml.predict(ALICE, "payment_risk", event, record=False)
        assert honest.features["kyc_level"] == 1.0 and honest.features["risk_rating"] == 2.0
        store = ml.features
        assert isinstance(store, FeastFeatureStore)
        account = entity_key("default", "A")
        names = (*store._fields["accounts"], TIME_FIELD, UNTIL_FIELD, MAC_FIELD)
        got = store.feast.get_online_features(
            features=[f"accounts:{f}" for f in names], entity_rows=[{ENTITY: account}]
        ).to_dict()
        row = {f: got[f][0] for f in names}
        assert row["kyc_level"] == "BASIC" and row["risk_rating"] == "HIGH"
        row |= {"kyc_level": "ENHANCED", "risk_rating": "LOW"}  # the MAC kept
        frame = pd.DataFrame(
            [{ENTITY: account, "event_timestamp": pd.Timestamp.now(tz="UTC"), **row}]
        ).astype(dict.fromkeys(names, "object"))
        store.feast.write_to_online_store("accounts", frame)
        with pytest.raises(FeatureRowRefused, match="does not match its values"):
            ml.predict(ALICE, "payment_risk", event, record=False)
        refused = hub.metrics.registry.get_sample_value(
            "hub_feature_rows_refused_total",
            {"view": "accounts", "reason": "its hub_row_mac does not match its values"},
        )
        assert refused == 1.0
        again = ml.predict(ALICE, "payment_risk", event, record=False)
        assert again.features == honest.features and again.score == honest.score
    finally:
        hub.close()
