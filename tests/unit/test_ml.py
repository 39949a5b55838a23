"""Machine learning, pure parts: the point-in-time feature engine on a crafted history, the A/B
split, drift statistics and the significance test."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.errors import InvalidInput
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, SeriesPoint
from domain.features import HOUR_US, PAYMENT_RISK
from ml.ab import CHALLENGER, bucket, two_proportion_p, variant
from ml.drift import DriftThresholds, compare, psi
from ml.features import FeatureEngine, digest, entity_key, to_us

TABLE_KEY = b"t" * 32  # the feature table rows' MAC key (the hub derives its own)

T = to_us("2026-11-24T12:00:00Z")
MIN_US = 60_000_000


def _event(at: int, amount: str = "50.00", country: str = "GB", acc: str = "A") -> dict[str, str]:
    return {
        "payment_id": f"P-{at}",
        "account_id": acc,
        "amount": amount,
        "counterparty_country": country,
        "initiated_at": f"{at}",
    }


@pytest.fixture
def store() -> SqliteFeatureStore:
    s = SqliteFeatureStore(":memory:")
    return s


def _pay(at: int, amount: float, acc: str = "A") -> SeriesPoint:
    return SeriesPoint("payments", entity_key("default", acc), at, amount)


def _kyc(at: int, kyc: str | None, risk: str | None, acc: str = "A") -> AttributeVersion:
    fields = {"kyc_level": kyc, "risk_rating": risk}
    return AttributeVersion("accounts", entity_key("default", acc), at, fields)


def test_features_read_only_facts_strictly_before_the_event(store: SqliteFeatureStore) -> None:
    # Applied out of time order on purpose: a payment after T arrives first.
    store.apply(
        [_pay(T + 10 * MIN_US, 9_600.0), _pay(T, 7_000.0)],
        [_kyc(T + 30 * MIN_US, "ENHANCED", "HIGH")],
        {},
    )
    store.apply(
        [
            _pay(T - 2 * HOUR_US, 100.0),
            _pay(T - 30 * MIN_US, 9_500.0),
            _pay(T - 25 * HOUR_US, 5_000.0),  # outside every window
            _pay(T - 10 * MIN_US, 1.0, acc="B"),  # another account
        ],
        [_kyc(T - 10 * 24 * HOUR_US, "BASIC", "LOW"), _kyc(T - HOUR_US, None, "MEDIUM")],
        {},
    )
    engine = FeatureEngine(PAYMENT_RISK, store)
    (v,) = engine.vectors([{**_event(T, "7000.00", "KP"), "initiated_at": T}])
    assert v == {
        "amount": 7000.0,
        "payments_1h": 1.0,  # T-30min only: not the payment at T itself, nor T+10min
        "amount_1h": 9500.0,
        "payments_24h": 2.0,
        "amount_24h": 9600.0,
        "near_threshold_24h": 1.0,  # 9,500 (9,600 lies after T)
        "kyc_level": 1.0,  # BASIC: the ENHANCED update comes after T
        "risk_rating": 1.0,  # MEDIUM from T-1h; an update's None keeps the earlier value
        "counterparty_country_risk": 3.0,
    }
    # At T+31min the hour holds T and T+10min (T-30min has left it); the update is in force.
    (later,) = engine.vectors([{**_event(T + 31 * MIN_US), "initiated_at": T + 31 * MIN_US}])
    assert later["payments_1h"] == 2.0 and later["amount_1h"] == 16_600.0
    assert later["near_threshold_24h"] == 2.0
    assert later["kyc_level"] == 3.0 and later["risk_rating"] == 2.0


def test_a_batch_gives_the_same_vectors_as_one_by_one(store: SqliteFeatureStore) -> None:
    rng = random.Random(3)
    points = [
        _pay(T + rng.randint(-30, 30) * 10 * MIN_US, float(rng.randint(1, 12_000)), f"A{i % 5}")
        for i in range(300)
    ]
    store.apply(points, [_kyc(T - 100 * HOUR_US, "STANDARD", "LOW", f"A{i}") for i in range(5)], {})
    engine = FeatureEngine(PAYMENT_RISK, store)
    events = [
        {**_event(0, acc=f"A{i % 5}"), "initiated_at": T + rng.randint(-300, 300) * MIN_US}
        for i in range(40)
    ]
    batch = engine.vectors(events)
    assert batch == [engine.vectors([e])[0] for e in events]
    assert len({digest(v) for v in batch}) > 30


def test_bad_events_are_refused_with_the_field_named(store: SqliteFeatureStore) -> None:
    engine = FeatureEngine(PAYMENT_RISK, store)
    with pytest.raises(InvalidInput, match="account_id"):
        engine.vectors([{"initiated_at": "2026-11-24T12:00:00Z"}])
    with pytest.raises(InvalidInput, match="RFC 3339"):
        engine.vectors([{"account_id": "A", "initiated_at": "yesterday"}])
    with pytest.raises(InvalidInput, match="time zone"):
        engine.vectors([{"account_id": "A", "initiated_at": "2026-11-24T12:00:00"}])


def test_the_store_keeps_positions_with_the_data(store: SqliteFeatureStore) -> None:
    tp = TopicPartition("payments", 1)
    store.apply([_pay(T, 1.0)], [], {tp: 7})
    with pytest.raises(sqlite3.IntegrityError):  # NaN is stored as NULL: the batch fails whole
        store.apply([_pay(T + 1, 2.0), _pay(T + 2, float("nan"))], [], {tp: 9})
    assert store.positions() == {tp: 7}
    a = entity_key("default", "A")
    assert store.series("payments", [a], 0, T + 10) == {a: [(T, 1.0)]}


def test_the_ab_split_is_stable_and_matches_its_share() -> None:
    keys = [f"ACC-{i:06d}" for i in range(20_000)]
    share = 0.2
    first = [variant(k, share) for k in keys]
    assert first == [variant(k, share) for k in keys]
    got = sum(v == CHALLENGER for v in first) / len(keys)
    assert abs(got - share) < 0.015, got
    # The bucket is SHA-256's first 8 bytes: the same on every machine and process.
    h = int.from_bytes(hashlib.sha256(b"ACC-000042").digest()[:8], "big")
    assert bucket("ACC-000042") == h / 2.0**64
    # Raising the share only moves keys from champion to challenger, never back.
    wider = [variant(k, 0.3) for k in keys]
    assert all(w == CHALLENGER for f, w in zip(first, wider, strict=True) if f == CHALLENGER)
    assert all(variant(k, 0.0) == "champion" for k in keys[:100])


def test_psi_and_ks_tell_a_shift_from_noise() -> None:
    rng = random.Random(5)
    ref = [rng.gauss(100, 15) for _ in range(2000)]
    same = [rng.gauss(100, 15) for _ in range(500)]
    shifted = [rng.gauss(130, 15) for _ in range(500)]
    assert psi(ref, same) < 0.1
    assert psi(ref, shifted) > 0.25
    drifted, report = compare({"x": ref, "y": ref}, {"x": same, "y": shifted})
    assert drifted == ["y"]
    assert report["y"]["ks_pvalue"] < 1e-6 and report["x"]["ks_pvalue"] > 0.001
    # A discrete feature (counts) that stays the same does not drift; one that moves does.
    counts = [rng.choice([0, 0, 0, 1, 2]) for _ in range(1000)]
    assert compare({"c": counts}, {"c": counts[:300]}, DriftThresholds())[0] == []
    assert compare({"c": counts}, {"c": [5] * 300})[0] == ["c"]


def test_two_proportion_p_value() -> None:
    assert two_proportion_p(50, 1000, 50, 1000) == pytest.approx(1.0)
    assert two_proportion_p(50, 1000, 100, 1000) < 0.001
    assert two_proportion_p(0, 0, 1, 10) is None


# -- price anomaly: the quote of the trade's time ----------------------------------------------
def _quote(at: int, bid: float, ask: float, ins: str = "X") -> list[SeriesPoint]:
    key = entity_key("default", ins)
    return [SeriesPoint("quote_bids", key, at, bid), SeriesPoint("quote_asks", key, at, ask)]


def _trade(at: int, price: str, ins: str = "X") -> dict[str, object]:
    return {"trade_id": f"T-{at}", "instrument": ins, "price": price, "executed_at": at}


def test_price_features_use_the_quote_strictly_before_the_trade(store: SqliteFeatureStore) -> None:
    from domain.features import PRICE_ANOMALY

    store.apply(
        [
            *_quote(T, 200.0, 300.0),  # at the trade's own time: not yet known to it
            *_quote(T - 10 * MIN_US, 99.0, 101.0),
            *_quote(T - 30 * MIN_US, 97.0, 99.0),
            *_quote(T - 3 * HOUR_US, 50.0, 52.0),  # outside the 1 h volatility window
            SeriesPoint("trade_prices", entity_key("default", "X"), T - 5 * MIN_US, 100.0),
        ],
        [],
        {},
    )
    engine = FeatureEngine(PRICE_ANOMALY, store)
    assert engine.names == (
        "spread_bps",
        "mid_distance_spreads",
        "abs_mid_distance_spreads",
        "volatility_1h_bps",
        "quote_age_s",
        "trades_1h",
    )
    (v,) = engine.vectors([_trade(T, "96")])
    assert v["spread_bps"] == pytest.approx(200.0)  # spread 2 on a mid of 100
    assert v["mid_distance_spreads"] == pytest.approx(-2.0)  # 96 is 4 below 100: two spreads
    assert v["abs_mid_distance_spreads"] == pytest.approx(2.0)
    assert v["volatility_1h_bps"] == pytest.approx(100.0)  # bids 97 and 99: std 1 on mid 100
    assert v["quote_age_s"] == pytest.approx(600.0)
    assert v["trades_1h"] == 1.0
    (later,) = engine.vectors([_trade(T + 1, "250")])  # now the quote at T is the last one
    assert later["mid_distance_spreads"] == pytest.approx(0.0)
    assert later["quote_age_s"] == pytest.approx(1e-6)
    # No quote in the day before: neutral values, not an error.
    (none,) = engine.vectors([_trade(T - 2 * 24 * HOUR_US, "10")])
    assert none["spread_bps"] == 0.0 and none["mid_distance_spreads"] == 0.0
    assert none["quote_age_s"] == 86400.0
    batch = engine.vectors([_trade(T, "96"), _trade(T + 1, "250"), _trade(T - 48 * HOUR_US, "10")])
    assert batch == [v, later, none]


def test_a_derived_feature_must_follow_its_arguments(store: SqliteFeatureStore) -> None:
    from dataclasses import replace

    from domain.features import PRICE_ANOMALY

    reordered = replace(PRICE_ANOMALY, features=PRICE_ANOMALY.features[::-1])
    with pytest.raises(InvalidInput, match="must be a feature defined before it"):
        FeatureEngine(reordered, store)


def test_the_numpy_form_of_a_linear_pipeline_scores_like_sklearn() -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ml.fastpath import compile_predict

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)) * [1, 100, 0.01, 5] + [0, 1000, 1, -3]
    y = (x[:, 0] + x[:, 1] / 100 > 10).astype(int)
    for model in (
        make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")),
        LogisticRegression(max_iter=1000),
    ):
        model.fit(x, y)
        fast = compile_predict(model, x[:10])
        assert fast is not None
        assert np.allclose(fast(x), model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
        assert np.allclose(fast(x[:1]), model.predict_proba(x[:1])[:, 1], rtol=0, atol=1e-12)
    forest = RandomForestClassifier(n_estimators=3).fit(x, y)
    assert compile_predict(forest, x[:10]) is None  # scored through predict_proba


def _ev(at: int, acc: str = "A") -> dict[str, object]:
    return {**_event(at, acc=acc), "initiated_at": at}


def test_attributes_long_before_the_batch_and_between_its_events(store: SqliteFeatureStore) -> None:
    store.apply(
        [],
        [
            _kyc(T - 400 * HOUR_US, "BASIC", "LOW"),  # long before any window
            _kyc(T - 300 * HOUR_US, None, "HIGH"),
            _kyc(T + MIN_US, "ENHANCED", None),  # between the two events
            _kyc(T - 500 * HOUR_US, "STANDARD", "MEDIUM", acc="B"),
        ],
        {},
    )
    engine = FeatureEngine(PAYMENT_RISK, store)
    got = engine.vectors([_ev(T), _ev(T + 2 * MIN_US), _ev(T, acc="B"), _ev(T, acc="C")])
    assert [(v["kyc_level"], v["risk_rating"]) for v in got] == [
        (1.0, 2.0),
        (3.0, 2.0),
        (2.0, 1.0),
        (0.0, 1.0),  # no versions: the defaults
    ]
    assert got == [engine.vectors([e])[0] for e in (_ev(T), _ev(T + 2 * MIN_US))] + got[2:]


# -- tenants: an account id in two tenants is two entities --------------------------------------
def _record(tenant: str, at: str, amount: str) -> dict[str, object]:
    value = {"payment_id": f"P-{tenant}-{at}", "account_id": "ACC-A", "amount": amount}
    value["initiated_at"] = at
    headers = {"ce_type": "hub.payments.PaymentInitiated", "ce_tenant": tenant}
    return {"topic": "payments", "value": value, "headers": headers}


def test_an_account_id_in_two_tenants_keeps_two_histories(store: SqliteFeatureStore) -> None:
    from ml.feed import FeatureFeed

    feed = FeatureFeed.__new__(FeatureFeed)
    feed.view = PAYMENT_RISK
    records = [_record("acme", f"2026-11-24T1{i}:00:00Z", "9800.00") for i in range(3)]
    records.append(_record("globex", "2026-11-24T11:30:00Z", "5.00"))
    points, versions = feed.extract(records)
    store.apply(points, versions, {})
    probe = {**_event(0, "1.00", acc="ACC-A"), "initiated_at": to_us("2026-11-24T16:00:00Z")}
    engine = FeatureEngine(PAYMENT_RISK, store)
    acme, globex, other = (engine.vectors([probe], t)[0] for t in ("acme", "globex", "initech"))
    assert (acme["payments_24h"], acme["amount_24h"]) == (3.0, 29_400.0)
    assert (globex["payments_24h"], globex["amount_24h"]) == (1.0, 5.0)
    assert (other["payments_24h"], other["amount_24h"]) == (0.0, 0.0)
    both = engine.vectors([probe, probe], ["globex", "acme"])  # one tenant per event
    assert both == [globex, acme]
    with pytest.raises(InvalidInput, match="1 tenants given for 2 events"):
        engine.vectors([probe, probe], ["acme"])


def test_entity_keys_cannot_be_confused_across_tenants() -> None:
    assert entity_key("a:b", "c") != entity_key("a", "b:c")
    assert entity_key("acme", "ACC-A") == "4:acme:ACC-A"


def test_a_store_keyed_by_entity_alone_is_emptied_on_open_for_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "features.sqlite"
    SqliteFeatureStore(path, mac_key=TABLE_KEY).close()
    old = sqlite3.connect(path)  # the store as an earlier release left it: ids alone, no marker
    old.execute("DELETE FROM meta WHERE k = 'entity_keys'")
    old.execute("INSERT INTO series VALUES ('payments', 'ACC-A', 1, 0, 9800.0, NULL)")
    old.execute(
        "INSERT INTO versions VALUES ('accounts', 'ACC-A', 1, 1, 'kyc_level', 'BASIC', NULL)"
    )
    old.execute("INSERT INTO positions VALUES ('payments', 0, 1)")
    old.execute("INSERT OR REPLACE INTO meta VALUES ('seq', 2)")
    old.commit()
    old.close()
    store = SqliteFeatureStore(path, mac_key=TABLE_KEY)
    try:
        assert store.positions() == {}  # the feed folds the log again from its start
        assert store.series("payments", ["ACC-A"], 0, 10) == {}
        assert store.attribute_versions("accounts", ["ACC-A"], 10) == {}
        assert store.change_token() == 3  # change tokens only grow (past the old ones)
        store.apply([_pay(5, 1.0)], [], {TopicPartition("payments", 0): 1})
    finally:
        store.close()
    again = SqliteFeatureStore(path, mac_key=TABLE_KEY)  # an upgraded store is kept as it is
    try:
        assert again.positions() == {TopicPartition("payments", 0): 1}
    finally:
        again.close()
