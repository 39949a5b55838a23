"""The shipped projection definitions (data), their lookup, and their documentation.

Every table and column says what it holds (``Table.doc``, ``Column.doc``); ``table_columns`` and
``describe`` serve that to the governance catalog (``hub catalog``, ``GET /v1/catalog``) and to
``DESCRIBE`` / ``SHOW TABLES``.

Canonical representations (the same logical type reads the same in every store and format,
``projections.types``): ``timestamp`` = timezone-aware UTC, Arrow ``timestamp[us, tz=UTC]``,
ISO-8601 ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in JSON and CSV; ``decimal`` = ``Decimal`` with the
column's scale, Arrow/Parquet ``decimal128(38, scale)``, a JSON *string* (exact); ``int`` =
int64; ``string`` = UTF-8 string.
"""

from __future__ import annotations

from core.projection import Column, ColumnType, EntityRule, Projection, Table
from projections import folds, sqlfolds

S: ColumnType = "string"
N: ColumnType = "int"
T: ColumnType = "timestamp"

AML_THRESHOLD = "10000"  # the reporting threshold, in the payment's own currency
AML_BAND = "0.1"  # "just under" = within 10 % below the threshold
DAILY_LIMIT = "50000"  # outgoing payments per account, day and currency


def _dec(name: str, scale: int, agg: str = "value", **kw: object) -> Column:
    return Column(name, "decimal", agg, scale, **kw)  # type: ignore[arg-type]


TENANT = "Tenant of the source events (the ce_tenant header); queries see their own tenant's rows."
SRC_TOPIC = "Topic of the source event."
SRC_PARTITION = "Partition of the source event."
SRC_OFFSET = "Offset of the source event in its partition."


def late_table(projection: str) -> Table:
    """The late side output of a windowed projection (its fold returns it as ``late_events``)."""
    return Table(
        f"{projection}_late",
        "append",
        (
            Column("src_topic", S, "key", doc=SRC_TOPIC),
            Column("src_partition", N, "key", doc=SRC_PARTITION),
            Column("src_offset", N, "key", doc=SRC_OFFSET),
            # one late event can miss several windows
            Column("view", S, "key", doc="The view table whose window the event missed."),
            Column("tenant", S, doc=TENANT),
            Column("window_start", T, doc="Start (UTC) of the window the event belonged to."),
            Column("event_at", T, doc="The event's own time (UTC)."),
        ),
        "Events that arrived after their window closed (late_mode=side).",
    )


def _near() -> str:
    low = int(float(AML_THRESHOLD) * (1 - float(AML_BAND)))
    return f"{low} <= amount < {AML_THRESHOLD} in the payment's currency"


def _bars(name: str, size: str) -> Table:
    return Table(
        name,
        "aggregate",
        (
            Column("tenant", S, "key", doc=TENANT),
            Column("instrument", S, "key", doc="Instrument symbol (ISIN or ticker)."),
            Column(
                "currency",
                S,
                "key",
                doc="ISO 4217 currency of the trades: one bar per currency, never blended.",
            ),
            Column("window_start", T, "key", doc="Window start (UTC, inclusive), by trade time."),
            Column("window_end", T, "max", doc="Window end (UTC, exclusive)."),
            _dec("open", 8, "first", doc="Price of the window's first trade (by executed_at)."),
            _dec("high", 8, "max", doc="Highest trade price in the window."),
            _dec("low", 8, "min", doc="Lowest trade price in the window."),
            _dec("close", 8, "last", doc="Price of the window's last trade (by executed_at)."),
            _dec("volume", 4, "sum", doc="Sum of traded quantities."),
            _dec("notional", 12, "sum", doc="Sum of price × quantity, in the bar's currency."),
            _dec(
                "vwap",
                8,
                "derived",
                nullable=True,
                expr="notional/volume",
                doc="Volume-weighted average price = notional / volume (NULL when volume is 0).",
            ),
            Column("events", N, "sum", doc="Number of trades in the bar."),
            Column("first_at", T, "min", doc="Time of the first trade (UTC)."),
            Column("first_pos", N, "first", doc="Log position of the first trade (tie-break)."),
            Column("last_at", T, "max", doc="Time of the last trade (UTC)."),
            Column("last_pos", N, "last", doc="Log position of the last trade (tie-break)."),
        ),
        f"OHLCV and VWAP per instrument, currency and {size} event-time window of trades.",
    )


