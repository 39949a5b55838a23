"""The ML feature views on Flink equal the embedded feed and engine, vector for vector.

``payment_risk`` (an account's payment count and sum over 1 h and 24 h, the near-threshold count,
KYC level and risk rating in force, counterparty-country risk) and ``price_anomaly`` (the quote
features of a trade: last bid/ask, spread, distance, volatility, quote age, trade count) are
computed for every scored event of the session's views hub:
- embedded: ``ml.feed.FeatureFeed`` folds the topics into a ``SqliteFeatureStore`` and
  ``ml.features.FeatureEngine`` answers each event as of its time (online scoring's code);
- Flink: ``ml.flink_features`` joins each event with its entity's earlier facts in SQL,
  as part of the session's one bounded job, and writes the vectors to a result topic that
  ``FeatureVectorLoader`` reads;
and the digests of all vectors are equal. ``feature_batches`` puts payments on the edges: a
payment exactly one hour after another (inside ``[t - 1h, t)``), one a microsecond later
(outside), two at the same instant (neither sees the other), amounts at 9,000.00 (near the
threshold, inclusive) and 10,000.00 (not), a KYC change at the very time of a payment (not yet
in force for it), and a payment that arrives late (published after the payments it precedes,
whose vectors it changes). The quotes of ``test_flink_positions`` have equal times (log order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.events import OutgoingEvent
from domain.features import PAYMENT_RISK, PRICE_ANOMALY
from ml.flink_features import embedded_vectors, vectors_digest
from tests.differential.conftest import FlinkSession

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

VIEWS = (PAYMENT_RISK, PRICE_ANOMALY)


def _payment(i: int, account: str, amount: str, at: str, country: str = "DE") -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": f"F{i}",
            "account_id": account,
            "amount": amount,
            "currency": "EUR",
            "counterparty_name": f"Person {i}",
            "counterparty_iban": "DE00123",
            "counterparty_country": country,
            "initiated_at": at,
        },
    )


def feature_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """Payments on the windows' edges (see the module docstring), in publishing order."""
    t0 = "2026-03-05T10:00:00"
    return [
        (
            "acme",
            [
                _payment(1, "F1", "9000.00", f"{t0}Z", "IR"),  # near (inclusive)
                _payment(2, "F1", "10000.00", f"{t0}Z", "AE"),  # same instant; not near
                _payment(3, "F1", "120.50", "2026-03-05T11:00:00Z"),  # sees 1, 2 (edge)
                _payment(4, "F1", "75.25", "2026-03-05T11:00:00.000001Z", "KP"),  # 1h: only 3
                _payment(5, "F1", "9999.99", "2026-03-06T10:00:00.000001Z"),  # 24h: not 1, 2
                _payment(6, "F2", "1.00", "2026-03-05T10:00:00Z", "XX"),  # unknown country
            ],
        ),
        ("acme", [_payment(7, "F1", "500.00", "2026-03-05T10:30:00Z")]),  # late: 3, 4, 5 see it
    ]


def feature_account_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """F1 opened before its payments; its KYC level raised at the instant of payment 1."""
    from tests.differential.test_flink_accounts import opened, updated

    return [
        ("acme", [opened("F1", "Fay One", "BASIC", "2026-03-05T09:00:00Z")]),
        ("acme", [updated("F1", "2026-03-05T10:00:00Z", kyc="ENHANCED", risk="HIGH")]),
    ]


def edges(rows: list[dict[str, Any]]) -> None:
    """The edge cases of ``feature_batches`` hold their expected values."""
    by_subject = {r["subject"]: r["features"] for r in rows}
    f = {n: by_subject[n] for n in ("F1", "F2", "F3", "F4", "F5")}
    assert (f["F1"]["payments_1h"], f["F2"]["payments_1h"]) == (0, 0)  # same instant
    assert f["F1"]["kyc_level"] == 1.0  # ENHANCED from the same instant: not yet
    assert f["F3"]["kyc_level"] == 3.0 and f["F3"]["risk_rating"] == 2.0
    assert f["F3"]["payments_1h"] == 3  # 1 and 2 at exactly t - 1h, and the late 7
    assert f["F3"]["amount_1h"] == 19500.0 and f["F3"]["near_threshold_24h"] == 1
    assert f["F4"]["payments_1h"] == 2  # 3 and the late 7; 1 and 2 a microsecond out
    assert f["F5"]["payments_24h"] == 3 and f["F5"]["amount_24h"] == 695.75  # 3, 4, 7
    assert f["F1"]["counterparty_country_risk"] == 3.0 and f["F4"]["counterparty_country_risk"]


