"""The shipped projection definitions (data) and their lookup."""

from __future__ import annotations

from projections import folds, sqlfolds
from projections.model import Column, ColumnType, EntityRule, Projection, Table

S: ColumnType = "string"
N: ColumnType = "int"
T: ColumnType = "timestamp"


def _dec(name: str, scale: int, agg: str = "value", **kw: object) -> Column:
    return Column(name, "decimal", agg, scale, **kw)  # type: ignore[arg-type]


def late_table(projection: str) -> Table:
    """The late side output of a windowed projection (its fold returns it as ``late_events``)."""
    return Table(
        f"{projection}_late",
        "append",
        (
            Column("src_topic", S, "key"),
            Column("src_partition", N, "key"),
            Column("src_offset", N, "key"),
            Column("view", S, "key"),  # one late event can miss several windows
            Column("tenant", S),
            Column("window_start", T),
            Column("event_at", T),
        ),
        "Events that arrived after their window closed (late_mode=side).",
    )


def _bars(name: str) -> Table:
    return Table(
        name,
        "aggregate",
        (
            Column("tenant", S, "key"),
            Column("instrument", S, "key"),
            Column("window_start", T, "key"),
            Column("window_end", T, "max"),
            Column("currency", S, "max"),
            _dec("open", 8, "first"),
            _dec("high", 8, "max"),
            _dec("low", 8, "min"),
            _dec("close", 8, "last"),
            _dec("volume", 4, "sum"),
            _dec("notional", 12, "sum"),
            _dec("vwap", 8, "derived", nullable=True, expr="notional/volume"),
            Column("events", N, "sum"),
            Column("first_at", T, "min"),
            Column("first_pos", N, "first"),
            Column("last_at", T, "max"),
            Column("last_pos", N, "last"),
        ),
        "OHLCV and VWAP per instrument and event-time window.",
    )


MARKET_BARS = Projection(
    name="market_bars",
    store="analytics",
    topics=("trades",),
    tables=(*(_bars(n) for n, _, _ in folds.BAR_WINDOWS), late_table("market_bars")),
    fold=folds.fold_bars,
    columnar=sqlfolds.columnar_bars,
    windowed=True,
    doc="Trades into OHLCV/VWAP bars: tumbling 1 m and 1 h, hopping 5 m every 1 m.",
)

POSITIONS = Projection(
    name="positions",
    store="analytics",
    topics=("trades",),
    tables=(
        Table(
            "positions",
            "entity",
            (
                Column("tenant", S, "key"),
                Column("account_id", S, "key"),
                Column("instrument", S, "key"),
                Column("currency", S),
                _dec("quantity", 4),
                _dec("avg_cost", 8),
                _dec("realised_pnl", 12),
                _dec("fees", 2),
                Column("trades", N),
                Column("last_trade_at", T),
            ),
            "Position and realised P&L (average cost) per account and instrument.",
        ),
    ),
    entities=(
        EntityRule(
            "positions", ("hub.trading.TradeExecuted",), folds.position_key, folds.fold_position
        ),
    ),
)

PAYMENT_AGGREGATES = Projection(
    name="payment_aggregates",
    store="analytics",
    topics=("payments",),
    tables=(
        Table(
            "payment_volumes_1d",
            "aggregate",
            (
                Column("tenant", S, "key"),
                Column("day", T, "key"),
                Column("currency", S, "key"),
                Column("country", S, "key"),
                Column("events", N, "sum"),
                _dec("amount", 2, "sum"),
            ),
            "Initiated payment count and volume per day and corridor (currency, country).",
        ),
        Table(
            "aml_daily",
            "aggregate",
            (
                Column("tenant", S, "key"),
                Column("account_id", S, "key"),
                Column("day", T, "key"),
                Column("currency", S, "key"),
                Column("events", N, "sum"),
                _dec("amount", 2, "sum"),
                Column("near_threshold", N, "sum"),
                _dec("near_threshold_amount", 2, "sum"),
            ),
            "Per account and day: payments, and those just under the reporting threshold.",
        ),
        late_table("payment_aggregates"),
    ),
    fold=folds.fold_payment_aggregates,
    columnar=sqlfolds.columnar_payment_aggregates,
    windowed=True,
    params={"aml_threshold": "10000", "aml_band": "0.1"},
)

ACCOUNTS = Projection(
    name="accounts",
    store="transactional",
    topics=("accounts",),
    tables=(
        Table(
            "accounts_current",
            "entity",
            (
                Column("tenant", S, "key"),
                Column("account_id", S, "key"),
                Column("customer_name", S, nullable=True, pii=True),
                Column("email", S, nullable=True, pii=True),
                Column("country", S, nullable=True),
                Column("kyc_level", S, nullable=True),
                Column("risk_rating", S, nullable=True),
                Column("base_currency", S, nullable=True),
                Column("opened_at", T, nullable=True),
                Column("updated_at", T, nullable=True),
                Column("version", N),
            ),
            "Current state of each account.",
        ),
    ),
    entities=(
        EntityRule(
            "accounts_current",
            ("hub.accounts.AccountOpened", "hub.accounts.AccountUpdated"),
            folds.account_key,
            folds.fold_account,
        ),
    ),
)

PAYMENTS = Projection(
    name="payments",
    store="transactional",
    topics=("payments",),
    tables=(
        Table(
            "payment_status",
            "entity",
            (
                Column("tenant", S, "key"),
                Column("payment_id", S, "key"),
                Column("account_id", S),
                _dec("amount", 2, nullable=True),
                Column("currency", S, nullable=True),
                Column("counterparty_name", S, nullable=True, pii=True),
                Column("counterparty_country", S, nullable=True),
                Column("status", S),
                Column("reason_code", S, nullable=True),
                Column("initiated_at", T, nullable=True),
                Column("settled_at", T, nullable=True),
                Column("failed_at", T, nullable=True),
            ),
            "Each payment's current status.",
        ),
        Table(
            "payment_history",
            "append",
            (
                Column("src_topic", S, "key"),
                Column("src_partition", N, "key"),
                Column("src_offset", N, "key"),
                Column("tenant", S),
                Column("payment_id", S),
                Column("status", S),
                Column("at", T, nullable=True),
            ),
            "Every status change of every payment.",
        ),
        Table(
            "payment_limits",
            "entity",
            (
                Column("tenant", S, "key"),
                Column("account_id", S, "key"),
                Column("day", T, "key"),
                Column("currency", S, "key"),
                _dec("used", 2),
                Column("payments", N),
                _dec("daily_limit", 2),
                Column("breached", N),
            ),
            "Daily outgoing payment use per account against its limit.",
        ),
    ),
    fold=folds.fold_payment_history,
    entities=(
        EntityRule("payment_status", tuple(folds._STATUS), folds.payment_key, folds.fold_payment),
        EntityRule(
            "payment_limits", ("hub.payments.PaymentInitiated",), folds.limit_key, folds.fold_limit
        ),
    ),
    params={"daily_limit": "50000"},
)

PROJECTIONS: tuple[Projection, ...] = (
    MARKET_BARS,
    POSITIONS,
    PAYMENT_AGGREGATES,
    ACCOUNTS,
    PAYMENTS,
)


def by_name(name: str) -> Projection:
    """The projection called ``name``; raises ``KeyError`` listing the known names."""
    for p in PROJECTIONS:
        if p.name == name:
            return p
    raise KeyError(f"{name!r}; known projections: {', '.join(p.name for p in PROJECTIONS)}")