MARKET_BARS = Projection(
    name="market_bars",
    store="analytics",
    topics=("trades",),
    tables=(
        _bars("ohlcv_1m", "1-minute tumbling"),
        _bars("ohlcv_1h", "1-hour tumbling"),
        _bars("ohlcv_5m_hop_1m", "5-minute hopping (every minute)"),
        late_table("market_bars"),
    ),
    fold=folds.fold_bars,
    columnar=sqlfolds.columnar_bars,
    windowed=True,
    event_time={"hub.trading.TradeExecuted": "executed_at"},
    doc="Trades into OHLCV/VWAP bars per instrument and currency: tumbling 1 m and 1 h, "
    "hopping 5 m every 1 m, by trade time (executed_at).",
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
                Column("tenant", S, "key", doc=TENANT),
                Column("account_id", S, "key", doc="The trading account."),
                Column("instrument", S, "key", doc="Instrument symbol (ISIN or ticker)."),
                Column(
                    "currency",
                    S,
                    "key",
                    doc="ISO 4217 currency of the trades: one position per currency, never netted.",
                ),
                _dec("quantity", 4, doc="Signed quantity held: positive long, negative short."),
                _dec("avg_cost", 8, doc="Average cost per unit of the open quantity (0 if flat)."),
                _dec(
                    "realised_pnl",
                    12,
                    doc="Realised P&L: (price − avg_cost) × closed quantity (reversed for "
                    "shorts), minus fees, in the position's currency.",
                ),
                _dec("fees", 2, doc="Fees paid on the position's trades."),
                Column("trades", N, doc="Number of trades folded."),
                Column("last_trade_at", T, doc="Time of the latest trade (UTC)."),
            ),
            "Position and realised P&L (average-cost method) per account, instrument and "
            "currency. Unrealised P&L: join latest_quotes (MARK_TO_MARKET_SQL).",
        ),
    ),
    entities=(
        EntityRule(
            "positions", ("hub.trading.TradeExecuted",), folds.position_key, folds.fold_position
        ),
    ),
    event_time={"hub.trading.TradeExecuted": "executed_at"},
    doc="Positions and realised P&L per account, instrument and currency (average cost), "
    "from trades.",
)

