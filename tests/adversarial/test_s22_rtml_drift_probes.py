"""Another tenant's predict calls MUST NOT move the hub-wide drift window (s22, medium).

Left open by the ML red team (docs/benchmarks/s22-redteam-ml22.md): a drift check over every
tenant (the one a retrain schedule answers, for every tenant's accounts) read every recorded
prediction, including those made on request (``POST /v1/models/{m}/predict``, recorded with
source ``request:<principal>``): any tenant's analyst could fill the window with probes of odd
values and so drive a hub-wide retrain and a new challenger for everyone. The hub-wide window
now holds predictions of scored events (the log's traffic) only; a tenant's own drift check
still reads its probes (it retrains nothing)."""

from __future__ import annotations

from pathlib import Path

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.adversarial.test_ml_ab_tenants import _payment
from tests.adversarial.test_s22_rtml_drift_retrain import ALICE, BOB, _register

GUS = Principal("gus", frozenset({"analyst"}), tenant="acme")


def test_probes_are_left_out_of_the_hub_wide_drift_window(tmp_path: Path) -> None:
    settings = load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    hub = bootstrap(settings)
    try:
        ml = ml_of(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", _register(hub), "x")
        ml.changes.approve(BOB, change.change_id)
        events = [
            OutgoingEvent(_payment(f"G-{i}"), "hub.payments.PaymentInitiated") for i in range(60)
        ]
        hub.publisher.publish("payments", events, "globex-bank", "globex")
        assert ml.consumer("payment_risk").run_until_idle() == 60
        for i in range(30):  # an acme analyst's probes, recorded in acme
            ml.predict(GUS, "payment_risk", {**_payment(f"P-{i}"), "amount": "99999999.00"})
        sources = [p["source"] for p in ml.predictions("payment_risk")]
        assert sum(s.startswith("request:") for s in sources) == 30  # recorded, as before
        hub_wide = ml.check_drift("payment_risk")
        assert hub_wide["window"] == 60, hub_wide  # before: 90, the probes included
        own = ml.check_drift("payment_risk", tenant="acme")
        assert own["window"] == 30, own  # a tenant's own check still reads its probes
    finally:
        hub.close()
