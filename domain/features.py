"""Feature definitions as data: entities, the series and attributes they are folded from, and the
features of each view. No I/O; ``ml.features`` computes them, ``ml.feed`` folds their sources.

A feature is one of
- a window aggregate over an entity's series (``count`` or ``sum`` of the values whose time lies
  in ``[t - window, t)``, or ``count_between`` of those within ``[low, high)``);
- an attribute version of the entity in force at ``t`` (the latest with ``valid_from < t``),
  mapped to a number by ``levels``;
- a property of the scored event itself (``event``), mapped by ``levels`` or taken as a number;
- the ``last`` value of a series in ``[t - window, t)`` (``default`` when there is none), its
  ``age`` in seconds, or the population standard deviation ``std`` of its values in the window;
- a ``derived`` value of features before it in the view: ``op`` one of ``sub`` (a - b), ``mean``
  ((a + b) / 2), ``ratio`` (a / b, ``default`` when b is 0), ``abs`` (|a|), times ``scale``.

A feature marked ``internal`` is computed (others derive from it) but is not a model input.

Point in time: every feature of an event at time ``t`` reads only facts strictly before ``t``
(the event's own amount is an ``event`` feature, never part of a window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HOUR_US = 3_600_000_000

Kind = Literal[
    "count", "sum", "count_between", "attribute", "event", "last", "age", "std", "derived"
]
Op = Literal["", "sub", "mean", "ratio", "abs"]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: Kind
    source: str = ""  # series or attribute set name; the event field for ``event``
    window_us: int = 0
    low: float = 0.0
    high: float = 0.0
    attr: str = ""  # the attribute's field
    levels: tuple[tuple[str, float], ...] = ()  # value -> number; unknown values -> default
    default: float = 0.0
    op: Op = ""  # for ``derived``
    args: tuple[str, ...] = ()  # for ``derived``: names of features before it
    scale: float = 1.0  # for ``derived``
    internal: bool = False  # computed for others, not a model input

    def level(self, value: object) -> float:
        if not self.levels:
            try:
                return float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return self.default
        for name, number in self.levels:
            if name == value:
                return number
        return self.default


@dataclass(frozen=True, slots=True)
class Series:
    """A numeric time series per entity, folded from one event type of a topic."""

    name: str
    topic: str
    event_type: str
    entity_field: str
    time_field: str
    value_field: str


@dataclass(frozen=True, slots=True)
class AttributeSet:
    """Versions of an entity's attributes, folded from event types of a topic."""

    name: str
    topic: str
    event_types: tuple[str, ...]
    entity_field: str
    time_fields: tuple[str, ...]  # the first present one is the version's valid-from time
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeatureView:
    name: str
    entity: str
    event_topic: str
    event_type: str
    entity_field: str
    time_field: str
    subject_field: str
    features: tuple[Feature, ...]
    series: tuple[Series, ...] = ()
    attributes: tuple[AttributeSet, ...] = ()
    # topic: where labels arrive; positive: the event type naming a positive subject; negative:
    # the event type (on the labels topic or the event topic) naming a negative one.
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The model inputs, in order (internal features left out)."""
        return tuple(f.name for f in self.features if not f.internal)


KYC_LEVELS = (("NONE", 0.0), ("BASIC", 1.0), ("STANDARD", 2.0), ("ENHANCED", 3.0))
RISK_RATINGS = (("LOW", 0.0), ("MEDIUM", 1.0), ("HIGH", 2.0), ("PROHIBITED", 3.0))
# Counterparty-country risk: 3 sanctioned, 2 high-risk third countries, 1 increased monitoring.
COUNTRY_RISK = (
    ("KP", 3.0),
    ("IR", 3.0),
    ("SY", 3.0),
    ("CU", 3.0),
    ("RU", 2.0),
    ("MM", 2.0),
    ("AF", 2.0),
    ("YE", 2.0),
    ("AE", 1.0),
    ("PA", 1.0),
    ("TR", 1.0),
)
REPORTING_THRESHOLD = 10_000.0
NEAR_THRESHOLD = 9_000.0

PAYMENTS = Series(
    "payments",
    "payments",
    "hub.payments.PaymentInitiated",
    "account_id",
    "initiated_at",
    "amount",
)
ACCOUNTS = AttributeSet(
    "accounts",
    "accounts",
    ("hub.accounts.AccountOpened", "hub.accounts.AccountUpdated"),
    "account_id",
    ("updated_at", "opened_at"),
    ("kyc_level", "risk_rating"),
)

PAYMENT_RISK = FeatureView(
    name="payment_risk",
    entity="account",
    event_topic="payments",
    event_type="hub.payments.PaymentInitiated",
    entity_field="account_id",
    time_field="initiated_at",
    subject_field="payment_id",
    features=(
        Feature("amount", "event", "amount"),
        Feature("payments_1h", "count", "payments", window_us=HOUR_US),
        Feature("amount_1h", "sum", "payments", window_us=HOUR_US),
        Feature("payments_24h", "count", "payments", window_us=24 * HOUR_US),
        Feature("amount_24h", "sum", "payments", window_us=24 * HOUR_US),
        Feature(
            "near_threshold_24h",
            "count_between",
            "payments",
            window_us=24 * HOUR_US,
            low=NEAR_THRESHOLD,
            high=REPORTING_THRESHOLD,
        ),
        Feature("kyc_level", "attribute", "accounts", attr="kyc_level", levels=KYC_LEVELS),
        Feature(
            "risk_rating",
            "attribute",
            "accounts",
            attr="risk_rating",
            levels=RISK_RATINGS,
            default=1.0,
        ),
        Feature("counterparty_country_risk", "event", "counterparty_country", levels=COUNTRY_RISK),
    ),
    series=(PAYMENTS,),
    attributes=(ACCOUNTS,),
    labels={
        "topic": "payment-labels",
        "positive": "hub.payments.FraudConfirmed",
        "negative": "hub.payments.PaymentSettled",
    },
)

# -- price anomaly: a trade's price against the quote of its time ----------------------------------
QUOTE_BIDS = Series(
    "quote_bids", "quotes", "hub.market.QuotePublished", "instrument", "quoted_at", "bid"
)
QUOTE_ASKS = Series(
    "quote_asks", "quotes", "hub.market.QuotePublished", "instrument", "quoted_at", "ask"
)
TRADE_PRICES = Series(
    "trade_prices", "trades", "hub.trading.TradeExecuted", "instrument", "executed_at", "price"
)
QUOTE_LOOKBACK_US = 24 * HOUR_US  # a quote older than a day is no quote of the time

PRICE_ANOMALY = FeatureView(
    name="price_anomaly",
    entity="instrument",
    event_topic="trades",
    event_type="hub.trading.TradeExecuted",
    entity_field="instrument",
    time_field="executed_at",
    subject_field="trade_id",
    features=(
        Feature("price", "event", "price", internal=True),
        Feature("bid", "last", "quote_bids", window_us=QUOTE_LOOKBACK_US, internal=True),
        Feature("ask", "last", "quote_asks", window_us=QUOTE_LOOKBACK_US, internal=True),
        Feature("mid", "derived", op="mean", args=("bid", "ask"), internal=True),
        Feature("spread", "derived", op="sub", args=("ask", "bid"), internal=True),
        Feature("distance", "derived", op="sub", args=("price", "mid"), internal=True),
        Feature("bid_std_1h", "std", "quote_bids", window_us=HOUR_US, internal=True),
        Feature("spread_bps", "derived", op="ratio", args=("spread", "mid"), scale=1e4),
        Feature("mid_distance_spreads", "derived", op="ratio", args=("distance", "spread")),
        Feature("abs_mid_distance_spreads", "derived", op="abs", args=("mid_distance_spreads",)),
        Feature("volatility_1h_bps", "derived", op="ratio", args=("bid_std_1h", "mid"), scale=1e4),
        Feature("quote_age_s", "age", "quote_bids", window_us=QUOTE_LOOKBACK_US, default=86400.0),
        Feature("trades_1h", "count", "trade_prices", window_us=HOUR_US),
    ),
    series=(QUOTE_BIDS, QUOTE_ASKS, TRADE_PRICES),
    labels={
        "topic": "trade-labels",
        "positive": "hub.trading.TradeAnomalyConfirmed",
        "negative": "hub.trading.TradeCleared",
    },
)

VIEWS: dict[str, FeatureView] = {v.name: v for v in (PAYMENT_RISK, PRICE_ANOMALY)}
