"""The CC6 access review (report kind ``access-review``, issue 15).

For the ``days`` UTC days (default ``REVIEW_DAYS``, 1 to ``MAX_REVIEW_DAYS``) ending with the
report's day:

- ``keys``: every API key (owner, roles, tenant, state, who issued it and when, expiry,
  revocation), never a secret, salt or hash;
- ``last_use``: per key, the last policy decision recorded with that key's id in the period and
  the number of allowed and denied ones (decisions record the key id beside the person, never
  the secret). Decisions without a key id (the hub's own services, and decisions recorded before
  the key id was) get one row per person with ``key_id`` empty: they cannot be told apart by key;
- ``unused_keys``: active keys that no decision in the period names and that were issued before
  it began (unused for at least ``days`` days);
- ``denied``: every denied decision in the period (who, what, which resource, why, when);
- ``approvals``: every policy and configuration change proposed in the period with who
  proposed it, who approved it and when.

A report cut to one tenant (``Collector.tenant_scope``) lists only that tenant's keys and the
decisions recorded for that tenant's principals; policy and configuration changes are hub-wide
and listed for every reader.

Decisions are read from ``hub.decisions`` from the first offset the ledger's index places in
the period, so the scan is proportional to the period, not to the whole log.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.errors import HubError, InvalidInput

if TYPE_CHECKING:
    from hub.reports_trading import Collector

REVIEW_DAYS = 30
MAX_REVIEW_DAYS = 366  # a year and a day: the scan is proportional to the period
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
    """The decisions recorded in [since_ms, until_ms) (log time), decoded; only those of the
    report's tenant when it is cut to one."""
    scope = c.tenant_scope
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
    for part, offset in first.items():
        if offset > 0 and not _older_before(hub.log, part, offset, since_ms):
            first[part] = 0  # the side index's time column contradicts the log: read it all
    out: list[dict[str, Any]] = []
    for part, end in hub.log.end_offsets(DECISIONS).items():
        offset = first.get(part, 0)
        while offset < end:
            batch = hub.reader.read(DECISIONS, part, offset, 2000)
            if not batch:
                break
            for r in batch:
                if since_ms <= r["timestamp_ms"] < until_ms and (
                    scope is None or r["value"].get("tenant") == scope
                ):
                    out.append(r["value"])
            if batch[-1]["timestamp_ms"] >= until_ms:
                break
            offset = batch[-1]["offset"] + 1
    return out


def _older_before(log: Any, part: int, offset: int, since_ms: int) -> bool:
    """Whether the log record just before ``offset`` is older than the period. The start comes
    from the ledger's side index, which a writer of the store file can rewrite (a decision
    dated out of the period there is only found by the full verify): the log itself must agree
    that nothing of the period lies before it, or the review reads from the beginning."""
    try:
        got = log.read(DECISIONS, part, offset - 1, 1)
    except HubError:  # below the log's start: nothing before
        return True
    # a transaction marker at offset - 1 answers the record at offset: cannot tell, read all
    return bool(got) and got[0].offset < offset and got[0].timestamp_ms < since_ms


def review_days(days: int | None) -> int:
    """The review period in days: ``days``, or ``REVIEW_DAYS``; refused outside 1..366."""
    if days is None:
        return REVIEW_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_REVIEW_DAYS:
        raise InvalidInput(
            f"days={days!r} is not a review period: give a whole number of days from 1 to "
            f"{MAX_REVIEW_DAYS} (default {REVIEW_DAYS}).",
            code="invalid_days",
        )
    return days


def access_review(c: Collector, day: date, days: int | None = None) -> dict[str, Any]:
    hub = c.hub
    period = review_days(days)
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=period)
    since_ms, until_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    keys = [
        {f: (", ".join(v) if isinstance(v, list) else v) for f, v in k.public(end).items()}
        for k in hub.keys.all()
        if c.tenant_scope is None or k.tenant == c.tenant_scope
    ]
    whose = "every" if c.tenant_scope is None else f"tenant {c.tenant_scope}'s"
    c.put("keys", "log", f"hub.keys folded: {whose} API keys (no secret)", list(_KEY_FIELDS), keys)

    decided = _decisions(c, since_ms, until_ms)
    of = "" if c.tenant_scope is None else f" of tenant {c.tenant_scope}"
    # per (key id, person): a key id is "" in decisions made without a key or recorded before
    # decisions carried it
    last: dict[tuple[str, str], str] = {}
    counts: Counter[tuple[str, str, bool]] = Counter()
    denied = []
    for d in decided:
        who, key_id = str(d["principal"]), str(d.get("key_id") or "")
        at = _iso_us(d["decided_at"])
        last[(key_id, who)] = max(last.get((key_id, who), ""), at)
        counts[(key_id, who, bool(d["allow"]))] += 1
        if not d["allow"]:
            denied.append(
                {
                    "decided_at": at,
                    "principal": who,
                    "key_id": key_id,
                    "roles": ", ".join(d.get("roles") or []),
                    "action": d["action"],
                    "resource": d["resource"],
                    "reason": d["reason"],
                    "decision_id": d["decision_id"],
                }
            )
    by_key = {k["key_id"]: k for k in keys}
    used = {key_id for key_id, _ in last if key_id}
    use_rows = [
        {
            "key_id": k["key_id"],
            "owner": k["owner"],
            "state": k["state"],
            "last_used_at": last.get((k["key_id"], k["owner"])),
            "allowed": counts[(k["key_id"], k["owner"], True)],
            "denied": counts[(k["key_id"], k["owner"], False)],
        }
        for k in sorted(keys, key=lambda k: (k["owner"], k["key_id"]))
    ]
    # decisions naming no key, or a key this hub does not know (or another owner's: never
    # merged into the key's row)
    use_rows += [
        {
            "key_id": key_id,
            "owner": who,
            "state": "no key" if not key_id else "unknown key",
            "last_used_at": at,
            "allowed": counts[(key_id, who, True)],
            "denied": counts[(key_id, who, False)],
        }
        for (key_id, who), at in sorted(last.items(), key=lambda x: (x[0][1], x[0][0]))
        if key_id not in by_key or by_key[key_id]["owner"] != who
    ]
    c.put(
        "last_use",
        "log",
        f"hub.decisions{of} from {start.isoformat()} to {end.isoformat()}: per API key, the last "
        "decision recorded with its key id and the allowed/denied counts; decisions without a "
        "key id (the hub's own services, or recorded before decisions carried it) per person",
        ["key_id", "owner", "state", "last_used_at", "allowed", "denied"],
        use_rows,
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
        and k["key_id"] not in used
        and (k["issued_at"] is None or k["issued_at"] < start.isoformat())
    ]
    c.put(
        "unused_keys",
        "log",
        f"active keys issued before {start.isoformat()} that no decision since names",
        ["key_id", "owner", "roles", "issued_at"],
        unused,
    )
    c.put(
        "denied",
        "log",
        f"hub.decisions{of} with allow = false from {start.isoformat()} to {end.isoformat()}",
        [
            "decided_at",
            "principal",
            "key_id",
            "roles",
            "action",
            "resource",
            "reason",
            "decision_id",
        ],
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
        "period_days": period,
        "unused_days": period,
        "denied_decisions": len(denied),
        "changes_reviewed": len(rows),
        "changes_without_second_person": sum(
            1 for r in rows if r["status"] != "pending_approval" and not r["approved_by"]
        ),
    }
