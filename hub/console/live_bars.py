"""The Markets stream's bars, kept current from the market-bars commits instead of re-queried.

A stream starts from a snapshot: the guarded query of ``ohlcv_1m`` (under the grant the policy
engine decided for the stream's principal), taken between two batches of the runner so that it
holds exactly the batches up to a known number. Each later commit hands over its partial rows
(one per bar, source partition and batch, as stored); those of the stream's instrument and
currency, and of the tenants the grant covers, are merged in as the view merges them
(``adapters.clickhouse_views.view_sql``): sums add, ``min``/``max`` compare, ``open`` and
``first_pos`` come from the earliest ``(first_at, first_pos)``, ``close`` and ``last_pos`` from
the latest ``(last_at, last_pos)``; ``vwap`` is ``notional / volume`` cut (toward zero) to its
scale, as the view's decimal division and cast do. ``tests/service/test_console_live_bars.py``
compares the merged bars with the query after random batches.

What cannot be merged asks for a new snapshot (``stale``): a batch number that is not the next
one (a rebuild swapped the views, a batch was missed), a bar older than the snapshot's oldest
when the snapshot was cut at its limit, or a grant that masks a column the merge reads.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.ports.views import ViewGrant
from projections.types import canonical

TABLE = "ohlcv_1m"
SHOWN = ("window_start", "open", "high", "low", "close", "volume", "vwap", "events")
_SUMS = ("volume", "notional", "events")
_READ = (
    "tenant",
    "window_start",
    "window_end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "vwap",
    "events",
    "first_at",
    "first_pos",
    "last_at",
    "last_pos",
)
_EXACT = decimal.Context(prec=80)

Bar = dict[str, Any]


def snapshot_sql(instrument: str, currency: str, limit: int) -> str:
    """The bars with every column the merge reads (values already checked by the caller)."""
    return (
        f"SELECT {', '.join(_READ)} FROM {TABLE} "
        f"WHERE instrument = '{instrument}' AND currency = '{currency}' "
        f"ORDER BY window_start DESC, tenant LIMIT {int(limit)}"
    )


def mergeable(grants: Sequence[ViewGrant]) -> bool:
    """Whether the grant lets the stream merge commits: the table is granted whole (no column
    the merge reads masked or withheld)."""
    for g in grants:
        if g.name == TABLE:
            return not (set(_READ) & set(g.masked)) and set(_READ) <= set(g.columns)
    return False


class LiveBars:
    """The last ``limit`` bars of one instrument and currency as of batch ``seq``."""

    def __init__(
        self,
        instrument: str,
        currency: str,
        limit: int,
        tenant: str | None,
        snapshot: pa.Table,
        seq: int,
    ) -> None:
        self.instrument = instrument
        self.currency = currency
        self.limit = limit
        self.tenant = tenant  # None: every tenant (the grant's row filter)
        self.seq = seq
        self.stale = False
        table = canonical(snapshot)
        self._types = {name: table.schema.field(name).type for name in table.column_names}
        rows = table.to_pylist()
        self.bars: dict[tuple[str, datetime], Bar] = {
            (r["tenant"], r["window_start"]): r for r in rows
        }
        # cut at the limit: a bar at or before the oldest kept one may have been left out
        self._floor = min((r["window_start"] for r in rows), default=None)
        self._cut = len(rows) >= limit

    def apply(self, seq: int, rows: Mapping[str, Any]) -> bool:
        """Merge the commit of batch ``seq`` (its rows per table); False when nothing shown
        changed. Sets ``stale`` when the bars can no longer be kept by merging."""
        if seq <= self.seq or self.stale:
            return False
        if seq != self.seq + 1:
            self.stale = True
            return False
        self.seq = seq
        changed = False
        for part in self._partials(rows.get(TABLE)):
            key = (part["tenant"], part["window_start"])
            bar = self.bars.get(key)
            if bar is None:
                if self._cut and self._floor is not None and key[1] <= self._floor:
                    self.stale = True  # the snapshot may have cut this bar off
                    return False
                self.bars[key] = {**part, "vwap": _vwap(part, self._types["vwap"])}
            else:
                _merge(bar, part, self._types["vwap"])
            changed = True
        if len(self.bars) > 4 * self.limit:  # keep what can still be shown
            for key in sorted(self.bars, key=lambda k: (k[1], k[0]))[: -self.limit]:
                del self.bars[key]
            self._cut = True
            self._floor = min(k[1] for k in self.bars)
        return changed

    def _partials(self, got: Any) -> list[Bar]:
        """This stream's partial rows of a commit, typed as the snapshot's columns."""
        if got is None or not len(got):
            return []
        names = [c for c in _READ if c != "vwap"] + ["instrument", "currency"]
        if isinstance(got, pa.Table):
            table = got.select(names)
        else:  # the Python fold's rows
            table = pa.table({n: pa.array([r[n] for r in got]) for n in names})
        mask = pc.and_(
            pc.equal(table.column("instrument"), self.instrument),
            pc.equal(table.column("currency"), self.currency),
        )
        if self.tenant is not None:
            mask = pc.and_(mask, pc.equal(table.column("tenant"), self.tenant))
        table = table.filter(mask)
        if not table.num_rows:
            return []
        cols = [c for c in _READ if c != "vwap"]
        typed = canonical(table.select(cols))
        out = []
        for r in typed.to_pylist():
            out.append({c: _as(r[c], self._types[c]) for c in cols})
        return out

    def shown(self) -> pa.Table:
        """The last ``limit`` bars by window start, the columns ``/markets/bars`` answers."""
        keys = sorted(self.bars, key=lambda k: (k[1], k[0]))[-self.limit :]
        rows = [self.bars[k] for k in keys]
        return pa.table({c: pa.array([r[c] for r in rows], self._types[c]) for c in SHOWN})


def _as(value: Any, typ: pa.DataType) -> Any:
    if value is not None and pa.types.is_decimal(typ):
        return Decimal(value).quantize(Decimal(1).scaleb(-typ.scale), context=_EXACT)
    return value


def _vwap(bar: Bar, typ: pa.DataType) -> Decimal | None:
    volume = bar["volume"]
    if not volume:
        return None
    exact = _EXACT.divide(bar["notional"], volume)
    return exact.quantize(
        Decimal(1).scaleb(-typ.scale), rounding=decimal.ROUND_DOWN, context=_EXACT
    )


def _merge(bar: Bar, part: Bar, vwap_type: pa.DataType) -> None:
    for c in _SUMS:
        bar[c] = bar[c] + part[c]
    bar["high"] = max(bar["high"], part["high"])
    bar["low"] = min(bar["low"], part["low"])
    bar["window_end"] = max(bar["window_end"], part["window_end"])
    if (part["first_at"], part["first_pos"]) < (bar["first_at"], bar["first_pos"]):
        bar["first_at"], bar["first_pos"], bar["open"] = (
            part["first_at"],
            part["first_pos"],
            part["open"],
        )
    if (part["last_at"], part["last_pos"]) > (bar["last_at"], bar["last_pos"]):
        bar["last_at"], bar["last_pos"], bar["close"] = (
            part["last_at"],
            part["last_pos"],
            part["close"],
        )
    bar["vwap"] = _vwap(bar, vwap_type)
