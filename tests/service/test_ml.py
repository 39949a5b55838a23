"""Machine learning on the log, end to end on the embedded footprint: training sets that are
point-in-time correct and rebuild to the same digest, champion promotion under the two-person
rule, exactly-once scoring across a crash, drift on the demo stream, the predict route."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import Forbidden
from core.events import OutgoingEvent
from core.ports.policy import Principal
from governance.configchanges import TwoPersonRequired
from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.features import digest, entity_key
from ml.models import CHAMPION_PREFIX

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))
T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _open(hub: Hub, acc: str, kyc: str, risk: str, at: datetime) -> None:
    value = {
        "account_id": acc,
        "customer_name": f"Customer {acc}",
        "email": f"{acc.lower()}@example.com",
        "country": "GB",
        "kyc_level": kyc,
        "risk_rating": risk,
        "base_currency": "USD",
        "opened_at": _ts(at),
    }
    hub.publisher.publish("accounts", [OutgoingEvent(value, "hub.accounts.AccountOpened")], "t")


def _update(hub: Hub, acc: str, kyc: str, at: datetime) -> None:
    value = {"account_id": acc, "kyc_level": kyc, "updated_at": _ts(at)}
    hub.publisher.publish("accounts", [OutgoingEvent(value, "hub.accounts.AccountUpdated")], "t")


def _payment(pid: str, acc: str, amount: str, at: datetime, country: str = "GB") -> dict[str, Any]:
    return {
        "payment_id": pid,
        "account_id": acc,
        "amount": amount,
        "currency": "USD",
        "counterparty_name": "Someone",
        "counterparty_iban": "GB29NWBK60161331926819",
        "counterparty_country": country,
        "initiated_at": _ts(at),
    }


def _pay(
    hub: Hub,
    pid: str,
    acc: str,
    amount: str,
    at: datetime,
    *,
    country: str = "GB",
    settle: bool = True,
    fraud: bool = False,
) -> None:
    events = [
        OutgoingEvent(_payment(pid, acc, amount, at, country), "hub.payments.PaymentInitiated")
    ]
    if settle:
        settled = {
            "payment_id": pid,
            "account_id": acc,
            "amount": amount,
            "currency": "USD",
            "initiated_at": _ts(at),
            "settled_at": _ts(at + timedelta(minutes=5)),
        }
        events.append(OutgoingEvent(settled, "hub.payments.PaymentSettled"))
    hub.publisher.publish("payments", events, "t")
    if fraud:
        label = {
            "payment_id": pid,
            "account_id": acc,
            "kind": "STRUCTURING",
            "confirmed_at": _ts(at + timedelta(days=1)),
        }
        hub.publisher.publish("payment-labels", [OutgoingEvent(label)], "t")


def _hub(data: Path) -> Hub:
    return bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))


@pytest.fixture
def crafted(tmp_path: Path) -> Iterator[Hub]:
    hub = _hub(tmp_path / "data")
    _open(hub, "A", "BASIC", "LOW", T - timedelta(days=30))
    _open(hub, "B", "ENHANCED", "LOW", T - timedelta(days=30))
    # Log order is not time order: the later payment and the KYC upgrade are appended first.
    _pay(hub, "P-after", "A", "9600.00", T + timedelta(minutes=10))
    _update(hub, "A", "ENHANCED", T + timedelta(minutes=30))
    _pay(hub, "P-2h", "A", "100.00", T - timedelta(hours=2))
    _pay(hub, "P-30m", "A", "9500.00", T - timedelta(minutes=30))
    _pay(hub, "P-scored", "A", "7000.00", T, country="KP", fraud=True)
    _pay(hub, "P-open", "B", "20.00", T, settle=False)  # no label yet: left out
    for i in range(6):
        _pay(hub, f"P-B{i}", "B", f"{10 + i}.00", T - timedelta(hours=3 * i))
    yield hub
    hub.close()


def test_training_rows_use_only_facts_before_each_event(crafted: Hub) -> None:
    ts = ml_of(crafted).training_sets.cut("payment_risk")
    rows = {r["subject"]: r for r in ts.rows}
    assert "P-open" not in rows  # neither settled nor confirmed: no label
    scored = rows["P-scored"]
    assert scored["label"] == 1 and rows["P-30m"]["label"] == 0
    assert scored["features"] == {
        "amount": 7000.0,
        "payments_1h": 1.0,
        "amount_1h": 9500.0,
        "payments_24h": 2.0,
        "amount_24h": 9600.0,  # 100 + 9,500: not the 9,600 ten minutes later
        "near_threshold_24h": 1.0,
        "kyc_level": 1.0,  # BASIC: the upgrade half an hour later is not seen
        "risk_rating": 0.0,
        "counterparty_country_risk": 3.0,
    }
    assert rows["P-after"]["features"]["payments_1h"] == 2.0  # P-30m and P-scored
    assert rows["P-after"]["features"]["kyc_level"] == 1.0
    m = ts.manifest
    assert m["rows"] == len(ts.rows) == 10 and m["positives"] == 1
    assert m["checkpoint"]["size"] > 0 and len(m["checkpoint"]["root"]) == 64
    assert m["positions"]["payments/0"] + m["positions"]["payments/1"] > 0


def test_a_training_set_rebuilds_from_its_manifest(crafted: Hub) -> None:
    sets = ml_of(crafted).training_sets
    first = sets.cut("payment_risk")
    # Later records, even ones dated before the cut, are not part of the rebuilt set.
    _pay(crafted, "P-late", "A", "9900.00", T - timedelta(minutes=45), fraud=True)
    again = sets.verify(first.manifest)
    assert again.digest == first.digest and again.rows == first.rows
    newer = sets.cut("payment_risk")
    assert newer.digest != first.digest and newer.manifest["rows"] == first.manifest["rows"] + 1
    changed = {**first.manifest, "digest": "0" * 64}
    with pytest.raises(Exception, match="rebuilt at the manifest's offsets"):
        sets.verify(changed)


def test_two_feeds_on_one_store_fold_each_record_once(crafted: Hub) -> None:
    import threading

    from ml.feed import FeatureFeed

    ml = ml_of(crafted)
    view = ml.view_of("payment_risk")
    feeds = [FeatureFeed(view, crafted.log, crafted.reader, ml.features, batch=2) for _ in "ab"]
    threads = [threading.Thread(target=f.catch_up) for f in feeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = entity_key("default", "A"), entity_key("default", "B")  # published without a tenant
    got = ml.features.series("payments", [a, b], 0, 2**62)
    assert len(got[a]) == 4 and len(got[b]) == 7  # every PaymentInitiated once
    assert ml.features.attributes("accounts", [a], 2**62) == {
        a: {"kyc_level": "ENHANCED", "risk_rating": "LOW"}
    }


def _register_small_model(hub: Hub) -> int:
    """A logistic model fitted on synthetic vectors (the crafted log has too few labels)."""
    from sklearn.linear_model import LogisticRegression

    ml = ml_of(hub)
    names = list(ml.view_of("payment_risk").names)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, len(names)))
    y = (x[:, 0] > 0.5).astype(int)
    model = LogisticRegression().fit(x, y)
    mv = ml.models.register(
        ALICE,
        "payment_risk",
        model,
        family="sklearn.LogisticRegression",
        features=names,
        threshold=0.5,
        manifest={"view": "payment_risk"},
        metrics={},
        reference={n: list(x[:, i]) for i, n in enumerate(names)},
    )
    return mv.version


def test_a_champion_needs_a_second_person(crafted: Hub) -> None:
    ml = ml_of(crafted)
    version = _register_small_model(crafted)
    with pytest.raises(TwoPersonRequired):
        ml.changes.set_direct(ALICE, CHAMPION_PREFIX + "payment_risk", version)
    change = ml.changes.propose_champion(ALICE, "payment_risk", version, "first model")
    assert change.status == "pending_approval"
    assert ml.models.champion_of("payment_risk") is None
    with pytest.raises(Forbidden, match="Two-person rule"):
        ml.changes.approve(ALICE, change.change_id)
    assert ml.models.champion_of("payment_risk") is None
    ml.changes.approve(BOB, change.change_id, "reviewed")
    assert ml.models.champion_of("payment_risk") == version
    assert ml.models.store.aliases("payment_risk") == {"champion": version}
    promoted = [
        r
        for r in crafted.reader.read("hub.models", 0, 0, 100)
        if "Promoted" in r["headers"]["ce_type"]
    ]
    assert promoted[-1]["value"]["change_id"] == change.change_id
    # Every lifecycle event gets its ledger leaf.
    crafted.ledger.sync(force_checkpoint=True)
    assert crafted.ledger.index_of("hub.models", 0, promoted[-1]["offset"]) is not None


def _crash_while_scoring(data: Path) -> None:
    hub = _hub(data)

    def crash() -> None:
        os._exit(17)  # the process dies with the predictions staged but not committed

    ml_of(hub).consumer("payment_risk", on_staged=crash).step()
    os._exit(0)  # not reached


def test_scoring_is_exactly_once_across_a_crash(crafted: Hub) -> None:
    ml = ml_of(crafted)
    version = _register_small_model(crafted)
    change = ml.changes.propose_champion(ALICE, "payment_risk", version, "first")
    ml.changes.approve(BOB, change.change_id)
    data = crafted.settings.data_dir
    crafted.close()
    crafted.close = lambda: None  # type: ignore[method-assign]  # the fixture's close: done
    child = multiprocessing.get_context("fork").Process(target=_crash_while_scoring, args=(data,))
    child.start()
    child.join(300)
    assert child.exitcode == 17
    hub = _hub(data)
    try:
        ml = ml_of(hub)
        assert ml.predictions("payment_risk") == []  # nothing of the crashed step is visible
        consumer = ml.consumer("payment_risk", batch=3)
        assert consumer.run_until_idle() > 0 and consumer.lag() == 0
        predictions = ml.predictions("payment_risk")
        subjects = sorted(p["subject"] for p in predictions)
        initiated = 11  # every PaymentInitiated of the crafted log, once
        assert len(subjects) == initiated and len(set(subjects)) == initiated
        assert consumer.run_until_idle() == 0
        assert len(ml.predictions("payment_risk")) == initiated
        p = next(p for p in predictions if p["subject"] == "P-scored")
        assert p["version"] == version and p["variant"] == "champion"
        assert p["source"].startswith("payments/") and p["decision"] in {"alert", "pass"}
        assert p["feature_digest"] == digest(json.loads(p["features"]))
    finally:
        hub.close()


# -- the demo trading day ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    from hub.demo import load

    hub = _hub(tmp_path_factory.mktemp("ml-demo") / "data")
    load(hub.ingest)
    ml = ml_of(hub)
    mv = ml.train(ALICE, "payment_risk")
    change = ml.changes.propose_champion(ALICE, "payment_risk", mv.version, "demo")
    ml.changes.approve(BOB, change.change_id)
    ml.consumer("payment_risk").run_until_idle()
    yield hub
    hub.close()


def test_the_demo_model_finds_the_planted_fraud(demo: Hub) -> None:
    ml = ml_of(demo)
    mv = ml.models.version("payment_risk", 1)
    assert mv.manifest["positives"] == 36 and mv.manifest["rows"] > 1000
    assert mv.metrics["holdout"]["auc"] > 0.9
    assert ml.training_sets.verify(mv.manifest).digest == mv.manifest["digest"]
    report = ml.ab_report("payment_risk")
    champion = report["variants"]["champion"]
    assert champion["predictions"] == 1186  # every demo PaymentInitiated, once
    assert champion["recall"] >= 0.8 and champion["precision"] >= 0.2
    metrics = demo.metrics.render().decode()
    labels = 'decision="alert",model="payment_risk",variant="champion",version="1"'
    alerts = f"hub_ml_predictions_total{{{labels}}} {float(champion['alerts'])}"
    assert alerts in metrics, [m for m in metrics.splitlines() if "hub_ml_pred" in m]


def test_drift_is_raised_by_a_shifted_stream_and_not_by_the_demo(demo: Hub) -> None:
    ml = ml_of(demo)
    clean = ml.check_drift("payment_risk", window=500)
    assert clean["window"] == 500 and clean["drifted"] == [], clean["report"]
    rng = np.random.default_rng(9)
    start = datetime(2026, 11, 25, 8, tzinfo=UTC)
    events = [
        OutgoingEvent(
            _payment(
                f"DRIFT-{i}",
                f"ACC-{int(rng.integers(0, 200)):04d}",
                f"{float(rng.uniform(40_000, 90_000)):.2f}",  # ten times the usual amounts
                start + timedelta(seconds=20 * i),
                country=str(rng.choice(["RU", "AE", "TR"])),
            ),
            "hub.payments.PaymentInitiated",
        )
        for i in range(300)
    ]
    demo.publisher.publish("payments", events, "t")
    ml.consumer("payment_risk").run_until_idle()
    found = ml.check_drift("payment_risk", window=300)
    assert "amount" in found["drifted"] and "counterparty_country_risk" in found["drifted"]
    assert ml.models.state("payment_risk").drift[-1]["drifted"] == found["drifted"]
    # Retraining on a drift: a new version, compared with the champion on the same holdout,
    # serves as the challenger for its share of the accounts; the champion stays.
    mv = ml.retrain(ALICE, "payment_risk", share=0.5, reason="drift")
    assert mv.stage == "CHALLENGER" and ml.models.champion_of("payment_risk") == 1
    assert mv.metrics["champion"]["version"] == 1
    assert mv.metrics["champion"]["holdout"]["rows"] == mv.metrics["holdout"]["rows"]
    more = [
        OutgoingEvent(
            _payment(
                f"AB-{i}", f"ACC-{i % 200:04d}", "120.00", start + timedelta(hours=3, seconds=i)
            ),
            "hub.payments.PaymentInitiated",
        )
        for i in range(400)
    ]
    demo.publisher.publish("payments", more, "t")
    ml.consumer("payment_risk").run_until_idle()
    report = ml.ab_report("payment_risk")
    challenger = report["variants"]["challenger"]
    assert challenger["versions"] == [mv.version] and 120 < challenger["predictions"] < 280
    assert report["alert_rate_p_value"] is not None


def test_predict_route(demo: Hub) -> None:
    import base64

    from fastapi.testclient import TestClient

    from hub.api.app import create_app

    client = TestClient(create_app(demo), raise_server_exceptions=False)

    def auth(role: str) -> dict[str, str]:
        token = demo.keys.create([role], principal=f"route-{role}").token
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

    event = _payment("REQ-1", "ACC-0042", "9800.00", datetime(2026, 11, 24, 16, tzinfo=UTC))
    before = len(ml_of(demo).predictions("payment_risk"))
    r = client.post(
        "/v1/models/payment_risk/predict", json={"event": event}, headers=auth("analyst")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] in (1, 2) and body["features"]["near_threshold_24h"] >= 8
    assert body["decision"] == "alert" and body["source"] == "request:route-analyst"
    assert len(ml_of(demo).predictions("payment_risk")) == before + 1
    r = client.post(
        "/v1/models/payment_risk/predict", json={"event": event}, headers=auth("publisher")
    )
    assert r.status_code == 403
    bad = {k: v for k, v in event.items() if k != "initiated_at"}
    r = client.post("/v1/models/payment_risk/predict", json={"event": bad}, headers=auth("admin"))
    assert r.status_code == 422 and "initiated_at" in r.json()["message"]
    r = client.get("/v1/models/nosuch", headers=auth("admin"))
    assert r.status_code == 404 and "hub ml train nosuch" in r.json()["message"]
    r = client.get("/v1/models/payment_risk", headers=auth("ml_engineer"))
    assert r.status_code == 200 and r.json()["champion"] == 1
    client.close()


# -- the CLI ----------------------------------------------------------------------------------
def test_the_cli_trains_promotes_with_two_people_and_scores(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli import main
    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    args = admin_args(data)
    hub = _hub(data)
    try:
        _open(hub, "S", "BASIC", "HIGH", T - timedelta(days=30))
        _open(hub, "N", "ENHANCED", "LOW", T - timedelta(days=30))
        for i in range(24):  # structuring: just under the threshold, confirmed
            _pay(hub, f"S-{i}", "S", "9700.00", T + timedelta(minutes=20 * i), fraud=True)
        for i in range(40):
            _pay(hub, f"N-{i}", "N", f"{20 + i}.00", T + timedelta(minutes=11 * i))
        bob = hub.keys.create(["ml_engineer"], owner="bob").token
        carol = hub.keys.create(["compliance_officer"], owner="carol").token
    finally:
        hub.close()

    def hub_ml(*words: str) -> Any:
        return CliRunner().invoke(main, [*args, "ml", *words])

    r = hub_ml("train", "payment_risk")
    assert r.exit_code == 0, r.output
    assert "registered payment_risk v1" in r.stdout and '"auc"' in r.stdout
    r = hub_ml("promote", "payment_risk", "1", "--reason", "first", "--key", bob)
    assert r.exit_code == 0 and "pending_approval" in r.stdout, r.output
    change_id = json.loads(r.stdout)["change_id"]
    r = hub_ml("approve", change_id, "--key", bob)
    assert r.exit_code == 1 and "two_person_rule" in r.stderr
    r = hub_ml("approve", change_id, "--key", carol)
    assert r.exit_code == 0 and '"status": "applied"' in r.stdout, r.output
    r = hub_ml("score", "payment_risk")
    assert r.exit_code == 0 and "lag 0" in r.stdout, r.output
    r = hub_ml("models")
    assert r.stdout.startswith("payment_risk\tv1\tCHAMPION"), r.output
    r = hub_ml("trainingset", "verify", "payment_risk", "1")
    assert r.exit_code == 0 and "64 rows" in r.stdout and "matches the manifest" in r.stdout
    r = hub_ml("promote", "payment_risk", "1", "--reason", "x", "--key", carol)
    assert r.exit_code == 1 and "model.promote" in r.stderr  # compliance approves, not proposes


def test_the_price_anomaly_model_finds_the_off_market_trades_live(demo: Hub) -> None:
    """Trained from the demo's trade-labels, promoted by two people, then every demo trade is
    scored by the consumer; live precision and recall come from the labels on the log."""
    ml = ml_of(demo)
    mv = ml.train(ALICE, "price_anomaly")
    assert mv.manifest["view"] == "price_anomaly"
    assert mv.manifest["positives"] == 30 and mv.manifest["rows"] == 1020
    assert mv.metrics["holdout"]["auc"] > 0.95
    change = ml.changes.propose_champion(ALICE, "price_anomaly", mv.version, "demo")
    ml.changes.approve(BOB, change.change_id)
    ml.consumer("price_anomaly").run_until_idle()
    champion = ml.ab_report("price_anomaly")["variants"]["champion"]
    assert champion["predictions"] == 3000  # every accepted demo trade, once
    assert champion["labelled"] == 1020
    assert champion["precision"] >= 0.9 and champion["recall"] >= 0.9
    alerts = {p["subject"] for p in ml.predictions("price_anomaly") if p["decision"] == "alert"}
    assert {"TR-000037", "TR-001537", "TR-002937"} <= alerts
    assert ml.consumer("price_anomaly").run_until_idle() == 0  # nothing scored twice