QUOTES = Projection(
    name="quotes",
    store="analytics",
    topics=("quotes",),
    tables=(
        Table(
            "latest_quotes",
            "entity",
            (
                Column("tenant", S, "key", doc=TENANT),
                Column("instrument", S, "key", doc="Instrument symbol (ISIN or ticker)."),
                Column("currency", S, "key", doc="ISO 4217 currency of the quote."),
                Column("venue", S, doc="ISO 10383 MIC of the venue of the latest quote."),
                _dec("bid", 8, doc="Best bid of the latest quote."),
                _dec("ask", 8, doc="Best ask of the latest quote."),
                _dec("mid", 8, doc="(bid + ask) / 2, rounded half-even to 8 places: the mark."),
                _dec("bid_size", 4, doc="Quantity at the bid."),
                _dec("ask_size", 4, doc="Quantity at the ask."),
                Column("quoted_at", T, doc="Quote time (UTC) of the latest quote."),
                Column("quote_pos", N, doc="Log position of the latest quote (tie-break)."),
                Column("quotes", N, doc="Number of quotes folded for this key."),
            ),
            "Latest quote (by quoted_at) per instrument and currency: the mark for "
            "mark-to-market P&L.",
        ),
    ),
    entities=(
        EntityRule(
            "latest_quotes", ("hub.market.QuotePublished",), folds.quote_key, folds.fold_quote
        ),
    ),
    event_time={"hub.market.QuotePublished": "quoted_at"},
    doc="Latest top-of-book quote per instrument and currency, from the quotes topic.",
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
                Column("tenant", S, "key", doc=TENANT),
                Column("day", T, "key", doc="UTC day (midnight) of initiated_at."),
                Column("currency", S, "key", doc="ISO 4217 currency of the payments."),
                Column("country", S, "key", doc="Counterparty (destination) country."),
                Column("events", N, "sum", doc="Number of payments initiated."),
                _dec("amount", 2, "sum", doc="Sum of initiated amounts, in the currency."),
            ),
            "Initiated payment count and volume per day and corridor (currency, country).",
        ),
        Table(
            "aml_daily",
            "aggregate",
            (
                Column("tenant", S, "key", doc=TENANT),
                Column("account_id", S, "key", doc="The paying account."),
                Column("day", T, "key", doc="UTC day (midnight) of initiated_at."),
                Column("currency", S, "key", doc="ISO 4217 currency of the payments."),
                Column("events", N, "sum", doc="Number of payments initiated."),
                _dec("amount", 2, "sum", doc="Sum of initiated amounts."),
                Column(
                    "near_threshold",
                    N,
                    "sum",
                    doc=f"Payments with {_near()} (possible structuring).",
                ),
                _dec("near_threshold_amount", 2, "sum", doc="Sum of those payments' amounts."),
            ),
            f"Per account, day and currency: payments, and those just under the AML reporting "
            f"threshold ({_near()}).",
        ),
        late_table("payment_aggregates"),
    ),
    fold=folds.fold_payment_aggregates,
    columnar=sqlfolds.columnar_payment_aggregates,
    windowed=True,
    event_time={
        "hub.payments.PaymentInitiated": "initiated_at",
        "hub.payments.PaymentSettled": "settled_at",
        "hub.payments.PaymentFailed": "failed_at",
    },
    params={"aml_threshold": AML_THRESHOLD, "aml_band": AML_BAND},
    doc=f"Initiated payments into daily volumes per corridor and daily AML aggregates per "
    f"account; near the threshold = {_near()}.",
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
                Column("tenant", S, "key", doc=TENANT),
                Column("account_id", S, "key", doc="The account (data subject)."),
                Column("customer_name", S, nullable=True, pii=True, doc="Holder's name (PII)."),
                Column("email", S, nullable=True, pii=True, doc="Holder's e-mail (PII)."),
                Column("country", S, nullable=True, doc="Holder's country (ISO 3166)."),
                Column("kyc_level", S, nullable=True, doc="Current KYC level."),
                Column("risk_rating", S, nullable=True, doc="Current risk rating."),
                Column("base_currency", S, nullable=True, doc="Account's base currency."),
                Column("opened_at", T, nullable=True, doc="When the account was opened (UTC)."),
                Column("updated_at", T, nullable=True, doc="Time of the latest change (UTC)."),
                Column("version", N, doc="Number of account events folded."),
            ),
            "Current state of each account.",
        ),
    ),
    event_time={
        "hub.accounts.AccountOpened": "opened_at",
        "hub.accounts.AccountUpdated": "updated_at",
    },
    doc="Current state of each account (opened, then updated), from the accounts topic.",
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
                Column("tenant", S, "key", doc=TENANT),
                Column("payment_id", S, "key", doc="The payment."),
                Column("account_id", S, doc="The paying account."),
                _dec("amount", 2, nullable=True, doc="Amount (the settled one once settled)."),
                Column("currency", S, nullable=True, doc="ISO 4217 currency of the amount."),
                Column("counterparty_name", S, nullable=True, pii=True, doc="Payee's name (PII)."),
                Column("counterparty_country", S, nullable=True, doc="Payee's country."),
                Column("status", S, doc="INITIATED, SETTLED or FAILED (terminal states stay)."),
                Column("reason_code", S, nullable=True, doc="Failure reason code, if failed."),
                Column("initiated_at", T, nullable=True, doc="When it was initiated (UTC)."),
                Column("settled_at", T, nullable=True, doc="When it settled (UTC)."),
                Column("failed_at", T, nullable=True, doc="When it failed (UTC)."),
            ),
            "Each payment's current status.",
        ),
        Table(
            "payment_history",
            "append",
            (
                Column("src_topic", S, "key", doc=SRC_TOPIC),
                Column("src_partition", N, "key", doc=SRC_PARTITION),
                Column("src_offset", N, "key", doc=SRC_OFFSET),
                Column("tenant", S, doc=TENANT),
                Column("payment_id", S, doc="The payment."),
                Column("status", S, doc="Status this event set: INITIATED, SETTLED or FAILED."),
                Column("at", T, nullable=True, doc="The event's own time for that status (UTC)."),
            ),
            "Every status change of every payment.",
        ),
        Table(
            "payment_limits",
            "entity",
            (
                Column("tenant", S, "key", doc=TENANT),
                Column("account_id", S, "key", doc="The paying account."),
                Column("day", T, "key", doc="UTC day (midnight) of initiated_at."),
                Column("currency", S, "key", doc="ISO 4217 currency of the payments."),
                _dec("used", 2, doc="Sum of the day's initiated amounts."),
                Column("payments", N, doc="Number of the day's initiated payments."),
                _dec("daily_limit", 2, doc=f"The daily limit ({DAILY_LIMIT} per currency)."),
                Column("breached", N, doc="1 when used > daily_limit, else 0."),
            ),
            f"Daily outgoing payment use per account and currency against the {DAILY_LIMIT} limit.",
        ),
    ),
    fold=folds.fold_payment_history,
    entities=(
        EntityRule("payment_status", tuple(folds._STATUS), folds.payment_key, folds.fold_payment),
        EntityRule(
            "payment_limits", ("hub.payments.PaymentInitiated",), folds.limit_key, folds.fold_limit
        ),
    ),
    event_time={
        "hub.payments.PaymentInitiated": "initiated_at",
        "hub.payments.PaymentSettled": "settled_at",
        "hub.payments.PaymentFailed": "failed_at",
    },
    params={"daily_limit": DAILY_LIMIT},
    doc="Each payment's status and history, and daily use per account against its limit.",
)

