"""Flink's result topic MUST NOT bring an erased subject's vectors back (s23).

``flink.features.<view>`` is a Kafka topic: the erasure cannot delete the vectors the job wrote
there. Before, the erasure deleted them from ``ml/vectors.sqlite`` (s22), but a load of the
result topic again (the table deleted and loaded from the start, or the job re-run and its
vectors re-sent) stored them again: the erased account id with its amounts and KYC level as
features, ready for a training set cut with ``--vectors flink``. Now the loader asks
``ml.erased`` of every vector with its event's tenant (read from the event's record) and leaves
the erased tenant's subject out; the same account id in another tenant is another person and
is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.sqlite_features import SqliteFeatureStore
from core.events import OutgoingEvent
from core.ports.eventlog import Record, TopicPartition
from core.ports.policy import Principal
from domain.features import PAYMENT_RISK
from hub.bootstrap import bootstrap
from hub.flink import row_key
from hub.flink_feature_views import feature_views
from hub.ml_setup import feature_vectors, ml_of
from hub.settings import load_settings
from ml.erased import erased_in
from ml.flink_features import MAC_COLUMNS, embedded_vectors, mac_name, result_topic
from projections.flink.rowmac import COLUMN, row_mac
from tests.adversarial.test_ml_ab_tenants import _payment

OFFICER = Principal("ann", frozenset({"compliance_officer"}), tenant="acme")
VIEW = PAYMENT_RISK


def _as_result(key: bytes, row: dict[str, Any]) -> Record:
    """``row`` (an embedded vector) as the view's Flink job writes it to its result topic."""
    at = {"ev_partition": row["partition"], "ev_offset": row["offset"]}
    body = {k: row[k] for k in ("entity", "subject", "time_us", "features")} | {"version": 1}
    value: dict[str, Any] = at | {"vector": json.dumps(body, sort_keys=True)}
    value[COLUMN] = row_mac(key, mac_name(VIEW), [value[n] for n, _ in MAC_COLUMNS])
    return Record(json.dumps(value).encode(), key=json.dumps(at).encode())


def test_a_reload_of_the_result_topic_keeps_the_erased_subjects_vectors_out(
    tmp_path: Path,
) -> None:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_ENGINE": "flink"}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "d"))
    try:
        for tenant in ("acme", "globex"):  # the same account id in both tenants
            event = OutgoingEvent(_payment("1"), "hub.payments.PaymentInitiated")
            hub.publisher.publish("payments", [event], f"{tenant}-bank", tenant)

        def tenant_of(row: dict[str, Any]) -> str:
            (rec,) = hub.reader.read("payments", row["partition"], row["offset"], 1, mask_pii=True)
            return str(rec["headers"]["ce_tenant"])

        rows = embedded_vectors(VIEW, hub.log, hub.reader, SqliteFeatureStore(":memory:"))
        key = row_key(hub.settings)
        hub.log.create_topic(result_topic(VIEW), 1)
        hub.log.append(result_topic(VIEW), [_as_result(key, r) for r in rows])
        ml_of(hub)  # the ML service: the erasure reaches its stores
        hub.eraser.erase(OFFICER, "ACC-1", "DSR-7", tenant_scope="acme")

        store = feature_vectors(hub)
        try:
            (companion,) = [
                c
                for c in feature_views(hub.log, store, key, erased_in(hub.keystore))
                if c.view is VIEW
            ]
            ends = {
                TopicPartition("payments", p): e for p, e in hub.log.end_offsets("payments").items()
            }
            hub.log.commit_offsets(companion.group, ends)  # the job read every payment
            done = companion.load()  # the whole topic, into an empty table
            kept = store.rows(VIEW.name)
            # before: both vectors loaded, acme's naming its erased account
            assert [(tenant_of(r), r["entity"]) for r in kept] == [("globex", "ACC-1")]
            assert done["erased_vectors"] == 1
            # the erased event needs no vector: the covers still reach the job's offsets
            assert done["covers_refused"] == []
            assert (
                store.covers(VIEW.name)[TopicPartition("payments", kept[0]["partition"])]
                == (ends[TopicPartition("payments", kept[0]["partition"])])
            )
            # a full read (what a differential check or a backfill reads) leaves it out too
            assert [tenant_of(r) for r in companion._loader.load(VIEW)] == ["globex"]
        finally:
            store.close()
    finally:
        hub.close()
