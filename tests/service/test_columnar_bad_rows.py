"""``ArrowPlan.bad_rows`` (distinct-value proofs, offsets for "") against the reference masks.

The fast ``bad_rows`` may skip a rule's per-row mask when a column's distinct values prove the
whole batch clean; it must still flag exactly the rows the per-row masks flag, on batches with
and without bad rows, nulls, few or many distinct values, and after the plan has learnt which
columns are too varied to hash (``_Memo``'s ``wide``). The end-to-end comparison with the
per-record path (reasons, rule ids) is ``test_ingest_columnar``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.columnar import ArrowPlan, _Memo, build_plan, decimal_columns

NOW = datetime.now(UTC)
SCHEMA = pa.schema(
    [
        ("trade_id", pa.string()),
        ("account_id", pa.string()),
        ("instrument", pa.string()),
        ("side", pa.string()),
        ("quantity", pa.decimal128(18, 4)),
        ("price", pa.decimal128(18, 8)),
        ("currency", pa.string()),
        ("executed_at", pa.timestamp("us", tz="UTC")),
    ]
)
BAD = {
    "trade_id": ["", None],
    "account_id": ["", None],
    "instrument": ["aapl", "TOOLONGSYMBOL1", "É", "AA PL", "X\n", "", None],
    "side": ["UNKNOWN", "buy", "", None],
    "currency": ["XXX", "usd", "", None],
    "quantity": [Decimal(0), Decimal("-0.0001"), None],
    "price": [Decimal("10000000.00000001"), Decimal(-1), None],
    "executed_at": [NOW + timedelta(hours=2), None],
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path_factory.mktemp("h")))
    yield h
    h.close()


def batch(rnd: random.Random, n: int, bad_rate: float, varied: bool) -> pa.RecordBatch:
    symbols = [f"S{i}" for i in range(n)] if varied else ["AAPL", "BRK.B", "MSFT"]
    rows: list[dict[str, Any]] = []
    for i in range(n):
        r: dict[str, Any] = {
            "trade_id": f"T-{i}",
            "account_id": f"ACC-{rnd.randrange(50)}",
            "instrument": rnd.choice(symbols),
            "side": rnd.choice(["BUY", "SELL"]),
            "quantity": Decimal(rnd.randrange(1, 10_000)).scaleb(-2),
            "price": Decimal(rnd.randrange(1, 10**12)).scaleb(-8),
            "currency": rnd.choice(["USD", "EUR"]),
            "executed_at": NOW - timedelta(seconds=rnd.randrange(10**6)),
        }
        if rnd.random() < bad_rate:
            field = rnd.choice(sorted(BAD))
            r[field] = rnd.choice(BAD[field])
        rows.append(r)
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def plan_for(h: Hub, rb: pa.RecordBatch) -> tuple[ArrowPlan, pa.RecordBatch]:
    t = h.ingest.target("trades", None)
    rb = decimal_columns(rb, t.plain.parsed)
    plan = build_plan(t, rb.schema, h.ingest.publisher.targets.key_field("trades"))
    assert plan is not None
    return plan, rb


def old_required(rb: pa.RecordBatch, fields: list[str]) -> np.ndarray:
    """The required mask as it was: null or ``pc.equal(arr, "")``."""
    bad = np.zeros(rb.num_rows, np.bool_)
    for f in fields:
        arr = rb.column(rb.schema.get_field_index(f))
        bad |= ~np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.bool_)
        if pa.types.is_string(arr.type):
            eq = pc.equal(arr, pa.scalar("", arr.type)).fill_null(False)
            bad |= np.asarray(eq.to_numpy(zero_copy_only=False), np.bool_)
    return bad


def test_bad_rows_equals_reference_on_random_batches(hub: Hub) -> None:
    rnd = random.Random(17)
    plan, _ = plan_for(hub, batch(rnd, 10, 0.0, False))
    required = [r for r in hub.ingest.target("trades", None).rules.rules if r.kind == "required"]
    # The encoder's own checks alone: the rules' enums flag the same rows as the Avro enums
    bare = ArrowPlan(plan.encoder, (), None, ())
    flagged = clean = 0
    for k in range(240):
        n = rnd.choice([1, 2, 7, 64, 500, 2000])
        rate = rnd.choice([0.0, 0.0, 0.002, 0.05, 0.5, 1.0])
        rb = batch(rnd, n, rate, varied=k % 5 == 0)
        if k % 7 == 3:
            rb = rb.slice(rnd.randrange(n), n)  # a sliced batch: offsets start past 0
        rb = decimal_columns(rb, hub.ingest.target("trades", None).plain.parsed)
        now = NOW + timedelta(seconds=1)
        got, want = plan.bad_rows(rb, now), plan.bad_rows_reference(rb, now)
        assert got.dtype == np.bool_ and got.shape == (rb.num_rows,)
        assert np.array_equal(got, want), (k, np.flatnonzero(got != want))
        assert np.array_equal(bare.bad_rows(rb, now), plan.encoder.bad_rows(rb)), k
        for rule, mask in zip(plan_rules(hub), plan.masks, strict=True):
            if rule.kind == "required":
                found = mask(rb, now, _Memo(rb, set()))
                old = old_required(rb, list(rule.fields))
                none = np.zeros(rb.num_rows, np.bool_)
                assert np.array_equal(none if found is None else found, old)
        flagged += int(got.any())
        clean += int(not got.any())
    assert required and flagged > 50 and clean > 50  # both kinds of batch were exercised
    assert plan._wide  # the varied instrument column was learnt as too varied to hash


def plan_rules(h: Hub) -> list[Any]:
    return list(h.ingest.target("trades", None).rules.rules)


def test_every_injected_bad_value_is_flagged(hub: Hub) -> None:
    """Each bad value alone in an otherwise clean batch is flagged at its row, and only there."""
    rnd = random.Random(5)
    plan, _ = plan_for(hub, batch(rnd, 10, 0.0, False))
    parsed = hub.ingest.target("trades", None).plain.parsed
    for field, values in sorted(BAD.items()):
        for v in values:
            rb = batch(rnd, 300, 0.0, False)
            rows = rb.to_pylist()
            at = rnd.randrange(300)
            rows[at][field] = v
            rb = decimal_columns(pa.RecordBatch.from_pylist(rows, schema=SCHEMA), parsed)
            got = plan.bad_rows(rb, NOW)
            assert np.flatnonzero(got).tolist() == [at], (field, v)
