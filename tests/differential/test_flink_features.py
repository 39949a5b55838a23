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

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.sqlite_features import SqliteFeatureStore
from core.events import OutgoingEvent
from core.ports.eventlog import Record
from domain.features import PAYMENT_RISK, PRICE_ANOMALY
from ml.flink_features import embedded_vectors, vectors_digest
from tests.differential.conftest import FlinkSession

TABLE_KEY = b"t" * 32  # the feature table rows' MAC key (the hub derives its own)

# the first test to ask for the session's Flink run waits for it: minutes on a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

VIEWS = (PAYMENT_RISK, PRICE_ANOMALY)


# the vectors' MAC key the fast tests write under, as the hub's Flink job would
ROW_KEY = bytes(range(32))


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


def other_tenant_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """globex's own account F1 (acme has one of that id): its payment lies in the windows of
    acme's payments 3, 4 and 5, whose vectors (``edges``) must not count it, on either side."""
    return [("globex", [_payment(8, "F1", "7777.00", "2026-03-05T10:45:00Z")])]


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
    if "F8" in by_subject:  # globex's F1 (``other_tenant_batches``): acme's F1 is not its history
        assert by_subject["F8"]["payments_24h"] == 0 and by_subject["F8"]["kyc_level"] == 0
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
        store = SqliteFeatureStore(work / f"{view.name}.sqlite", mac_key=TABLE_KEY)
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


def test_flink_vectors_build_the_training_set_the_log_builds(flink_session: FlinkSession) -> None:
    """The session's run is `hub projection run --engine flink --all`'s: the feature views ran
    as the engine's companion jobs in the projections' statement set, their vectors were loaded
    into the FeatureVectors table (the run reports them), the status shows each job's consumer
    group at the end of its topics and its loader at the end of its result topic; a training set
    cut from those vectors has the digest of the one cut from the log."""
    from hub.ml_setup import ml_of

    session = flink_session
    hub = session.views.hub
    for view in VIEWS:
        done = session.flink[f"features.{view.name}"]
        assert done["vectors"] == len(session.features[view.name]) > 0
        assert done["digest"] == vectors_digest(session.features[view.name])
    status = {s["projection"]: s for s in session.status}
    for view in VIEWS:
        got = status[f"features.{view.name}"]
        assert got["kind"] == "companion" and got["lag"] == 0 and got["loader"]["lag"] == 0
        ends = {f"{t}/{p}": e for t in got_topics(view) for p, e in hub.log.end_offsets(t).items()}
        assert {k: v for k, v in got["positions"].items() if v} == {
            k: v for k, v in ends.items() if v
        }
    sets = ml_of(hub).training_sets
    from_log = sets.cut(PAYMENT_RISK.name)
    from_flink = sets.cut(PAYMENT_RISK.name, vectors=session.vectors)
    # the five payments labelled fraud, and the session's settled payments (label 0)
    assert {"F1", "F3", "F4", "F5", "F7"} <= {r["subject"] for r in from_log.rows}
    assert from_flink.rows == from_log.rows
    assert from_flink.digest == from_log.digest


def got_topics(view: Any) -> list[str]:
    from ml.flink_features import view_topics

    return view_topics(view)


def publish_sets(hub: Any) -> None:
    """The feature tests' event sets (the session's, without Flink) into ``hub``."""
    from tests.differential import test_flink_accounts as accounts_tests
    from tests.differential import test_flink_positions as positions_tests

    sets = {
        "payments": [*feature_batches(), *other_tenant_batches()],
        "accounts": [*accounts_tests.batches(), *feature_account_batches()],
        "quotes": positions_tests.quote_batches(),
        "trades": positions_tests.batches(),
        "payment-labels": label_batches(),
    }
    for topic, batches in sets.items():
        for tenant, events in batches:
            hub.publisher.publish(topic, events, producer="differential", tenant=tenant)


