"""``HUB_FEATURE_STORE``: scoring reads online features from the embedded SQLite store or from
Feast's online store, and both give the same vectors and scores on the same log, including right
after an account's KYC level changed (Feast's online row is written by the fold, no
materialize job)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.service.test_ml import (
    ALICE,
    BOB,
    T,
    _open,
    _pay,
    _payment,
    _register_small_model,
    _update,
)


def _hub(data: Path, store: str) -> Hub:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_STORE": store}
    return bootstrap(load_settings(environ=environ, data_dir=data))


def _scores(hub: Hub) -> list[tuple[dict[str, float], float]]:
    ml = ml_of(hub)
    version = _register_small_model(hub)
    change = ml.changes.propose_champion(ALICE, "payment_risk", version, "setting")
    ml.changes.approve(BOB, change.change_id)
    out = []
    for i, at in enumerate((T, T + timedelta(hours=2))):
        event = _payment(f"Q-{i}", "A", "9800.00", at, "KP")
        pred = ml.predict(ALICE, "payment_risk", event, record=False)
        out.append((pred.features, pred.score))
        if i == 0:  # an upgrade after the first event: the second one must see it
            _update(hub, "A", "ENHANCED", T + timedelta(hours=1))
    return out


def test_both_feature_store_settings_score_alike(tmp_path: Path) -> None:
    """~10-20 s: importing Feast and registering its feature view take seconds."""
    got = {}
    for store in ("sqlite", "feast"):
        hub = _hub(tmp_path / store, store)
        _open(hub, "A", "BASIC", "HIGH", T - timedelta(days=30))
        _pay(hub, "P-1", "A", "9500.00", T - timedelta(minutes=30))
        got[store] = _scores(hub)
        served = ml_of(hub).features  # SQLite behind the in-memory series cache
        adapter = type(getattr(served, "store", served)).__name__
        assert adapter == {"sqlite": "SqliteFeatureStore", "feast": "FeastFeatureStore"}[store]
        assert (type(served).__name__ == "CachedFeatureStore") == (store == "sqlite")
        hub.close()
    first, second = got["feast"]
    assert first[0]["kyc_level"] == 1.0 and first[0]["risk_rating"] == 2.0
    assert second[0]["kyc_level"] == 3.0 and second[0]["risk_rating"] == 2.0  # the upgrade
    assert first[0]["near_threshold_24h"] == 1.0
    assert got["feast"] == got["sqlite"]
