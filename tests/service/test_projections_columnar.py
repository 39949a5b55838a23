"""Differential tests: the SQL path (column-wise Avro decode + ClickHouse SQL folds) and the
Python path (fastavro + ``projections.folds``, the reference) give identical view digests for the
same events, across batch sizes, partitions, tenants, out-of-order and late events (both late
modes), a poison record and time travel."""

from __future__ import annotations

import random
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pytest

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from core.ports.views import Target
from core.projection import to_micros
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections.catalog import by_name
from projections.columnar import Unsupported, decode_values
from projections.runner import Bound

pytest.importorskip("chdb")

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def make_hub(data: Path, **kw):
    kw.setdefault("projection_autostart", False)
    return bootstrap(load_settings(environ={}, data_dir=data, **kw))


def trades(n: int, seed: int = 7) -> list[OutgoingEvent]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        # mostly increasing time, with jumps back of up to 7 minutes (late for 1 m windows)
        ts = T0 + i * 2_000_000 - (rnd.randrange(420) * 1_000_000 if i % 11 == 0 else 0)
        value = {
            "trade_id": f"t{i}",
            "account_id": f"A{rnd.randrange(6)}",
            "instrument": f"XS{rnd.randrange(3)}",
            "side": rnd.choice(["BUY", "SELL"]),
            "quantity": f"{rnd.randrange(1, 10**6)}.{rnd.randrange(10**4):04d}",
            "price": f"{rnd.randrange(1, 10**5)}.{rnd.randrange(10**8):08d}",
            "currency": rnd.choice(["USD", "EUR"]),
            "fees": f"{rnd.randrange(100)}.{rnd.randrange(100):02d}",
            "executed_at": ts,
        }
        if i % 5 == 0:
            value["trader_id"] = f"tr{i}"
        out.append(OutgoingEvent(value=value, key=value["account_id"]))
    return out