MODEL_PREDICTIONS = Projection(
    name="model_predictions",
    store="transactional",
    topics=("hub.predictions",),
    tables=(
        Table(
            "model_predictions",
            "entity",
            (
                Column("tenant", S, "key", doc=TENANT),
                Column("model", S, "key", doc="Model name (hub ml models)."),
                Column("version", N, "key", doc="Model version that scored."),
                Column("subject", S, "key", doc="What was scored, e.g. the payment id."),
                Column("variant", S, doc="champion or challenger (the A/B split)."),
                Column("entity", S, doc="The entity key the A/B split hashes (an account)."),
                Column("source", S, doc="topic/partition/offset of the input, or request:<who>."),
                Column("feature_digest", S, doc="SHA-256 of the canonical feature vector."),
                _dec("score", 8, doc="The model's score (probability of the positive class)."),
                Column("decision", S, doc="alert or pass (score against the version's threshold)."),
                Column("latency_us", N, doc="Feature fetch + score time, microseconds."),
                Column("scored_at", T, doc="When it was scored (UTC)."),
                Column("scorings", N, doc="How many times this version scored this subject."),
            ),
            "The latest prediction per model version and subject, from hub.predictions.",
        ),
    ),
    entities=(
        EntityRule(
            "model_predictions",
            ("hub.PredictionRecorded",),
            folds.prediction_key,
            folds.fold_prediction,
        ),
    ),
    event_time={"hub.PredictionRecorded": "scored_at"},
    doc="Predictions of the models (scoring consumer and predict requests), queryable by analysts.",
)

PROJECTIONS: tuple[Projection, ...] = (
    MARKET_BARS,
    POSITIONS,
    QUOTES,
    PAYMENT_AGGREGATES,
    ACCOUNTS,
    PAYMENTS,
    MODEL_PREDICTIONS,
)


