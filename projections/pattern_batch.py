"""One partition batch of stored records as the pattern engines read it, decoded column-wise.

``PatternBatch.of(records, schema_of)`` reads the envelope of every record once (``ce_time``,
``ce_type``, ``ce_tenant``; a record carrying one twice is skipped, and so is one without a
``ce_tenant``: see ``claimed``), parses the event times of the
canonical ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form with numpy (any other form through
``patterns.ms_of``, record by record) and decodes the Avro values column-wise
(``projections.columnar``; when it declines, record by record with fastavro, the reference).
``structuring_items`` / ``spike_items`` then pick a pattern's events with array masks (the
near-threshold band is compared on the unscaled decimals) and build Python values only for the
picked rows: a payment far from the threshold costs no ``Decimal``.

The items are exactly what ``patterns.pattern_events`` + ``find_matches`` read from the same
records (``tests/unit/test_pattern_state.py`` compares both paths).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

import fastavro
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.ports.eventlog import StoredRecord
from domain.envelope import duplicated_envelope_header
from projections.columnar import Unsupported, decode_values
from projections.pattern_state import Item, spike_quote, spike_trade, structuring_item
from projections.patterns import (
    PAYMENT_INITIATED,
    QUOTE_PUBLISHED,
    TRADE_EXECUTED,
    PriceSpike,
    Structuring,
    ms_of,
)


def claimed(headers: Mapping[str, bytes]) -> bool:
    """Whether a record (its headers as the log's reader hands them over) carries the hub's
    tenant claim. The Kafka reader drops the ``ce_tenant`` of a data record whose record MAC
    fails or is absent (``adapters.kafka_log.auth``: a broker producer's forgery, a plain
    producer's record), and the hub writes one on every record it publishes. A record without
    one must neither move the pattern engines' event time nor count as an event: its
    ``ce_time`` is anyone's, and one dated ahead on each partition would make every genuine
    event after it late (no alert). The Flink jobs drop the same records before their
    watermark (``hub_tenant_ok``, ``projections.flink.cep``)."""
    return "ce_tenant" in headers


SchemaOf = Callable[[int], tuple[Any, str]]  # schema id -> (fastavro-parsed schema, record name)
Bools = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
_EXACT = Context(prec=100)  # the band edges times 10**scale, exact
_CANON = 27  # len("2026-03-02T09:00:00.000000Z")
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, *range(20, 26)])
_SEPS = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":", 19: b".", 26: b"Z"}


def event_times(stamps: Sequence[bytes]) -> I64:
    """Milliseconds since the epoch of ``ce_time`` header values, as ``ms_of`` gives them."""
    n = len(stamps)
    out = np.zeros(n, np.int64)
    if not n:
        return out
    lens = np.fromiter(map(len, stamps), np.int64, n)
    canon = lens == _CANON
    idx = np.flatnonzero(canon)
    slow = np.flatnonzero(~canon).tolist()
    if len(idx):
        raw = b"".join(stamps[i] for i in idx.tolist())
        m = np.frombuffer(raw, np.uint8).reshape(len(idx), _CANON).astype(np.int64)
        d = m[:, _DIGITS] - 48
        good = ((d >= 0) & (d <= 9)).all(axis=1)
        for pos, sep in _SEPS.items():
            good &= m[:, pos] == sep[0]

        def num(a: int, b: int) -> I64:
            v = np.zeros(len(idx), np.int64)
            for j in range(a, b):
                v = v * 10 + (m[:, j] - 48)
            return v

        y, mo, day = num(0, 4), num(5, 7), num(8, 10)
        h, mi, s, us = num(11, 13), num(14, 16), num(17, 19), num(20, 26)
        # from 1970 (ms_of's arithmetic) and day <= 28 (every month has it); others go slow
        good &= (y >= 1970) & (mo >= 1) & (mo <= 12) & (day >= 1) & (day <= 28)
        good &= (h < 24) & (mi < 60) & (s < 60)
        y = y - (mo <= 2)  # days from civil (H. Hinnant), proleptic Gregorian
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (mo + np.where(mo > 2, -3, 9)) + 2) // 5 + day - 1
        days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
        ms = days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + us // 1000
        out[idx[good]] = ms[good]
        slow += idx[~good].tolist()
    for i in slow:
        out[i] = ms_of(stamps[i].decode("utf-8", "replace"))
    return out


@dataclass(frozen=True, slots=True)
class PatternBatch:
    """Records of one topic partition with an event time and a value (the others are left
    out, as ``pattern_events`` does), their envelope and decoded fields."""

    topic: str
    partition: int
    offsets: I64
    at_ms: I64
    log_ms: I64  # the records' append times (``StoredRecord.timestamp_ms``)
    types: list[str]
    tenants: list[str]
    fields: pa.Table | None  # column-wise decoded values, or
    datums: list[Mapping[str, Any]] | None  # the values decoded record by record

    @classmethod
    def of(cls, records: Sequence[StoredRecord], schema_of: SchemaOf) -> PatternBatch:
        if not records:
            raise ValueError("PatternBatch.of needs at least one record")
        first = records[0]
        kept: list[StoredRecord] = []
        stamps: list[bytes] = []
        types: list[bytes | None] = []
        tenants: list[str] = []
        tenant_of: dict[bytes, str] = {}
        for r in records:
            h = dict(r.headers)
            if len(h) != len(r.headers) and duplicated_envelope_header(r.headers):
                continue  # no copy is picked (as pattern_events)
            stamp = h.get("ce_time")
            if stamp is None or r.value is None or not claimed(h):
                continue  # no event time, or not the hub's (neither its time nor its event)
            kept.append(r)
            stamps.append(stamp)
            types.append(h.get("ce_type"))
            t = h["ce_tenant"]
            tenant = tenant_of.get(t)
            if tenant is None:
                tenant = tenant_of[t] = t.decode("utf-8", "replace")
            tenants.append(tenant)
        offsets = np.fromiter((r.offset for r in kept), np.int64, len(kept))
        values = [r.value for r in kept]
        fields: pa.Table | None = None
        datums: list[Mapping[str, Any]] | None = None
        names: list[str]
        try:
            fields, ids = decode_values(values, lambda i: schema_of(i)[0])
            names = [schema_of(i)[1] for i in ids.tolist()] if None in types else []
        except Unsupported:
            datums, names = [], []
            for v in values:
                assert v is not None
                schema, name = schema_of(int.from_bytes(v[1:5], "big"))
                datum = fastavro.schemaless_reader(io.BytesIO(v[5:]), schema, None)
                datums.append(datum if isinstance(datum, dict) else {})
                names.append(name)
        event_types = [
            names[i] if t is None else t.decode("utf-8", "replace") for i, t in enumerate(types)
        ]
        return cls(
            first.topic,
            first.partition,
            offsets,
            event_times(stamps),
            np.fromiter((r.timestamp_ms for r in kept), np.int64, len(kept)),
            event_types,
            tenants,
            fields,
            datums,
        )

    def is_type(self, event_type: str) -> Bools:
        return np.fromiter((t == event_type for t in self.types), bool, len(self.types))

    def column(self, name: str, rows: I64) -> list[Any]:
        """The Python values of field ``name`` at ``rows`` (None where absent)."""
        if self.datums is not None:
            return [self.datums[i].get(name) for i in rows.tolist()]
        if self.fields is None or name not in self.fields.column_names:
            return [None] * len(rows)
        arr = self.fields.column(name).combine_chunks().take(pa.array(rows))
        if pa.types.is_decimal(arr.type):
            return _decimals(arr)
        return arr.to_pylist()  # type: ignore[no-any-return]

    def near(self, p: Structuring, rows: I64) -> Bools:
        """Whether ``amount`` at ``rows`` is in the pattern's near-threshold band."""
        if self.datums is None and self.fields is not None and "amount" in self.fields.column_names:
            arr = self.fields.column("amount").combine_chunks().take(pa.array(rows))
            if pa.types.is_decimal(arr.type) and not arr.null_count:
                unscaled = _unscaled(arr)
                scale = Decimal(10) ** arr.type.scale
                lo, hi = (
                    _ceil(_EXACT.multiply(p.floor, scale)),
                    _ceil(_EXACT.multiply(p.threshold, scale)),
                )
                return (unscaled >= lo) & (unscaled < hi)
        return np.fromiter(
            (v is not None and p.near(Decimal(v)) for v in self.column("amount", rows)),
            bool,
            len(rows),
        )


def _unscaled(arr: pa.Array) -> I64:
    # the columnar decoder keeps unscaled values within 64 bits: the low word of each
    words = np.frombuffer(arr.buffers()[1], np.int64, 2 * (arr.offset + len(arr)))
    return words[2 * arr.offset :: 2].copy()


def _decimals(arr: pa.Array) -> list[Any]:
    scale = -arr.type.scale
    exact = _EXACT
    out: list[Any] = [Decimal(n).scaleb(scale, exact) for n in _unscaled(arr).tolist()]
    if arr.null_count:
        out = [None if null else v for v, null in zip(out, arr.is_null().to_pylist(), strict=True)]
    return out


def _ceil(v: Decimal) -> int:
    """The smallest integer >= ``v``, clamped into int64 (the unscaled values fit in it)."""
    n = int(v.to_integral_value(rounding="ROUND_CEILING"))
    return max(-(2**63), min(2**63 - 1, n))


def structuring_items(
    p: Structuring, b: PatternBatch, ok: Bools
) -> list[tuple[tuple[str, str], Item]]:
    """(partition key, item) of the batch's near-threshold payments not dropped as late."""
    if b.topic != p.topic:
        return []
    rows = np.flatnonzero(ok & b.is_type(PAYMENT_INITIATED))
    rows = rows[b.near(p, rows)]
    if not len(rows):
        return []
    accounts, amounts = b.column("account_id", rows), b.column("amount", rows)
    out = []
    for i, account, amount in zip(rows.tolist(), accounts, amounts, strict=True):
        item = structuring_item(int(b.at_ms[i]), b.partition, int(b.offsets[i]), Decimal(amount))
        out.append(((b.tenants[i], account), item))
    return out


def spike_items(p: PriceSpike, b: PatternBatch, ok: Bools) -> list[tuple[str, Item]]:
    """(instrument, item) of the batch's quotes or trades not dropped as late."""
    out: list[tuple[str, Item]] = []
    if b.topic == p.quotes_topic:
        rows = np.flatnonzero(ok & b.is_type(QUOTE_PUBLISHED))
        if len(rows):
            at, off = b.at_ms[rows].tolist(), b.offsets[rows].tolist()
            cols = zip(b.column("instrument", rows), b.column("ask", rows), at, off, strict=True)
            for instrument, ask, t, o in cols:
                out.append((instrument, spike_quote(t, b.partition, o, Decimal(ask))))
    if b.topic == p.trades_topic:
        rows = np.flatnonzero(ok & b.is_type(TRADE_EXECUTED))
        if len(rows):
            at, off = b.at_ms[rows].tolist(), b.offsets[rows].tolist()
            tenants = [b.tenants[i] for i in rows.tolist()]
            cols2 = zip(
                b.column("instrument", rows),
                b.column("price", rows),
                b.column("trade_id", rows),
                tenants,
                at,
                off,
                strict=True,
            )
            for instrument, price, trade_id, tenant, t, o in cols2:
                item = spike_trade(t, b.partition, o, tenant, trade_id, Decimal(price))
                out.append((instrument, item))
    return out


def items_of(p: Structuring | PriceSpike, b: PatternBatch, ok: Bools) -> list[tuple[Any, Item]]:
    if isinstance(p, Structuring):
        return list(structuring_items(p, b, ok))
    return list(spike_items(p, b, ok))