def embedded(session: FlinkSession, work: Path) -> dict[str, list[dict[str, Any]]]:
    hub = session.views.hub
    out = {}
    for view in VIEWS:
        store = SqliteFeatureStore(work / f"{view.name}.sqlite")
        try:
            out[view.name] = embedded_vectors(view, hub.log, hub.reader, store)
        finally:
            store.close()
    return out


def test_feature_vectors_on_flink_equal_the_embedded_feed(
    flink_session: FlinkSession, tmp_path: Path
) -> None:
    """Every scored event's vector, both views: equal digests (and equal rows, for the
    message); the edge cases above hold their expected values on both sides."""
    ours = embedded(flink_session, tmp_path)
    for view in VIEWS:
        theirs = flink_session.features[view.name]
        assert len(theirs) == len(ours[view.name]) > 0, view.name
        key = lambda r: (r["partition"], r["offset"])  # noqa: E731
        assert sorted(theirs, key=key) == sorted(ours[view.name], key=key), view.name
        assert vectors_digest(theirs) == vectors_digest(ours[view.name])
    edges(ours[PAYMENT_RISK.name])


def test_the_flink_functions_and_join_equal_the_embedded_feed(hub: Any) -> None:
    """Without Flink (fast): the job's Python functions, fed every record as the job's decoder
    gives it (fastavro values, PII as sealed text) and joined as the job's SQL joins (same
    entity, fact strictly before the event, series points from ``t - window - 1``), give the
    embedded vectors of the same event sets, byte for byte."""
    import io

    import fastavro

    from hub import flink_features as worker
    from ml import flink_features as ff
    from tests.differential import test_flink_accounts as accounts_tests
    from tests.differential import test_flink_positions as positions_tests

    sets = {
        "payments": feature_batches(),
        "accounts": [*accounts_tests.batches(), *feature_account_batches()],
        "quotes": positions_tests.quote_batches(),
        "trades": positions_tests.batches(),
    }
    for topic, batches in sets.items():
        for tenant, events in batches:
            hub.publisher.publish(topic, events, producer="differential", tenant=tenant)
    for view in VIEWS:
        store = SqliteFeatureStore(":memory:")
        try:
            ours = embedded_vectors(view, hub.log, hub.reader, store)
        finally:
            store.close()
        rows: list[tuple[str, int, int, tuple[Any, ...]]] = []
        for topic in ff.view_topics(view):
            for partition, end in hub.log.end_offsets(topic).items():
                for r in hub.log.read(topic, partition, 0, max(end, 1)):
                    assert r.value is not None
                    schema, _ = hub.projections.decoder.schema(int.from_bytes(r.value[1:5], "big"))
                    datum = fastavro.schemaless_reader(io.BytesIO(r.value[5:]), schema, None)
                    assert isinstance(datum, dict)
                    sealed = {
                        k: "pii:v1:sealed" if isinstance(v, bytes) else v for k, v in datum.items()
                    }
                    kind = dict(r.headers).get("ce_type", b"").decode()
                    for row in ff.extract_rows(view, topic, sealed, kind):
                        rows.append((topic, partition, r.offset, row))
        window = max(f.window_us for f in view.features)
        theirs = []
        for _, ev_part, ev_off, (kind, _, entity, t, _, payload) in rows:
            if kind != ff.EVENT:
                continue
            facts = [
                (topic, part, off, i, k, name, ft, fp)
                for topic, part, off, (k, name, fe, ft, i, fp) in rows
                if k != ff.EVENT
                and fe == entity
                and ft < t
                and (k == ff.VERSION or ft >= t - window - 1)
            ]
            import json

            got = worker.vector_of(view, json.loads(payload), facts)  # as the workers run it
            theirs.append(got | {"partition": ev_part, "offset": ev_off})
        assert len(theirs) == len(ours) > 0
        assert vectors_digest(theirs) == vectors_digest(ours), view.name
        if view is PAYMENT_RISK:
            edges(ours)
