"""Pattern matches (complex event processing) as alert events on ``hub.alerts``.

Both engines find the matches of a pattern (``projections.patterns``): the embedded engine
(``find_matches`` over the log) and Flink's ``MATCH_RECOGNIZE`` job (alert rows upserted into
PostgreSQL, ``FlinkViews.alert_rows``). ``PatternAlerts.raise_alerts(pattern, rows, engine)``
turns each match into one ``hub.AlertFired`` event through the hub's publisher, like the alert
rules' events (``hub.console.alerts``), so the console's alert list and the ledger see them.

Contract:
1. One match, one event per engine: the ``alert_id`` is derived from (engine, pattern, the
   match's key, ``projections.patterns.alert_key``), a UUIDv5, not a random UUIDv7, so that a
   detector run again (a restarted Flink job re-upserting its rows, the embedded engine
   re-reading the log) finds the id on the topic and appends nothing.
2. The rule is ``pattern.<name>``; the summary names the engine and the match's events; the
   value and threshold are exact decimal text (the amount against the reporting threshold, the
   trade price against the quote's ask plus the spike percentage).
3. Pattern alerts are fired, never resolved: a match is a finding for an analyst, not a
   condition that comes and goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from core.events import OutgoingEvent
from hub.console.alerts import ALERTS_TOPIC, FIRED
from projections.patterns import Pattern, Structuring, alert_key

if TYPE_CHECKING:
    from hub.bootstrap import Hub

Engine = Literal["embedded", "flink"]
_NAMESPACE = uuid.UUID("6f1d8a52-2b0e-5c1e-9a57-0c6a3f3b7e11")
PRODUCER = "hub.patterns"


def alert_id(engine: Engine, pattern: Pattern, row: Mapping[str, Any]) -> str:
    key = "\x1f".join(str(row[k]) for k in alert_key(pattern))
    return str(uuid.uuid5(_NAMESPACE, f"{engine}\x1e{pattern.name}\x1e{key}"))


def alert_value(engine: Engine, pattern: Pattern, row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hub.AlertFired`` value of one match (step 2 of the module docstring)."""
    if isinstance(pattern, Structuring):
        summary = (
            f"AML structuring: {row['payments']} payments just under {pattern.threshold} from "
            f"account {row['account_id']} (tenant {row['tenant']}) within "
            f"{pattern.within_ms // 60_000} minutes, {row['amount']} in total; first payment "
            f"at {pattern.topic}/{row['first_partition']}@{row['first_offset']}; found by "
            f"{engine}."
        )
        value, threshold, severity = row["amount"], pattern.threshold, "high"
    else:
        limit = Decimal(row["ask"]) * (100 + pattern.pct) / 100
        summary = (
            f"Price spike: trade {row['trade_id']} in {row['instrument']} (tenant "
            f"{row['tenant']}) at {row['price']}, more than {pattern.pct} % above the quoted "
            f"ask {row['ask']}; trade at {pattern.trades_topic}/{row['trade_partition']}@"
            f"{row['trade_offset']}; found by {engine}."
        )
        value, threshold, severity = row["price"], limit, "medium"
    return {
        "alert_id": alert_id(engine, pattern, row),
        "rule": f"pattern.{pattern.name}",
        "severity": severity,
        "summary": summary,
        "value": format(Decimal(value).normalize(), "f"),
        "threshold": format(Decimal(threshold).normalize(), "f"),
        "fired_at": datetime.now(UTC).isoformat(),
    }


class PatternAlerts:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def alert_ids(self) -> set[str]:
        """The ``alert_id`` of every alert event on the topic."""
        log = self.hub.log
        if ALERTS_TOPIC not in {t.name for t in log.topics()}:
            return set()
        out: set[str] = set()
        for part, end in log.end_offsets(ALERTS_TOPIC).items():
            offset = log.beginning_offsets(ALERTS_TOPIC).get(part, 0)
            while offset < end:
                batch = self.hub.reader.read(ALERTS_TOPIC, part, offset, 1000)
                if not batch:
                    break
                out.update(str((r["value"] or {}).get("alert_id", "")) for r in batch)
                offset = batch[-1]["offset"] + 1
        return out

    def raise_alerts(
        self, pattern: Pattern, rows: Iterable[Mapping[str, Any]], engine: Engine
    ) -> list[dict[str, Any]]:
        """One ``hub.AlertFired`` per match not alerted yet by ``engine`` (appended in one
        batch); the values appended."""
        seen = self.alert_ids()
        values = []
        for row in rows:
            value = alert_value(engine, pattern, row)
            if value["alert_id"] not in seen:
                seen.add(value["alert_id"])
                values.append((str(row.get("tenant") or "default"), value))
        by_tenant: dict[str, list[OutgoingEvent]] = {}
        for tenant, value in values:
            by_tenant.setdefault(tenant, []).append(
                OutgoingEvent(value=value, event_type=FIRED, key=value["rule"])
            )
        for tenant, events in by_tenant.items():
            self.hub.publisher.publish(ALERTS_TOPIC, events, producer=PRODUCER, tenant=tenant)
        return [v for _, v in values]


def engine_of(event: Mapping[str, Any]) -> str | None:
    """Which engine found a pattern alert (from its summary), or None for other alerts."""
    if not str(event.get("rule", "")).startswith("pattern."):
        return None
    text = str(event.get("summary", ""))
    return text.rsplit("found by ", 1)[-1].rstrip(".") if "found by " in text else None


def by_engine(events: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        engine = engine_of(e)
        if engine is not None:
            out.setdefault(engine, []).append(e)
    return out
