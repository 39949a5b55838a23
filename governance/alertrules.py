"""Alert rules as governed configuration (issue 15): the resource ``alerts.rules``.

Its value is the list of rules in force (``domain.alerts.AlertRule`` as JSON objects: name,
summary, kind, sql, store, metric, window_s, threshold, severity; ``kind`` defaults to
``sql``); ``None`` means the shipped rules (``domain.alerts.SHIPPED_RULES``). It changes only
through the config-change flow (``governance.configchanges``: propose, and approve by a second
person when the active policy bundle's ``two_person`` list names ``alerts.rules``); the value
in force is folded from the applied changes on ``hub.config.changes``, so every rule change is
an event on the ledger.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput
from domain.alerts import KINDS, METRICS, SHIPPED_RULES, AlertRule

if TYPE_CHECKING:
    from governance.configstore import ConfigChangeStore

ALERT_RULES = "alerts.rules"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELDS = ("name", "summary", "kind", "sql", "store", "metric", "window_s", "threshold", "severity")
SEVERITIES = ("info", "warning", "critical")


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_alert_rules")


def rule_dict(rule: AlertRule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name, "summary": rule.summary, "kind": rule.kind}
    if rule.kind == "sql":
        out |= {"sql": rule.sql, "store": rule.store}
    if rule.kind == "metric":
        out["metric"] = rule.metric
    if rule.kind != "sql" and not (rule.kind == "metric" and rule.metric == "projection_lag"):
        out["window_s"] = rule.window_s
    return out | {"threshold": str(rule.threshold), "severity": rule.severity}


def parse_rules(value: Any) -> tuple[AlertRule, ...] | None:
    """Rules from a proposed value; ``InvalidInput`` naming the first problem."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > 200:
        raise _bad(
            "alerts.rules is a list of 1 to 200 rule objects "
            f"({', '.join(_FIELDS)}); null restores the shipped rules."
        )
    out: list[AlertRule] = []
    for i, r in enumerate(value):
        if not isinstance(r, dict) or "name" not in r or not set(r) <= set(_FIELDS):
            raise _bad(f"rule {i} must be an object with a name (fields: {', '.join(_FIELDS)}).")
        name = r["name"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _bad(f"rule {i}: name {name!r} must be lower-case letters, digits and _.")
        if any(o.name == name for o in out):
            raise _bad(f"rule {name!r} is defined twice.")
        kind = r.get("kind", "sql")
        if kind not in KINDS:
            raise _bad(f"rule {name!r}: kind {kind!r} must be one of {', '.join(KINDS)}.")
        sql = r.get("sql", "")
        if kind != "sql":
            if sql:
                raise _bad(f"rule {name!r}: sql is for kind sql only, not {kind}.")
        elif (
            not isinstance(sql, str)
            or not sql.lstrip().lower().startswith("select")
            or len(sql) > 10_000
        ):
            raise _bad(
                f"rule {name!r}: sql must be one SELECT over the views (at most 10,000 characters)."
            )
        metric = r.get("metric", "")
        if (kind == "metric") != bool(metric) or (kind == "metric" and metric not in METRICS):
            raise _bad(
                f"rule {name!r}: metric {metric!r}: a rule of kind metric names one of "
                f"{', '.join(METRICS)}, and only such a rule names a metric."
            )
        window_s = r.get("window_s", 300)
        if (
            isinstance(window_s, bool)
            or not isinstance(window_s, int)
            or not (1 <= window_s <= 31 * 86_400)
        ):
            raise _bad(
                f"rule {name!r}: window_s {window_s!r} must be whole seconds from 1 to 2678400 "
                "(31 days)."
            )
        store = r.get("store", "analytics")
        if store not in ("analytics", "transactional"):
            raise _bad(f"rule {name!r}: store {store!r} must be analytics or transactional.")
        severity = r.get("severity", "warning")
        if severity not in SEVERITIES:
            raise _bad(
                f"rule {name!r}: severity {severity!r} must be one of {', '.join(SEVERITIES)}."
            )
        try:
            threshold = Decimal(str(r.get("threshold", "0")))
        except InvalidOperation:
            raise _bad(
                f"rule {name!r}: threshold {r.get('threshold')!r} is not a number."
            ) from None
        if not threshold.is_finite():
            raise _bad(f"rule {name!r}: threshold must be a finite number.")
        summary = str(r.get("summary", ""))[:2_000]
        out.append(
            AlertRule(name, summary, sql, store, threshold, severity, kind, metric, window_s)
        )
    return tuple(out)


def current_value(store: ConfigChangeStore) -> Any:
    """The value in force: that of the last applied ``alerts.rules`` change (None: shipped)."""
    store.refresh()
    applied = [c for c in store.changes(ALERT_RULES) if c.status == "applied"]
    if not applied or applied[-1].new_value is None:
        return None
    return json.loads(applied[-1].new_value)


def rules_in_force(store: ConfigChangeStore) -> tuple[AlertRule, ...]:
    """The governed rules, or the shipped ones when none were set."""
    governed = parse_rules(current_value(store))
    return SHIPPED_RULES if governed is None else governed
