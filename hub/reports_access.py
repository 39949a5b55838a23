"""The CC6 access review (report kind ``access-review``, issue 15).

For the ``REVIEW_DAYS`` UTC days ending with the report's day:

- ``keys``: every API key (owner, roles, tenant, state, who issued it and when, expiry,
  revocation), never a secret, salt or hash;
- ``last_use``: per key owner, the last policy decision recorded for that person in the period
  (decisions record the person, not the key: keys of one owner share it) and the number of
  allowed and denied decisions;
- ``unused_keys``: active keys whose owner has no recorded decision in the period and that were
  issued before it began (unused for at least ``REVIEW_DAYS`` days);
- ``denied``: every denied decision in the period (who, what, which resource, why, when);
- ``approvals``: every policy and configuration change proposed in the period with who
  proposed it, who approved it and when.

Decisions are read from ``hub.decisions`` from the first offset the ledger's index places in
the period, so the scan is proportional to the period, not to the whole log.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.reports_trading import Collector

REVIEW_DAYS = 30
DECISIONS = "hub.decisions"
_KEY_FIELDS = (
    "key_id",
    "owner",
    "roles",
    "tenant",
    "state",
    "issued_by",
    "issued_at",
    "expires_at",
    "revoked_at",
    "replaces",
)


def _iso_us(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1e6, tz=UTC).isoformat()
    return str(value)


def _decisions(c: Collector, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
    """The decisions recorded in [since_ms, until_ms) (log time), decoded."""
    hub = c.hub
    if DECISIONS not in {t.name for t in hub.log.topics()}:
        return []
    first: dict[int, int] = {}
    for row in hub.ledger.store.query(
        topic=DECISIONS, since_ms=since_ms, until_ms=until_ms, limit=1
    ):
        first[row[2]] = row[3]
    if not first:  # the ledger covers every record (the report synced it): none in the period
        return []
    out: list[dict[str, Any]] = []
    for part, end in hub.log.end_offsets(DECISIONS).items():
        offset = first.get(part, 0)
        while offset < end:
            batch = hub.reader.read(DECISIONS, part, offset, 2000)
            if not batch:
                break
            for r in batch:
                if since_ms <= r["timestamp_ms"] < until_ms:
                    out.append(r["value"])
            if batch[-1]["timestamp_ms"] >= until_ms:
                break
            offset = batch[-1]["offset"] + 1
    return out


def access_review(c: Collector, day: date) -> dict[str, Any]:
    hub = c.hub
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=REVIEW_DAYS)
    since_ms, until_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    keys = [
        {f: (", ".join(v) if isinstance(v, list) else v) for f, v in k.public(end).items()}
        for k in hub.keys.all()
    ]
    c.put("keys", "log", "hub.keys folded: every API key (no secret)", list(_KEY_FIELDS), keys)

    decided = _decisions(c, since_ms, until_ms)
    last: dict[str, str] = {}
    counts: Counter[tuple[str, bool]] = Counter()
    denied = []
    for d in decided:
        who = str(d["principal"])
        at = _iso_us(d["decided_at"])
        last[who] = max(last.get(who, ""), at)
        counts[(who, bool(d["allow"]))] += 1
        if not d["allow"]:
            denied.append(
                {
                    "decided_at": at,
                    "principal": who,
                    "roles": ", ".join(d.get("roles") or []),
                    "action": d["action"],
                    "resource": d["resource"],
                    "reason": d["reason"],
                    "decision_id": d["decision_id"],
                }
            )
    owners = sorted({k["owner"] for k in keys} | set(last))
    c.put(
        "last_use",
        "log",
        f"hub.decisions from {start.isoformat()} to {end.isoformat()}: last decision and "
        "counts per person (decisions name the person, not the key)",
        ["owner", "last_decision_at", "allowed", "denied"],
        [
            {
                "owner": o,
                "last_decision_at": last.get(o),
                "allowed": counts[(o, True)],
                "denied": counts[(o, False)],
            }
            for o in owners
        ],
    )
    unused = [
        {
            "key_id": k["key_id"],
            "owner": k["owner"],
            "roles": k["roles"],
            "issued_at": k["issued_at"],
        }
        for k in keys
        if k["state"] == "active"
        and k["owner"] not in last
        and (k["issued_at"] is None or k["issued_at"] < start.isoformat())
    ]
    c.put(
        "unused_keys",
        "log",
        f"active keys issued before {start.isoformat()} whose owner has no decision since",
        ["key_id", "owner", "roles", "issued_at"],
        unused,
    )
    c.put(
        "denied",
        "log",
        f"hub.decisions with allow = false from {start.isoformat()} to {end.isoformat()}",
        ["decided_at", "principal", "roles", "action", "resource", "reason", "decision_id"],
        denied,
    )
    approvals = []
    in_period = start.isoformat(), end.isoformat()
    policy = hub.policy_changes.store
    policy.refresh()
    for ch in policy.changes():
        s = ch.summary()
        approvals.append(("policy", s["change_id"], s, s.get("activated_at")))
    config = hub.config_changes.store
    config.refresh()
    for cc in config.changes():
        s = cc.summary()
        approvals.append((f"config {s['resource']}", s["change_id"], s, s.get("applied_at")))
    rows = [
        {
            "what": what,
            "change_id": change_id,
            "status": s["status"],
            "proposed_by": s["proposed_by"],
            "proposed_at": str(s["proposed_at"]),
            "approved_by": ", ".join(a["approved_by"] for a in s.get("approvals") or []),
            "approved_at": ", ".join(str(a["approved_at"]) for a in s.get("approvals") or []),
            "in_force_at": None if done is None else str(done),
            "reason": s["reason"],
        }
        for what, change_id, s, done in approvals
        if in_period[0] <= str(s["proposed_at"]) < in_period[1]
    ]
    c.put(
        "approvals",
        "log",
        "hub.policy and hub.config-changes: changes proposed in the period, their approvers",
        [
            "what",
            "change_id",
            "status",
            "proposed_by",
            "proposed_at",
            "approved_by",
            "approved_at",
            "in_force_at",
            "reason",
        ],
        rows,
    )
    return {
        "day": day.isoformat(),
        "period_from": start.isoformat(),
        "period_to": end.isoformat(),
        "keys": len(keys),
        "active_keys": sum(1 for k in keys if k["state"] == "active"),
        "unused_keys": len(unused),
        "unused_days": REVIEW_DAYS,
        "denied_decisions": len(denied),
        "changes_reviewed": len(rows),
        "changes_without_second_person": sum(
            1 for r in rows if r["status"] != "pending_approval" and not r["approved_by"]
        ),
    }
