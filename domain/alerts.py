"""Alert rules as data: a query over the views, a threshold, a severity.

A rule fires when the first column of its query's first row is greater than ``threshold`` (no
row counts as 0), and resolves when it is not any more. The query runs through the guarded
query path as the alerting principal, so a rule sees what that principal's policy allows.
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
)
