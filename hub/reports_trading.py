"""The daily trading summary (report kind ``trading-daily``, issue 15).

For one UTC day, from the views through the guarded query path (``hub.reports._Collector``):

- ``volumes``: per instrument and currency the trades, volume, notional, VWAP (notional /
  volume over the day's one-minute bars), open (first bar's open), high, low and close (last
  bar's close) of the day, from ``ohlcv_1m``;
- ``top_movers``: the ``TOP_MOVERS`` instruments with the largest absolute change from open to
  close over the day (derived from ``volumes``, in percent);
- ``positions``: every position with realised P&L and unrealised P&L marked to the latest quote
  (``mark_to_market``), as of the report's checkpoint (positions are current, not per day);
- ``pnl_by_account``: those summed per account and currency.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.ports.policy import Principal
    from hub.bootstrap import Hub


class Collector(Protocol):
    """What a report body needs of ``hub.reports._Collector`` (named here: no import cycle)."""

    hub: Hub
    principal: Principal
    tenant_scope: str | None  # the tenant the report is cut to; None: every tenant

    def sql(self, name: str, store: str, sql: str) -> list[dict[str, Any]]: ...

    def put(
        self, name: str, store: str, source: str, columns: list[str], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]: ...


TOP_MOVERS = 10


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def trading_summary(c: Collector, day: date) -> dict[str, Any]:
    """The trading summary of ``day``; its sums and ratios under an 80-digit decimal context
    (view columns are decimal(38, s): Python's default 28 digits would round their sums)."""
    with localcontext(Context(prec=80)):
        return _trading_summary(c, day)


def _trading_summary(c: Collector, day: date) -> dict[str, Any]:
    from projections.catalog import MARK_TO_MARKET_SQL

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    a0 = start.strftime("%Y-%m-%d %H:%M:%S")
    a1 = (start + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    volumes = c.sql(
        "volumes",
        "analytics",
        "SELECT instrument, currency, sum(events) AS trades, sum(volume) AS day_volume, "
        "sum(notional) AS day_notional, "
        "if(sum(volume) = 0, NULL, sum(notional) / sum(volume)) AS vwap, "
        "argMin(open, window_start) AS day_open, max(high) AS day_high, "
        "min(low) AS day_low, argMax(close, window_start) AS day_close "
        f"FROM ohlcv_1m WHERE window_start >= '{a0}' AND window_start < '{a1}' "
        "GROUP BY instrument, currency ORDER BY instrument, currency",
    )
    movers = []
    for row in volumes:
        opened, closed = _dec(row["day_open"]), _dec(row["day_close"])
        if opened == 0:
            continue
        change = (closed - opened) / opened * 100
        movers.append(
            {
                "instrument": row["instrument"],
                "currency": row["currency"],
                "open": row["day_open"],
                "close": row["day_close"],
                "change_percent": str(change.quantize(Decimal("0.0001"))),
            }
        )
    movers.sort(key=lambda m: (-abs(Decimal(m["change_percent"])), m["instrument"], m["currency"]))
    c.put(
        "top_movers",
        "views",
        f"from volumes: the {TOP_MOVERS} largest absolute changes from open to close, percent",
        ["instrument", "currency", "open", "close", "change_percent"],
        movers[:TOP_MOVERS],
    )
    held = c.sql(
        "positions",
        "analytics",
        "SELECT account_id, instrument, currency, quantity, avg_cost, realised_pnl, fees "
        "FROM positions ORDER BY account_id, instrument, currency",
    )
    marked = c.sql("mark_to_market", "analytics", MARK_TO_MARKET_SQL)
    marks = {(r["account_id"], r["instrument"], r["currency"]): r for r in marked}
    totals: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"positions": 0, "realised": Decimal(0), "unrealised": Decimal(0), "unmarked": 0}
    )
    for row in held:
        t = totals[(row["account_id"], row["currency"])]
        t["positions"] += 1
        t["realised"] += _dec(row["realised_pnl"])
        m = marks.get((row["account_id"], row["instrument"], row["currency"]))
        if m is None:
            t["unmarked"] += 1
        else:
            t["unrealised"] += _dec(m["unrealised_pnl"])
    by_account = [
        {
            "account_id": account,
            "currency": currency,
            "positions": t["positions"],
            "realised_pnl": str(t["realised"]),
            "unrealised_pnl": str(t["unrealised"]),
            "total_pnl": str(t["realised"] + t["unrealised"]),
            "unmarked_positions": t["unmarked"],
        }
        for (account, currency), t in sorted(totals.items())
    ]
    c.put(
        "pnl_by_account",
        "views",
        "from positions and mark_to_market: realised + unrealised P&L per account and currency "
        "(a position without a quote in its currency is counted as unmarked, not as zero)",
        [
            "account_id",
            "currency",
            "positions",
            "realised_pnl",
            "unrealised_pnl",
            "total_pnl",
            "unmarked_positions",
        ],
        by_account,
    )
    return {
        "day": day.isoformat(),
        "instruments": len(volumes),
        "trades": sum(int(r["trades"] or 0) for r in volumes),
        "top_mover": movers[0]["instrument"] if movers else None,
        "accounts": len({a["account_id"] for a in by_account}),
        "positions": len(held),
    }