def by_name(name: str) -> Projection:
    """The projection called ``name``; raises ``KeyError`` listing the known names."""
    for p in PROJECTIONS:
        if p.name == name:
            return p
    raise KeyError(f"{name!r}; known projections: {', '.join(p.name for p in PROJECTIONS)}")


# -- documentation served to the catalog and to DESCRIBE / SHOW TABLES ---------------------------
SRC_OFFSETS_DOC = (
    "Source ranges of the row: [[topic, partition, first offset, last offset, count], ...] "
    "(see GET /v1/projections/{name}/rows/{key}/sources)."
)

# Mark-to-market P&L is a query-time join (positions × latest_quotes), so the mark is always the
# latest quote the views hold. Positions without a quote in their currency have no mark and are
# left out (an INNER JOIN: a missing quote is not a zero price).
MARK_TO_MARKET_SQL = """\
SELECT p.tenant AS tenant, p.account_id AS account_id, p.instrument AS instrument,
       p.currency AS currency, p.quantity AS quantity, p.avg_cost AS avg_cost,
       q.mid AS mark, q.quoted_at AS marked_at,
       (q.mid - p.avg_cost) * p.quantity AS unrealised_pnl, p.realised_pnl AS realised_pnl
FROM positions AS p
INNER JOIN latest_quotes AS q
  ON q.tenant = p.tenant AND q.instrument = p.instrument AND q.currency = p.currency
ORDER BY tenant, account_id, instrument, currency"""


# Named queries the catalog lists beside the projections whose views they read.
NAMED_QUERIES: dict[str, dict[str, object]] = {
    "mark_to_market": {
        "store": "analytics",
        "reads": ["positions", "quotes"],
        "description": "Unrealised P&L = (latest quote mid − avg_cost) × quantity per position "
        "(same currency; positions without a quote in their currency are left out).",
        "sql": MARK_TO_MARKET_SQL,
    },
}


def named_queries(projection: str) -> dict[str, dict[str, object]]:
    """The named queries reading ``projection``'s views."""
    return {
        n: q
        for n, q in NAMED_QUERIES.items()
        if projection in q["reads"]  # type: ignore[operator]
    }


def type_name(c: Column) -> str:
    """The column's logical type as ``DESCRIBE`` shows it: ``string``, ``int64``,
    ``timestamp(us, UTC)``, ``decimal(38, <scale>)``; ``nullable`` ones end in `` null``."""
    base = {
        "string": "string",
        "int": "int64",
        "timestamp": "timestamp(us, UTC)",
        "decimal": f"decimal(38, {c.scale})",
    }[c.type]
    return f"{base} null" if c.nullable else base


def table_columns(store: str) -> dict[str, list[tuple[str, str, str]]]:
    """``{table: [(column, type, description), ...]}`` of every view a query on ``store``
    (``analytics`` or ``transactional``) can name, in column order; entity and aggregate views
    end with ``src_offsets``. Raises ``KeyError`` for an unknown store."""
    if store not in ("analytics", "transactional"):
        raise KeyError(f"{store!r}; known stores: analytics, transactional")
    out: dict[str, list[tuple[str, str, str]]] = {}
    for p in PROJECTIONS:
        if p.store != store:
            continue
        for t in p.tables:
            cols = [(c.name, type_name(c), c.doc) for c in t.columns]
            if t.kind != "append":
                cols.append(("src_offsets", "string", SRC_OFFSETS_DOC))
            out[t.name] = cols
    return out


def describe(p: Projection) -> list[dict[str, object]]:
    """The tables of ``p`` with their documentation, for the governance catalog."""
    return [
        {
            "name": t.name,
            "kind": t.kind,
            "description": t.doc,
            "key": list(t.key),
            "columns": [
                {
                    "name": c.name,
                    "type": type_name(c),
                    "description": c.doc,
                    "key": c.agg == "key",
                    "pii": c.pii,
                }
                for c in t.columns
            ],
        }
        for t in p.tables
    ]
