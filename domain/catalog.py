"""The domain's topics and the event types each carries, as data.

``subject_strategy`` follows Confluent's names: ``topic`` (TopicNameStrategy, subject
``<topic>-value``) for topics with one event type, ``record`` (RecordNameStrategy, subject = the
record's full name) for topics that carry several.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

SubjectStrategy = Literal["topic", "record", "topic_record"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    event_types: tuple[str, ...]
    subject_strategy: SubjectStrategy
    key_field: str
    description: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "trades",
        ("hub.trading.TradeExecuted",),
        "topic",
        "account_id",
        "Executed trades, keyed by account so an account's trades stay in order.",
    ),
    TopicSpec(
        "quotes",
        ("hub.market.QuotePublished",),
        "topic",
        "instrument",
        "Top-of-book market quotes, keyed by instrument.",
    ),
    TopicSpec(
        "payments",
        (
            "hub.payments.PaymentInitiated",
            "hub.payments.PaymentSettled",
            "hub.payments.PaymentFailed",
        ),
        "record",
        "payment_id",
        "Payment lifecycle events, keyed by payment.",
    ),
    TopicSpec(
        "accounts",
        ("hub.accounts.AccountOpened", "hub.accounts.AccountUpdated"),
        "record",
        "account_id",
        "Account lifecycle: opening, KYC and risk changes.",
    ),
    TopicSpec(
        "payment-labels",
        ("hub.payments.FraudConfirmed",),
        "topic",
        "payment_id",
        "Confirmed fraud and money laundering, per payment: the labels of payment risk models.",
    ),
    TopicSpec(
        "trade-labels",
        ("hub.trading.TradeAnomalyConfirmed", "hub.trading.TradeCleared"),
        "record",
        "trade_id",
        "Market surveillance reviews, per trade: anomalous price confirmed, or cleared; the "
        "labels of price anomaly models.",
    ),
    TopicSpec(
        "hub.config",
        ("hub.ConfigChanged",),
        "topic",
        "key",
        "Every change of a hub setting; never updated in place.",
    ),
    TopicSpec(
        "hub.config-changes",
        (
            "hub.ConfigChangeProposed",
            "hub.ConfigChangeApproved",
            "hub.ConfigChangeApplied",
            "hub.ConfigChangeWithdrawn",
        ),
        "record",
        "change_id",
        "Configuration changes (quality rules, registry compatibility) as commands: proposed, "
        "approved (two-person rule), applied or withdrawn (proposer revoked); their effect is "
        "on hub.config and _schemas.",
    ),
    TopicSpec(
        "hub.principals",
        (
            "hub.ApiKeyIssued",
            "hub.ApiKeyRevoked",
            "hub.EnrolmentIssued",
            "hub.EnrolmentApproved",
            "hub.EnrolmentRedeemed",
            "hub.EnrolmentExpired",
            "hub.KeyReset",
        ),
        "record",
        "key_id",
        "API keys issued and revoked, and the enrolment of people with approval rights (issued, "
        "approved, redeemed, expired, reset); secrets and tokens stored only as salted "
        "HMAC-SHA256 under a pepper.",
    ),
    TopicSpec(
        "hub.quarantine",
        ("hub.RecordQuarantined",),
        "topic",
        "topic",
        "Ingested records rejected by schema, quality rule or size, with their original bytes.",
    ),
    TopicSpec(
        "hub.quarantine-replays",
        ("hub.QuarantineReplayed",),
        "topic",
        "topic",
        "Replays of quarantined records (outcome and where each landed); the quarantine entry's "
        "status is their fold.",
    ),
    TopicSpec(
        "hub.source-positions",
        ("hub.SourcePositionRecorded",),
        "topic",
        "source",
        "Each ingest source's position, written atomically with its data; the latest wins.",
    ),
    TopicSpec(
        "hub.decisions",
        ("hub.PolicyDecisionRecorded",),
        "topic",
        "principal",
        "Every policy decision (allow or deny) with its policy version and input digest.",
    ),
    TopicSpec(
        "hub.policies",
        (
            "hub.PolicyChangeProposed",
            "hub.PolicyChangeApproved",
            "hub.PolicyChangeActivated",
            "hub.PolicyChangeWithdrawn",
        ),
        "record",
        "change_id",
        "Policy bundle changes: proposed, approved, activated or withdrawn (proposer revoked); the "
        "active bundle is their fold.",
    ),
    TopicSpec(
        "hub.governance",
        ("hub.RetentionPolicySet", "hub.LegalHoldPlaced", "hub.LegalHoldReleased"),
        "record",
        "scope",
        "Retention policies and legal holds per scope; the policies in force are their fold.",
    ),
    TopicSpec(
        "hub.cases",
        ("hub.CaseOpened", "hub.CaseClosed"),
        "record",
        "case_id",
        "Investigation cases (purpose of use): opened with reason, investigators, expiry; closed.",
    ),
    TopicSpec(
        "hub.alerts",
        ("hub.AlertFired", "hub.AlertResolved"),
        "record",
        "rule",
        "Alerts: a rule's condition became true (fired) or false again (resolved).",
    ),
    TopicSpec(
        "hub.reports",
        ("hub.ReportCreated",),
        "record",
        "report_id",
        "Reports built and signed (compliance, data quality): manifest digest and checkpoint.",
    ),
    TopicSpec(
        "hub.lineage",
        ("hub.LineageEventRecorded",),
        "topic",
        "job_name",
        "OpenLineage run events of every hub job (ingest, projection, export, retention).",
    ),
    TopicSpec(
        "hub.models",
        ("hub.ModelRegistered", "hub.ModelPromoted", "hub.ModelRetired", "hub.ModelDriftDetected"),
        "record",
        "model",
        "Model lifecycle: registered (with training-set manifest and evaluation), promoted to "
        "champion (two-person rule) or challenger, retired, drift detected; the registry's fold.",
    ),
    TopicSpec(
        "hub.predictions",
        ("hub.PredictionRecorded",),
        "topic",
        "entity",
        "Every score of a model (streamed or requested): version, features digest, decision.",
    ),
)


def subject_for(topic: str, record_name: str, strategy: SubjectStrategy) -> str:
    """The registry subject of a record on a topic under a subject name strategy."""
    if strategy == "topic":
        return f"{topic}-value"
    if strategy == "record":
        return record_name
    return f"{topic}-{record_name}"


def schema_text(event_type: str) -> str:
    """The ``.avsc`` text shipped for an event type (its Avro full name)."""
    short = event_type.rsplit(".", 1)[-1]
    return resources.files("domain").joinpath("schemas", f"{short}.avsc").read_text("utf-8")


def all_event_types() -> tuple[str, ...]:
    return tuple(t for spec in TOPICS for t in spec.event_types)


def classified_fields(event_type: str) -> dict[str, str]:
    """Top-level fields of an event type that carry a ``classification`` attribute."""
    schema = json.loads(schema_text(event_type))
    return {f["name"]: f["classification"] for f in schema["fields"] if "classification" in f}
