"""A drift check read every tenant's predictions (a session 14 leftover, fixed in session 15).

``hub ml drift`` (``model.train``, which a tenant's ml engineer holds) compared the champion's
last predictions of every tenant with the training reference, and its report (PSI, KS, counts
per feature) described another tenant's scored payments. It is now cut to the key's tenant, as
the A/B report is; ``--all-tenants`` is kept for a key allowed ``tenant.all`` (admin)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from core.events import OutgoingEvent
from hub.cli import main
from hub.ml_setup import ml_of
from tests.adversarial._api import register_payment_model, start_api
from tests.adversarial.test_ml_ab_tenants import ALICE, BOB, _payment


def test_a_drift_check_reads_the_keys_tenant_only(tmp_path: Path) -> None:
    data = tmp_path / "d"
    hub, client = start_api(data)
    try:
        client.close()
        ml = ml_of(hub)
        v1 = register_payment_model(hub, 0)
        change = ml.changes.propose_champion(ALICE, "payment_risk", v1, "x")
        ml.changes.approve(BOB, change.change_id)
        for tenant, ids in (("acme", ["A-0", "A-1", "A-2"]), ("globex", ["G-0"])):
            events = [OutgoingEvent(_payment(p), "hub.payments.PaymentInitiated") for p in ids]
            hub.publisher.publish("payments", events, f"{tenant}-bank", tenant)
        assert ml.consumer("payment_risk").run_until_idle() == 4
        gus = hub.keys.create(["ml_engineer"], principal="gus", tenant="globex").token
        root = hub.keys.create(["admin"], principal="root").token
    finally:
        hub.close()

    def drift(key: str, *more: str) -> tuple[int, str]:
        args = ["--data-dir", str(data), "--key", key, "ml", "drift", "payment_risk", *more]
        r = CliRunner().invoke(main, args)
        return r.exit_code, r.output

    code, out = drift(gus)
    assert code == 0, out
    answer = json.loads(out)
    assert answer["window"] == 1, answer  # before: 4, acme's payments included
    assert answer["tenant"] == "globex"
    code, out = drift(gus, "--all-tenants")
    assert code == 1 and "tenant.all" in out, out
    code, out = drift(root, "--all-tenants")
    assert code == 0, out
    assert json.loads(out)["window"] == 4