def label_batches() -> list[tuple[str, list[OutgoingEvent]]]:
    """Fraud confirmed for payments on the windows' edges: F1, F3, F4, F5 and the late F7 (a
    training set takes labelled events only)."""
    return [
        (
            "acme",
            [
                OutgoingEvent(
                    event_type="hub.payments.FraudConfirmed",
                    value={
                        "payment_id": f"F{i}",
                        "account_id": "F1",
                        "kind": "STRUCTURING",
                        "confirmed_at": "2026-03-08T09:00:00Z",
                    },
                )
                for i in (1, 3, 4, 5, 7)
            ],
        )
    ]


def worker_vectors(hub: Any, view: Any) -> list[dict[str, Any]]:
    """Every scored event's vector as the Flink job computes it, without Flink: the job's Python
    functions, fed every record as the job's decoder gives it (fastavro values, PII as sealed
    text) and joined as the job's SQL joins (same entity, fact strictly before the event, series
    points from ``t - window - 1``)."""
    import io
    import json

    import fastavro

    from hub import flink_features as worker
    from ml import flink_features as ff

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
                tenant = dict(r.headers).get("ce_tenant", b"default").decode()
                for row in ff.extract_rows(view, topic, sealed, kind, tenant):
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
        got = worker.vector_of(view, json.loads(payload), facts)  # as the workers run it
        assert got["version"] == len(facts)  # the job's vectors carry their fact count
        theirs.append(got | {"partition": ev_part, "offset": ev_off})
    return theirs


def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vector rows without their ``version`` (what the loader and the embedded side give)."""
    return [{k: v for k, v in r.items() if k != "version"} for r in rows]


def test_the_flink_functions_and_join_equal_the_embedded_feed(hub: Any) -> None:
    """Without Flink (fast): the job's functions and join (``worker_vectors``) give the
    embedded vectors of the same event sets, byte for byte."""
    publish_sets(hub)
    for view in VIEWS:
        store = SqliteFeatureStore(":memory:")
        try:
            ours = embedded_vectors(view, hub.log, hub.reader, store)
        finally:
            store.close()
        theirs = worker_vectors(hub, view)
        assert len(theirs) == len(ours) > 0
        assert vectors_digest(plain(theirs)) == vectors_digest(ours), view.name
        if view is PAYMENT_RISK:
            edges(ours)


def as_job_writes(view: Any, row: dict[str, Any]) -> Record:
    """A vector row as the job's ``upsert-kafka`` sink writes it (JSON key and value)."""
    import json

    from ml.flink_features import MAC_COLUMNS, mac_name
    from projections.flink.rowmac import COLUMN, row_mac

    key = {"ev_partition": row["partition"], "ev_offset": row["offset"]}
    vector = {k: v for k, v in row.items() if k not in ("partition", "offset")}
    value = key | {"vector": json.dumps(vector, sort_keys=True)}
    value[COLUMN] = row_mac(ROW_KEY, mac_name(view), [value[n] for n, _ in MAC_COLUMNS])
    return Record(json.dumps(value).encode(), key=json.dumps(key).encode())