def payments(n: int, seed: int = 3) -> list[OutgoingEvent]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        day = T0 + (i // 40) * 86_400_000_000 - (2 * 86_400_000_000 if i % 17 == 0 else 0)
        base = {"payment_id": f"P{i}", "account_id": f"A{rnd.randrange(5)}"}
        amount = rnd.choice(
            ["9000.00", "9999.99", "10000.00", "8999.99", f"{rnd.randrange(99999)}.25"]
        )
        out.append(
            OutgoingEvent(
                event_type="hub.payments.PaymentInitiated",
                key=base["account_id"],
                value={
                    **base,
                    "amount": amount,
                    "currency": rnd.choice(["EUR", "USD"]),
                    "counterparty_name": "x",
                    "counterparty_iban": "y",
                    "counterparty_country": rnd.choice(["DE", "FR"]),
                    "initiated_at": day + rnd.randrange(86_400_000_000),
                },
            )
        )
        if i % 3 == 0:
            out.append(
                OutgoingEvent(
                    event_type="hub.payments.PaymentSettled",
                    key=base["account_id"],
                    value={
                        **base,
                        "amount": amount,
                        "currency": "EUR",
                        "initiated_at": day,
                        "settled_at": day + 1,
                    },
                )
            )
    return out


def digests_of(h, name: str, columnar: bool, batch: int, bound: Bound | None = None):
    ps = h.projections
    proj = by_name(name)
    target = Target(name, f"{'sql' if columnar else 'py'}_{batch}")
    store = ps.store(proj.store)
    store.drop(target, proj.tables)
    runner = ps._new_runner(proj, target)
    runner.columnar = columnar
    runner.batch_records = batch
    runner.open()
    runner.catch_up(bound)
    got = ps.digest(name, target, save=False)
    store.drop(target, proj.tables)
    return got, runner.columnar_batches


@pytest.mark.parametrize("mode", ["update", "side"])
def test_sql_and_python_paths_give_identical_digests(tmp_path, mode):
    h = make_hub(tmp_path / "d", projection_allowed_lateness_s=60, projection_late_mode=mode)
    try:
        h.publisher.publish("trades", trades(700), producer="t", tenant="acme")
        h.publisher.publish("trades", trades(300, seed=9), producer="t", tenant="globex")
        h.publisher.publish("payments", payments(400), producer="t", tenant="acme")
        for name in ("market_bars", "payment_aggregates"):
            # currency is part of the bar key, so the views depend neither on the path nor on
            # how the log was cut into batches (one instrument trades in USD and EUR here)
            first = None
            for batch in (10_000, 97):
                ref, n_py = digests_of(h, name, False, batch)
                assert n_py == 0
                got, n_sql = digests_of(h, name, True, batch)
                assert n_sql > 0  # the SQL path really ran
                assert got == ref, (name, batch)
                assert first is None or ref == first, (name, "batching changed the views")
                first = ref
                assert any(v["rows"] for v in ref.values())
                if mode == "side":
                    assert ref[f"{name}_late"]["rows"] > 0  # late events were exercised
    finally:
        h.close()


def test_poison_batches_fall_back_to_python_and_time_travel_matches(tmp_path):
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("trades", trades(50), producer="t", tenant="acme")
        h.log.append("trades", [Record(value=b"\x00\x00\x00\x00\x63garbage", key=b"A1")])
        h.publisher.publish("trades", trades(50, seed=1), producer="t", tenant="acme")
        ref, _ = digests_of(h, "market_bars", False, 1000)
        got, _ = digests_of(h, "market_bars", True, 1000)
        assert got == ref
        ends = {("trades", p): 20 for p in h.log.end_offsets("trades")}
        ref, _ = digests_of(h, "market_bars", False, 7, Bound(ends))
        got, n = digests_of(h, "market_bars", True, 7, Bound(ends))
        assert got == ref and n > 0
    finally:
        h.close()


def test_column_decoder_matches_fastavro(tmp_path):
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("trades", trades(300), producer="t", tenant="acme")
        h.publisher.publish("payments", payments(100), producer="t", tenant="acme")
        dec = h.projections.decoder
        for topic in ("trades", "payments"):
            recs = h.log.read(topic, 0, 0, 10_000)
            by_id: dict[int, list] = {}
            for r in recs:
                by_id.setdefault(int.from_bytes(r.value[1:5], "big"), []).append(r)
            for group in by_id.values():
                tbl, _ = decode_values([r.value for r in group], lambda i: dec.schema(i)[0])
                want = [
                    {k: to_micros(v) if hasattr(v, "tzinfo") else v for k, v in ev.items()}
                    for ev in (dec.decode(r).value for r in group)
                ]
                assert tbl.to_pylist() == want
        with pytest.raises(Unsupported):
            decode_values([b"\x00\x00\x00\x00\x01\x80"], lambda i: dec.schema(1)[0])
        # a decimal wider than 64 bits declines (the Python path handles it)
        wide = D("123456789012345.6789")
        assert isinstance(pa.scalar(wide), pa.Scalar)
    finally:
        h.close()


def test_batch_decode_gives_what_the_record_decoder_gives(tmp_path, monkeypatch):
    """``Decoder.decode_batch`` (column-wise, used by entity folds such as positions) yields the
    very Events ``Decoder.decode`` (fastavro, the reference) yields: same values and types
    (Decimal with the schema's scale, aware UTC datetimes, None for absent optionals)."""
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("trades", trades(300), producer="t", tenant="acme")
        h.publisher.publish("payments", payments(100), producer="t", tenant="globex")
        dec = h.projections.decoder
        for topic in ("trades", "payments"):
            recs = h.log.read(topic, 0, 0, 10_000)
            by_id: dict[int, list] = {}
            for r in recs:
                by_id.setdefault(int.from_bytes(r.value[1:5], "big"), []).append(r)
            for group in by_id.values():
                got = dec.decode_batch(group)
                want = [dec.decode(r) for r in group]
                assert got == want
                for g, w in zip(got, want, strict=True):
                    assert [type(v) for v in g.value.values()] == [
                        type(v) for v in w.value.values()
                    ]
                    assert [str(v) for v in g.value.values()] == [str(v) for v in w.value.values()]
            if len(by_id) > 1:  # several writer schemas in one batch: the caller decodes per record
                assert dec.decode_batch(recs) is None
        assert any(
            r.value.get("trader_id") is None
            for r in dec.decode_batch(h.log.read("trades", 0, 0, 50)) or []
        )
        # the positions view (an entity fold) is the same from either decoder
        fast, _ = digests_of(h, "positions", False, 97)
        with monkeypatch.context() as m:
            m.setattr(type(dec), "decode_batch", lambda self, recs: None)
            slow, _ = digests_of(h, "positions", False, 97)
        assert fast == slow and fast["positions"]["rows"] > 0
        poison = [Record(value=b"\x00\x00\x00\x00\x63garbage", key=b"A1")]
        h.log.append("trades", poison)
        tail = h.log.read("trades", 0, 0, 10_000)
        assert dec.decode_batch(tail) is None  # a record it cannot take: per record, poison
    finally:
        h.close()
