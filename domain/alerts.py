"""Alert rules as data: what a rule measures, a threshold, a severity.

A rule fires when its value is greater than ``threshold`` and resolves when it is not any more.
What the value is depends on its ``kind``:

- ``sql``: the first column of the first row of ``sql`` over the views (no row counts as 0); the
  query runs through the guarded query path as the alerting principal, so a rule sees what
  that principal's policy allows.
- ``metric``: ``projection_lag`` (the largest number of records a projection has not folded
  yet) or ``quarantine_rate`` (the percentage of records received in the last ``window_s``
  seconds that went to quarantine).
- ``drift``: the number of ``hub.ModelDriftDetected`` events in the last ``window_s`` seconds.
- ``ledger_verify``: the number of problems the ledger's incremental verification against the
  log found (0 when it passes); it runs at most once per ``window_s`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    summary: str
    sql: str
    store: str = "analytics"  # or "transactional"
    threshold: Decimal = Decimal(0)
    severity: str = "warning"  # info, warning, critical
    kind: str = "sql"  # KINDS
    metric: str = ""  # kind "metric": one of METRICS
    window_s: int = 300  # quarantine_rate and drift: the window; ledger_verify: the period


KINDS = ("sql", "metric", "drift", "ledger_verify")
METRICS = ("projection_lag", "quarantine_rate")


SHIPPED_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "aml_near_threshold",
        "Accounts with 3 or more payments just under the AML reporting threshold in one day "
        "(possible structuring).",
        "SELECT count() AS accounts FROM aml_daily WHERE near_threshold >= 3",
        severity="critical",
    ),
    AlertRule(
        "daily_limit_breach",
        "Accounts whose initiated payments exceeded their daily limit.",
        "SELECT count(*) AS breaches FROM payment_limits WHERE breached = 1",
        store="transactional",
        severity="warning",
    ),
    AlertRule(
        "projection_lag",
        "A projection is more than 10,000 records behind its topics.",
        "",
        threshold=Decimal(10_000),
        kind="metric",
        metric="projection_lag",
    ),
    AlertRule(
        "quarantine_rate",
        "More than 5% of the records received in the last 5 minutes went to quarantine.",
        "",
        threshold=Decimal(5),
        kind="metric",
        metric="quarantine_rate",
        window_s=300,
    ),
    AlertRule(
        "model_drift",
        "A model's inputs or scores drifted from its training reference in the last hour.",
        "",
        kind="drift",
        window_s=3600,
    ),
    AlertRule(
        "ledger_verify_failed",
        "The ledger's verification against the log failed: a record or the ledger itself was "
        "changed, dropped or reordered (run `hub ledger verify --full`).",
        "",
        severity="critical",
        kind="ledger_verify",
        window_s=300,
    ),
)