def test_flink_vectors_loaded_by_the_hub_build_the_training_set_the_log_builds(hub: Any) -> None:
    """Without Flink (fast): the vectors the job writes (computed as in ``worker_vectors``,
    written as its sink writes them, an older value of one overwritten, a tombstone of another)
    are loaded by the engine's companion (``hub.flink_feature_views``, what `hub projection run
    --engine flink` loads) into the ``FeatureVectors`` table; a training set cut from them has
    the rows and digest of the one cut from the log (``verify`` recomputes it); a forged vector
    changes the digest and ``verify`` refuses it; a missing one is refused at the cut."""
    import dataclasses

    from core.errors import Conflict, InvalidInput
    from core.ports.eventlog import TopicPartition
    from hub.flink_feature_views import FlinkFeatureView
    from hub.ml_setup import feature_vectors, ml_of
    from ml.flink_features import mac_name, result_topic
    from projections.flink.rowmac import DELETE_HEADER, delete_header

    publish_sets(hub)
    view = PAYMENT_RISK
    theirs = worker_vectors(hub, view)
    store = feature_vectors(hub)  # the hub's table (ml/vectors.sqlite), which /metrics reads
    companion = FlinkFeatureView(view, hub.log, store, ROW_KEY)
    companion.prepare()
    topic = result_topic(view)
    first, second = theirs[0], theirs[1]
    # an older vector of the first event (fewer facts), replaced by the job's newer one
    stale = first | {"features": first["features"] | {"payments_1h": 99.0}}
    stale["version"] -= 1
    gone = second | {"offset": 10_000}
    hub.log.append(topic, [as_job_writes(view, stale), as_job_writes(view, gone)])
    deleted = as_job_writes(view, gone)
    # a delete only the row key's holder signs removes it; a bare tombstone (anyone producing to
    # flink.*) of a genuine vector is ignored, the vector stays
    at = [gone["partition"], gone["offset"]]
    signed = delete_header(ROW_KEY, mac_name(view), at, gone["version"])
    hub.log.append(
        topic,
        [
            dataclasses.replace(deleted, value=None, headers=((DELETE_HEADER, signed),)),
            dataclasses.replace(as_job_writes(view, first), value=None),
        ],
    )
    hub.log.append(topic, [as_job_writes(view, r) for r in theirs])
    # what the job committed: every record of the view's topics (as after a bounded run)
    covers = {
        TopicPartition(t, p): e for t in companion.topics for p, e in hub.log.end_offsets(t).items()
    }
    hub.log.commit_offsets(companion.group, covers)
    done = companion.load()
    assert done["vectors"] == len(theirs) and done["digest"] == vectors_digest(plain(theirs))
    assert companion._loader.ignored_tombstones == 1  # the bare one
    assert store.covers(view.name) == covers
    assert companion.loader()["lag"] == 0 and companion.load()["read"] == 0  # resumes at its end

    sets = ml_of(hub).training_sets
    from_log, from_flink = sets.cut(view.name), sets.cut(view.name, vectors=store)
    assert from_flink.rows == from_log.rows and len(from_log.rows) == 5
    assert from_flink.digest == from_log.digest
    assert sets.verify(from_flink.manifest).digest == from_flink.digest
    assert from_flink.manifest["positions"] == from_log.manifest["positions"]

    # a vector MACed under the jobs' key (its holder), of a version above the held one
    forged = next(r for r in theirs if r["subject"] == "F3")
    forged = forged | {"features": forged["features"] | {"kyc_level": 0.0}}
    hub.log.append(topic, [as_job_writes(view, forged | {"version": forged["version"] + 1})])
    companion.load()
    poisoned = sets.cut(view.name, vectors=store)
    assert poisoned.digest != from_log.digest
    with pytest.raises(Conflict, match="digest"):
        sets.verify(poisoned.manifest)
    # a vector the job did not write (missing): refused at the cut, naming the event
    f5 = next(r for r in theirs if r["subject"] == "F5")
    f5_at = [f5["partition"], f5["offset"]]
    f5_gone = delete_header(ROW_KEY, mac_name(view), f5_at, f5["version"])
    tombstone = dataclasses.replace(as_job_writes(view, f5), value=None)
    hub.log.append(topic, [dataclasses.replace(tombstone, headers=((DELETE_HEADER, f5_gone),))])
    companion.load()
    with pytest.raises(Conflict, match=f"offset {f5['offset']}"):
        sets.cut(view.name, vectors=store)
    # a record that is no vector of the view: refused, nothing of its load stored
    bad = as_job_writes(view, f5 | {"features": {"x": 1.0}})
    at = store.position(view.name)
    hub.log.append(topic, [bad])
    with pytest.raises(InvalidInput, match="not a vector of view"):
        companion.load()
    assert store.position(view.name) == at
    store.close()


def load_vectors(hub: Any, view: Any, rows: list[dict[str, Any]], covers: dict[Any, int]) -> None:
    """``rows`` written to the view's result topic as the job's sink writes them, the job's
    group committed at ``covers``, then loaded by the engine's companion (what `hub projection
    run --engine flink` does) into the hub's table (``hub.ml_setup.feature_vectors``)."""
    from hub.flink_feature_views import FlinkFeatureView
    from hub.ml_setup import feature_vectors
    from ml.flink_features import result_topic

    store = feature_vectors(hub)
    try:
        companion = FlinkFeatureView(view, hub.log, store, ROW_KEY)
        companion.prepare()
        if rows:
            hub.log.append(result_topic(view), [as_job_writes(view, r) for r in rows])
        hub.log.commit_offsets(companion.group, covers)
        companion.load()
    finally:
        store.close()


