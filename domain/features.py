"""Feature definitions as data: entities, the series and attributes they are folded from, and the
features of each view. No I/O; ``ml.features`` computes them, ``ml.feed`` folds their sources.

A feature is one of
- a window aggregate over an entity's series (``count`` or ``sum`` of the values whose time lies
  in ``[t - window, t)``, or ``count_between`` of those within ``[low, high)``);
- an attribute version of the entity in force at ``t`` (the latest with ``valid_from < t``),
  mapped to a number by ``levels``;
- a property of the scored event itself (``event``), mapped by ``levels`` or taken as a number.

Point in time: every feature of an event at time ``t`` reads only facts strictly before ``t``
(the event's own amount is an ``event`` feature, never part of a window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HOUR_US = 3_600_000_000

Kind = Literal["count", "sum", "count_between", "attribute", "event"]


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
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


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
    labels={"topic": "payment-labels", "negative": "hub.payments.PaymentSettled"},
)

VIEWS: dict[str, FeatureView] = {PAYMENT_RISK.name: PAYMENT_RISK}
