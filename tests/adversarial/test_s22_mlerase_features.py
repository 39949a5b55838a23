"""An erasure MUST reach the ML side's derived rows of the subject (session 22, ml-erasure22).

Before: ``hub erase`` destroyed the subject's key and scrubbed the views, but the feature store
(``ml/features.sqlite``) kept the erased account's history under its tenant-qualified key
(amounts, times, KYC level, risk rating), readable by anyone who can read the data folder;
a feature table rebuilt from the log (file deleted, or reset on a missing row) folded it in
again; a training set cut after the erasure had rows of it; and the scoring consumer, lagging
the erasure, scored events of it already on the log and recorded new predictions naming it.
Now the erasure deletes the subject's feature rows (the tables' MAC bookkeeping kept
consistent, so nothing else is reset), the feed and training sets leave out an erased
tenant's subject, and the scorer skips it; the same account id in another tenant (another
person) keeps its history."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.ml_setup import ml_of
from ml.features import entity_key
from ml.predictions import PREDICTIONS_TOPIC
from tests.adversarial._api import Api, basic, register_payment_model, serve_hub, start_api
from tests.adversarial.test_ml_ab_tenants import _payment

ALICE = Principal("alice", frozenset({"ml_engineer"}))
BOB = Principal("bob", frozenset({"ml_engineer"}))
ERASED = entity_key("acme", "ACC-A-0")
OTHER = entity_key("globex", "ACC-A-0")


def _publish(hub, tenant: str, pid: str, account: str = "ACC-A-0") -> None:  # type: ignore[no-untyped-def]
    event = OutgoingEvent({**_payment(pid), "account_id": account}, "hub.payments.PaymentInitiated")
    hub.publisher.publish("payments", [event], f"{tenant}-bank", tenant)


def _label(hub, tenant: str, pid: str) -> None:  # type: ignore[no-untyped-def]
    value = {
        "payment_id": pid,
        "account_id": "ACC-A-0",
        "kind": "FRAUD",
        "confirmed_by": "investigator",
        "confirmed_at": "2026-11-25T09:00:00Z",
    }
    hub.publisher.publish(
        "payment-labels",
        [OutgoingEvent(value, "hub.payments.FraudConfirmed")],
        f"{tenant}-bank",
        tenant,
    )


def _erase(api: Api) -> None:
    officer = api.hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    r = api.client.post(
        "/v1/erasures", json={"subject": "ACC-A-0", "reason": "DSR-1"}, headers=basic(officer)
    )
    assert r.status_code == 201, r.text


def _entities(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT entity FROM series UNION SELECT entity FROM versions "
            "UNION SELECT entity FROM heads"
        )
        return {r[0] for r in rows}


def _in_bytes(path: Path, text: str) -> list[str]:
    """The files of the SQLite database ``path`` (with its -wal) whose bytes hold ``text``."""
    files = [f for f in path.parent.glob(path.name + "*") if f.is_file()]
    return [f.name for f in files if text.encode() in f.read_bytes()]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """payment_risk v1 the champion; ACC-A-0 paid in acme and in globex, scored (folded)."""
    hub, client = start_api(tmp_path / "d")
    client.close()
    ml = ml_of(hub)
    v1 = register_payment_model(hub, 0)
    ml.changes.approve(BOB, ml.changes.propose_champion(ALICE, "payment_risk", v1, "x").change_id)
    for tenant in ("acme", "globex"):
        _publish(hub, tenant, f"{tenant}-1")
    assert ml.consumer("payment_risk").run_until_idle() == 2
    yield from serve_hub(hub)


def test_erasure_deletes_the_subjects_feature_rows(api: Api) -> None:
    path = api.hub.settings.data_dir / "ml" / "features.sqlite"
    assert {ERASED, OTHER} <= _entities(path)
    _erase(api)
    left = _entities(path)
    assert ERASED not in left  # before: the erased account's history stayed in the file
    assert OTHER in left  # another tenant's account of the same id is another person
    assert _in_bytes(path, ERASED) == []  # nor in the file's free pages or its log
    ml = ml_of(api.hub)
    # the table's bookkeeping is consistent: the next read and fold reset nothing
    _publish(api.hub, "acme", "acme-2", "ACC-A-1")
    assert ml.consumer("payment_risk").run_until_idle() == 1
    analyst = api.hub.keys.create(["analyst"], principal="al", tenant="acme").token
    event = {**_payment("acme-3"), "account_id": "ACC-A-1", "initiated_at": "2026-11-24T12:00:00Z"}
    r = api.client.post(
        "/v1/models/payment_risk/predict", json={"event": event}, headers=basic(analyst)
    )
    assert r.status_code == 200, r.text
    assert r.json()["features"]["payments_24h"] == 1.0  # ACC-A-1's history is still there
    assert ERASED not in _entities(path)
    assert getattr(ml.features, "store", ml.features).resets == 0  # nothing else was emptied
    # the ledger's entry says what went and which model versions may hold the subject
    (details,) = [
        json.loads(a["details"])
        for a in (api.hub.reader.decode(r)["value"] for r in api.hub.log.read("hub.audit", 0, 0))
        if a["action"] == "subject.erase"
    ]
    derived = details["derived_rows_deleted"]
    assert derived["feature_rows"] == 1
    assert derived["models_trained_before"] == {"payment_risk": [1]}


def test_a_feature_table_folded_again_leaves_the_erased_subject_out(api: Api) -> None:
    _erase(api)
    ml = ml_of(api.hub)
    ml.close()
    api.hub.ml = None
    path = api.hub.settings.data_dir / "ml" / "features.sqlite"
    for f in path.parent.glob("features.sqlite*"):
        f.unlink()
    ml = ml_of(api.hub)
    ml.feed(ml.scorer("payment_risk").engine.view).catch_up()
    left = _entities(path)
    assert OTHER in left
    assert ERASED not in left  # before: the fold read the erased account's payments again


def test_a_training_set_cut_after_the_erasure_leaves_the_subject_out(api: Api) -> None:
    for tenant in ("acme", "globex"):
        _label(api.hub, tenant, f"{tenant}-1")
    ml = ml_of(api.hub)
    before = ml.training_sets.cut("payment_risk")
    assert len(before.rows) == 2
    _erase(api)
    after = ml.training_sets.cut("payment_risk")
    assert len(after.rows) == 1  # before: 2, the erased account's payment a training row
    assert after.rows[0]["subject"] == "globex-1"


def test_the_scorer_skips_an_erased_subjects_events_already_on_the_log(api: Api) -> None:
    ml = ml_of(api.hub)
    _publish(api.hub, "acme", "acme-late")  # on the log before the erasure, not yet scored
    _erase(api)
    before = len(api.hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 1000))
    ml.consumer("payment_risk").run_until_idle()
    recorded = api.hub.reader.read(PREDICTIONS_TOPIC, 0, 0, 1000)[before:]
    named = [r for r in recorded if (r.get("value") or {}).get("subject") == "acme-late"]
    assert named == []  # before: a new prediction naming the erased account was recorded


def test_past_predictions_of_an_erased_subject_leave_the_ab_and_drift_windows(api: Api) -> None:
    ml = ml_of(api.hub)
    named = {(p["entity"], p["subject"]) for p in ml.predictions("payment_risk")}
    assert named == {("ACC-A-0", "acme-1"), ("ACC-A-0", "globex-1")}
    _erase(api)
    # before: acme's erased account's prediction (its amounts, KYC level) still counted
    assert [p["subject"] for p in ml.predictions("payment_risk")] == ["globex-1"]
    assert ml.predictions("payment_risk", tenant="acme") == []


def test_a_failing_ml_step_does_not_keep_the_erasure_off_the_ledger(api: Api) -> None:
    """The keys are destroyed before step 3b: its failure is recorded, not raised."""

    def broken(subject: str, tenants: object) -> dict[str, int]:
        raise OSError("disk full")

    api.hub.eraser.derived = broken
    _erase(api)
    (details,) = [
        json.loads(a["details"])
        for a in (api.hub.reader.decode(r)["value"] for r in api.hub.log.read("hub.audit", 0, 0))
        if a["action"] == "subject.erase"
    ]
    assert details["derived_rows_deleted"] == {"failed": "OSError: disk full"}
