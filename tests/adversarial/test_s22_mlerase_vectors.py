"""An erasure MUST reach the stored feature vectors (``HUB_FEATURE_ENGINE=flink``).

``ml/vectors.sqlite`` keeps, per scored event, the vector Flink's feature job computed (the
account id, the event time, its amounts and KYC level as features). Before, ``hub erase`` left
them; now the erasure deletes the vectors of the events of the erased tenant's subject (the
event's tenant read from its record), through the table's own ``apply`` (its load position and
coverage kept, MACed). The rows are loaded here with the embedded engine's vectors, the same
rows the Flink job's differential test compares with (no Flink cluster needed)."""

from __future__ import annotations

from pathlib import Path

from adapters.sqlite_features import SqliteFeatureStore
from core.events import OutgoingEvent
from core.ports.eventlog import TopicPartition
from core.ports.policy import Principal
from domain.features import PAYMENT_RISK
from hub.bootstrap import bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.flink_features import embedded_vectors
from tests.adversarial.test_ml_ab_tenants import _payment

OFFICER = Principal("ann", frozenset({"compliance_officer"}), tenant="acme")


def test_erasure_deletes_the_subjects_stored_vectors(tmp_path: Path) -> None:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_ENGINE": "flink"}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "d"))
    try:
        for tenant in ("acme", "globex"):
            event = OutgoingEvent(_payment(f"{tenant}-1"), "hub.payments.PaymentInitiated")
            hub.publisher.publish("payments", [event], f"{tenant}-bank", tenant)
        ml = ml_of(hub)
        vectors = ml.vectors
        assert vectors is not None
        rows = embedded_vectors(PAYMENT_RISK, hub.log, hub.reader, SqliteFeatureStore(":memory:"))
        covers = {TopicPartition("payments", 0): 2}
        vectors.apply(PAYMENT_RISK.name, rows, [], 7, covers)
        assert [r["subject"] for r in vectors.rows(PAYMENT_RISK.name)] == ["acme-1", "globex-1"]
        hub.eraser.erase(OFFICER, "ACC-acme-1", "DSR-3", tenant_scope="acme")
        hub.eraser.erase(OFFICER, "ACC-globex-1", "DSR-4", tenant_scope="acme")  # not globex's
        # before: both vectors stayed; acme's names its erased account
        assert [r["subject"] for r in vectors.rows(PAYMENT_RISK.name)] == ["globex-1"]
        folder = hub.settings.data_dir / "ml"
        held = [f.name for f in folder.glob("vectors.sqlite*") if b"ACC-acme-1" in f.read_bytes()]
        assert held == []  # nor in the file's free pages or its log
        assert vectors.position(PAYMENT_RISK.name) == 7  # the load position kept (MACed)
        assert vectors.covers(PAYMENT_RISK.name) == covers
    finally:
        hub.close()