def raise_covers(hub: Any, view: Any, covers: dict[Any, int]) -> None:
    """Covers raised past the stored vectors (the loader no longer takes a group moved past
    them: ``hub.flink_feature_views``; a raw edit of the file's covers is refused since session
    21: ``tests/adversarial/test_s21_flink_covers_mac.py``), written under the hub's key."""
    from hub.ml_setup import feature_vectors

    store = feature_vectors(hub)
    try:
        store.apply(view.name, [], [], store.position(view.name), covers)
    finally:
        store.close()


def test_the_scorer_reads_the_flink_vectors_and_scores_as_the_engine(tmp_path: Path) -> None:
    """Without Flink (fast): ``HUB_FEATURE_ENGINE=flink``. Two hubs hold the same log (the
    feature tests' event sets) and the same champion; on one the scoring consumer computes the
    vectors (the embedded feed and engine), on the other it reads those the Flink job's functions
    computed (``worker_vectors``), written as the job's sink writes them and loaded by the
    engine's companion. The predictions are equal, vector for vector and score for score. The
    flink scorer scores nothing before a load (it waits: lag), only the covered events after a
    partial one; the loader does not cover an event without a vector (a group moved past
    it), and the scorer refuses a covered event without a vector (covers raised in the
    file), naming it, committing nothing."""
    from core.errors import Conflict
    from core.ports.eventlog import TopicPartition
    from hub.bootstrap import bootstrap
    from hub.ml_setup import ml_of
    from hub.settings import load_settings
    from ml.flink_features import view_topics
    from tests.service.test_ml import ALICE, BOB, _register_small_model

    view = PAYMENT_RISK
    got: dict[str, list[dict[str, Any]]] = {}
    for engine in ("embedded", "flink"):
        environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_ENGINE": engine}
        hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / engine))
        try:
            publish_sets(hub)
            ml = ml_of(hub)
            assert (ml.vectors is None) == (engine == "embedded")
            version = _register_small_model(hub)
            change = ml.changes.propose_champion(ALICE, view.name, version, engine)
            ml.changes.approve(BOB, change.change_id)
            consumer = ml.consumer(view.name)
            if engine == "flink":
                assert consumer.run_until_idle() == 0 and consumer.lag() > 0  # waits for a load
                theirs = worker_vectors(hub, view)
                ends = {
                    TopicPartition(t, p): e
                    for t in view_topics(view)
                    for p, e in hub.log.end_offsets(t).items()
                }
                first = TopicPartition(view.event_topic, 0)
                half = ends | {first: ends[first] // 2}
                load_vectors(hub, view, [r for r in theirs if r["partition"] != 0], half)
                load_vectors(hub, view, [r for r in theirs if r["partition"] == 0], half)
                consumer.run_until_idle()
                scored = {p["source"] for p in ml.predictions(view.name)}
                want = {f"{view.event_topic}/{r['partition']}/{r['offset']}" for r in theirs}
                below = {s for s in want if not s.startswith(f"{view.event_topic}/0/")}
                below |= {
                    f"{view.event_topic}/0/{r['offset']}"
                    for r in theirs
                    if r["partition"] == 0 and r["offset"] < half[first]
                }
                assert scored == below and scored != want and consumer.lag() > 0
                load_vectors(hub, view, [], ends)
            consumer.run_until_idle()
            assert consumer.lag() == 0
            got[engine] = sorted(ml.predictions(view.name), key=lambda p: p["source"])
            if engine == "flink":
                by_source = {
                    f"{view.event_topic}/{r['partition']}/{r['offset']}": r for r in theirs
                }
                for p in got[engine]:
                    assert json.loads(p["features"]) == by_source[p["source"]]["features"]
                # a covered scored event without a vector: refused, nothing committed
                publish_more(hub)
                lag = consumer.lag()
                ends = {
                    TopicPartition(t, p): e
                    for t in view_topics(view)
                    for p, e in hub.log.end_offsets(t).items()
                }
                load_vectors(hub, view, [], ends)  # the loader keeps the covers below F99
                assert consumer.run_until_idle() == 0 and consumer.lag() == lag
                raise_covers(hub, view, ends)  # covers raised in the file: the scorer refuses
                with pytest.raises(Conflict, match="has no stored vector of view 'payment_risk'"):
                    consumer.run_until_idle()
                assert consumer.lag() == lag
                # a vector at its place for another entity (another log's): refused as well
                (new,) = [
                    (p, r["offset"])
                    for p in hub.log.end_offsets(view.event_topic)
                    for r in hub.reader.read(view.event_topic, p, 0, 1000)
                    if r["value"].get("payment_id") == "F99"
                ]
                wrong = theirs[0] | {"partition": new[0], "offset": new[1]}
                load_vectors(hub, view, [wrong], ends)
                with pytest.raises(Conflict, match="holds another log's vectors"):
                    consumer.run_until_idle()
                assert consumer.lag() == lag
        finally:
            hub.close()
    flink, embedded = got["flink"], got["embedded"]
    assert len(flink) == len(embedded) == 8  # acme's 7 and globex's F8

    def same(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ("latency_us", "scored_at")}

    assert [same(p) for p in flink] == [same(p) for p in embedded]


def publish_more(hub: Any) -> None:
    hub.publisher.publish(
        "payments",
        [_payment(99, "F9", "10.00", "2026-03-07T10:00:00Z")],
        producer="differential",
        tenant="acme",
    )


def champion(hub: Any, name: str) -> None:
    """A small logistic model of view ``payment_risk`` as ``name``'s champion (fitted on
    synthetic vectors with a fixed seed: every name gets the same coefficients)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from hub.ml_setup import ml_of
    from tests.service.test_ml import ALICE, BOB

    ml = ml_of(hub)
    names = list(PAYMENT_RISK.names)
    x = np.random.default_rng(1).normal(size=(200, len(names)))
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    mv = ml.models.register(
        ALICE,
        name,
        model,
        family="sklearn.LogisticRegression",
        features=names,
        threshold=0.5,
        manifest={"view": PAYMENT_RISK.name},
        metrics={},
        reference={n: list(x[:, i]) for i, n in enumerate(names)},
    )
    change = ml.changes.propose_champion(ALICE, name, mv.version, "differential")
    ml.changes.approve(BOB, change.change_id)


def test_the_scorer_on_flinks_vectors_scores_as_the_engine(flink_session: FlinkSession) -> None:
    """With Flink: on the views hub (Kafka), the scoring consumer reading the vectors the
    session's job computed (loaded into its FeatureVectors table, as with
    ``HUB_FEATURE_ENGINE=flink``) and the consumer computing them score every payment alike:
    equal vectors, digests, scores and decisions. Two model names with the same coefficients
    (one consumer group each on the one log)."""
    from hub.ml_setup import ml_of
    from ml.scoring import ScoringConsumer
    from ml.stored_vectors import StoredVectors

    hub = flink_session.views.hub
    ml = ml_of(hub)
    got = {}
    for name, stored in (("fv_engine", None), ("fv_flink", flink_session.vectors)):
        champion(hub, name)
        scorer = ml.scorer(name)
        vectors = None if stored is None else StoredVectors(PAYMENT_RISK, stored)
        consumer = ScoringConsumer(
            hub.log,
            hub.reader,
            hub.publisher,
            ml.feed(PAYMENT_RISK),
            scorer,
            positions=ml.positions,
            vectors=vectors,
        )
        consumer.run_until_idle()
        assert consumer.lag() == 0
        got[name] = sorted(ml.predictions(name), key=lambda p: p["source"])
    keep = ("source", "subject", "entity", "features", "feature_digest", "score", "decision")
    engine, flink = ([{k: p[k] for k in keep} for p in got[n]] for n in ("fv_engine", "fv_flink"))
    assert len(flink) == len(flink_session.features[PAYMENT_RISK.name]) > 0
    assert flink == engine
