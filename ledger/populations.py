"""What each evidence-pack entry says: who, what, on which resource, under which policy, and
for a change its diff and approver, read from the control-plane event itself.

:func:`describe` fills these display fields of each entry (``entries.jsonl``, the reports):

    event_type      the ``ce_type`` header (``hub.PolicyDecisionRecorded``, ...), or the
                    registry record kind for ``_schemas``
    actor           who acted: the decision's principal, the key's issuer, the change's proposer
    action          what was done: the decided action, ``key.issue``, ``schema.register`` ...
    resource        what it touched: the decided path, the key id, the subject, the setting
    outcome         ``allow``/``deny`` for decisions, the audit action's outcome, ...
    policy_version  for a decision the bundle version that decided it; for anything else the
                    bundle in force at the entry's log time (the fold of activations on
                    ``hub.policies``, the shipped bundle before the first)
    decision_id     for decisions; for a registry change the decision that authorised it
    reason, approver, diff, case_id, details   when the event carries them

Only control-plane topics (``hub.*``, ``_schemas``) are decoded; business records never are, so
no payload reaches a pack. A quarantined record shows its rule and reason code, never its bytes.
Registry records carry no actor of their own: the actor is the principal of the latest allowed
``schema.*``/``registry.config`` decision naming the subject at or before the record (the hub
itself when none, e.g. the shipped schemas registered at start-up).
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from core.errors import TopicNotFound
from core.ports.eventlog import StoredRecord
from domain.envelope import H_SOURCE, H_TYPE

if TYPE_CHECKING:
    from ingest.publish import EventReader
    from ledger.service import Ledger

DECISIONS = "hub.decisions"
POLICIES = "hub.policies"
CONFIG_CHANGES = "hub.config-changes"
SCHEMAS = "_schemas"
REGISTRY_ACTIONS = ("schema.write", "schema.delete", "registry.config")
_MAX_DIFF = 20_000
_KEY_VERBS = {"issued": "issue", "revoked": "revoke", "rotated": "rotate", "expired": "expire"}


def unified_diff(old: str | None, new: str | None, name: str) -> str:
    """A unified diff of two JSON texts (pretty-printed first), at most ``_MAX_DIFF`` chars."""

    def pretty(text: str | None) -> list[str]:
        if text is None:
            return []
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        return text.splitlines(keepends=True)

    out = "".join(difflib.unified_diff(pretty(old), pretty(new), f"a/{name}", f"b/{name}", n=2))
    return out if len(out) <= _MAX_DIFF else out[:_MAX_DIFF] + "\n... (diff truncated)\n"


def _header(record: StoredRecord, name: str) -> str | None:
    raw = record.header(name)
    return None if raw is None else raw.decode("utf-8", "replace")


class Describer:
    """Decodes control-plane records and answers their display fields (one pack export)."""

    def __init__(
        self,
        ledger: Ledger,
        reader: EventReader,
        default_policy: str,
        tenant_scope: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.tenant_scope = tenant_scope  # decisions looked up: this tenant's and untenanted
        self.reader = reader
        self.default_policy = default_policy
        self._timeline: tuple[list[int], list[str]] | None = None
        self._approvals: dict[str, list[dict[str, Any]]] | None = None
        self._first_proposals: dict[tuple[str, str], tuple[int, int]] | None = None
        self._schema_history: dict[tuple[int, int], str | None] | None = None
        self._applied: list[tuple[int, dict[str, Any]]] | None = None

    # -- folds over whole (small) control-plane topics, built once per export ----------------
    def _scan(self, topic: str) -> Iterable[StoredRecord]:
        try:
            parts = self.ledger.log.beginning_offsets(topic)
        except TopicNotFound:
            return
        for part, start in sorted(parts.items()):
            yield from self.ledger.log.scan(topic, part, start)

    def _value(self, record: StoredRecord) -> dict[str, Any]:
        try:
            value = self.reader.decode(record, mask_pii=True).get("value")
        except Exception:  # a display field: an undecodable record shows its headers only
            return {}
        return value if isinstance(value, dict) else {}

    def policy_at(self, ts_ms: int) -> str:
        """The policy bundle version in force at log time ``ts_ms``."""
        if self._timeline is None:
            times: list[int] = []
            versions: list[str] = []
            for r in self._scan(POLICIES):
                if _header(r, H_TYPE) == "hub.PolicyChangeActivated":
                    v = self._value(r).get("bundle_version")
                    if isinstance(v, str):
                        times.append(r.timestamp_ms)
                        versions.append(v)
            self._timeline = (times, versions)
        times, versions = self._timeline
        i = bisect.bisect_right(times, ts_ms)
        return versions[i - 1] if i else self.default_policy

    def approvals(self, change_id: str) -> list[dict[str, Any]]:
        """Every approval of a policy or configuration change, wherever it is in the log."""
        if self._approvals is None:
            found: dict[str, list[dict[str, Any]]] = {}
            for topic in (POLICIES, CONFIG_CHANGES):
                for r in self._scan(topic):
                    if (_header(r, H_TYPE) or "").endswith("ChangeApproved"):
                        v = self._value(r)
                        found.setdefault(str(v.get("change_id")), []).append(v)
            self._approvals = found
        return self._approvals.get(change_id, [])

    def first_proposal(self, topic: str, change_id: str) -> tuple[int, int] | None:
        """(partition, offset) of the first ``...ChangeProposed`` under ``change_id`` on
        ``topic``: the one the hub's folds keep (``governance.store``); a later one is ignored."""
        if self._first_proposals is None:
            found: dict[tuple[str, str], tuple[int, int]] = {}
            for t in (POLICIES, CONFIG_CHANGES):
                for r in self._scan(t):
                    if (_header(r, H_TYPE) or "").endswith("ChangeProposed"):
                        cid = str(self._value(r).get("change_id"))
                        found.setdefault((t, cid), (r.partition, r.offset))
            self._first_proposals = found
        return self._first_proposals.get((topic, change_id))

    def previous_schema(self, record: StoredRecord, subject: str) -> str | None:
        """The schema text of ``subject``'s latest registration before ``record``."""
        if self._schema_history is None:
            history: dict[tuple[int, int], str | None] = {}
            last: dict[str, str] = {}
            for r in self._scan(SCHEMAS):
                key, value = _registry_json(r.key), _registry_json(r.value)
                subj = key.get("subject")
                if key.get("keytype") != "SCHEMA" or not isinstance(subj, str):
                    continue
                history[(r.partition, r.offset)] = last.get(subj)
                if isinstance(value.get("schema"), str) and not value.get("deleted"):
                    last[subj] = value["schema"]
            self._schema_history = history
        return self._schema_history.get((record.partition, record.offset))

    def applied_change(self, ts_ms: int, resource: str) -> dict[str, Any] | None:
        """The governed change applied to ``resource`` last, within a minute before ``ts_ms``."""
        if self._applied is None:
            self._applied = [
                (r.timestamp_ms, self._value(r))
                for r in self._scan(CONFIG_CHANGES)
                if _header(r, H_TYPE) == "hub.ConfigChangeApplied"
            ]
        best = None
        for ts, v in self._applied:
            if ts_ms - 60_000 <= ts <= ts_ms + 1_000 and v.get("resource") == resource:
                best = v
        return best

    def authorising_decision(self, ts_ms: int, subject: str) -> dict[str, Any] | None:
        """The latest allowed registry decision naming ``subject`` at or before ``ts_ms``."""
        best: dict[str, Any] | None = None
        for action in REGISTRY_ACTIONS:
            after = -1
            while True:
                rows = self.ledger.store.query(
                    topic=DECISIONS,
                    action=action,
                    tenant_scope=self.tenant_scope,
                    since_ms=ts_ms - 60_000,
                    until_ms=ts_ms + 1,
                    after=after,
                    limit=1_000,
                )
                if not rows:
                    break
                for row in rows:
                    resource = row[7] or ""
                    if subject not in resource.split("/"):
                        continue
                    if best is not None and row[4] < best["ts"]:
                        continue
                    rec = self.ledger.record_at(row[1], row[2], row[3])
                    v = {} if rec is None else self._value(rec)
                    if v.get("allow"):
                        best = {"ts": row[4], "value": v}
                after = rows[-1][0]
        return None if best is None else best["value"]

    # -- one entry ---------------------------------------------------------------------------
    def describe(self, entry: dict[str, Any], record: StoredRecord) -> None:
        topic = record.topic
        event_type = _header(record, H_TYPE)
        entry["event_type"] = event_type
        entry["policy_version"] = self.policy_at(record.timestamp_ms)
        entry.setdefault("actor", None)
        if entry.get("actor") is None:
            entry["actor"] = _header(record, H_SOURCE)
        if topic == SCHEMAS:
            self._registry(entry, record)
            return
        if not (topic.startswith("hub.")):
            return
        v = self._value(record)
        short = (event_type or "").rsplit(".", 1)[-1]
        if topic == DECISIONS:
            entry.update(
                actor=v.get("principal"),
                action=v.get("action"),
                resource=v.get("resource"),
                outcome="allow" if v.get("allow") else "deny",
                policy_version=v.get("policy_version"),
                decision_id=v.get("decision_id"),
                reason=v.get("reason"),
                case_id=v.get("case_id") or None,
            )
        elif short.startswith("ApiKey"):
            verb = short[len("ApiKey") :].lower() or "change"
            by = next((v[k] for k in v if k.endswith("_by") and isinstance(v[k], str)), None)
            entry.update(
                actor=by or entry["actor"],
                action="key." + _KEY_VERBS.get(verb, verb),
                resource=v.get("key_id"),
                reason=v.get("reason") or None,
                details={k: v[k] for k in ("principal", "roles", "tenant") if k in v},
            )
        elif short.endswith("ChangeProposed"):
            change_id = str(v.get("change_id"))
            approvals = self.approvals(change_id)
            entry.update(
                actor=v.get("proposed_by"),
                action=("policy" if topic == POLICIES else "config") + ".propose",
                resource=v.get("resource"),
                reason=v.get("reason"),
                diff=v.get("diff"),
                approver=", ".join(str(a.get("approved_by")) for a in approvals) or None,
                details={"change_id": v.get("change_id"), "kind": v.get("kind")}
                | ({"bundle_version": v["bundle_version"]} if "bundle_version" in v else {}),
            )
            if self.first_proposal(topic, change_id) not in (
                None,
                (record.partition, record.offset),
            ):
                # a later proposal under the id: the hub ignored it, nobody approved its content
                entry.update(
                    outcome="ignored",
                    approver=None,
                    reason=f"a later proposal under change {change_id}: ignored by the hub (the "
                    f"first proposal stands, and the approvals are of that one); its own reason: "
                    f"{v.get('reason')!r}",
                )
        elif short.endswith("ChangeApproved"):
            entry.update(
                actor=v.get("approved_by"),
                approver=v.get("approved_by"),
                action=("policy" if topic == POLICIES else "config") + ".approve",
                resource=v.get("change_id"),
                reason=v.get("reason") or None,
            )
        elif short.endswith("ChangeActivated") or short.endswith("ChangeApplied"):
            entry.update(
                actor=v.get("activated_by") or v.get("applied_by"),
                action=("policy.activate" if topic == POLICIES else "config.apply"),
                resource=v.get("resource") or v.get("change_id"),
                details={
                    k: v[k] for k in ("change_id", "bundle_version", "previous_version") if k in v
                },
            )
        elif short == "ConfigChanged":
            entry.update(
                actor=v.get("changed_by"),
                action="config.change",
                resource=v.get("key"),
                reason=v.get("reason") or None,
                diff=unified_diff(v.get("old_value"), v.get("new_value"), str(v.get("key"))),
            )
        elif short == "RecordQuarantined":
            attempt = int(v.get("attempt") or 1)
            entry.update(
                actor=v.get("source"),
                action="quarantine.replay" if attempt > 1 else "quarantine.record",
                resource=v.get("topic"),
                outcome=v.get("reason_code"),
                details={"rule_id": v.get("rule_id"), "field_path": v.get("field_path")},
            )
        elif short in ("CaseOpened", "CaseClosed"):
            opened = short == "CaseOpened"
            entry.update(
                actor=v.get("opened_by" if opened else "closed_by"),
                action="case.open" if opened else "case.close",
                resource=v.get("case_id"),
                reason=v.get("reason") or None,
                details={"investigators": v.get("investigators"), "subjects": len(v["subjects"])}
                if opened
                else None,
            )
        elif topic == "hub.audit":
            try:
                details = json.loads(v.get("details") or "{}")
            except ValueError:
                details = {}
            entry.update(
                actor=v.get("actor", entry["actor"]),
                action=v.get("action", entry.get("action")),
                outcome=v.get("outcome"),
                details=details or None,
            )
        elif short:
            by = next((v[k] for k in v if k.endswith("_by") and isinstance(v[k], str)), None)
            entry.update(actor=by or entry["actor"], action=entry.get("action") or short)

    def _registry(self, entry: dict[str, Any], record: StoredRecord) -> None:
        key, value = _registry_json(record.key), _registry_json(record.value)
        kind = str(key.get("keytype") or "")
        subject = key.get("subject")
        if kind == "SCHEMA":
            deleted = record.value is None or bool(value.get("deleted"))
            action = "schema.delete" if deleted else "schema.register"
            entry["resource"] = f"{subject} v{key.get('version')}"
            if not deleted and isinstance(subject, str):
                entry["diff"] = unified_diff(
                    self.previous_schema(record, subject), value.get("schema"), subject
                )
        elif kind == "CONFIG":
            action = "registry.config"
            entry["resource"] = subject or "(global)"
            entry["diff"] = unified_diff(None, json.dumps(value) if value else None, "config")
            applied = self.applied_change(record.timestamp_ms, f"registry.config:{subject or ''}")
            if applied is not None:  # applied by a governed change: its approver acted
                entry.update(
                    event_type="registry.CONFIG",
                    action=action,
                    actor=applied.get("applied_by"),
                    details={"change_id": applied.get("change_id")},
                )
                entry["approver"] = ", ".join(
                    str(a.get("approved_by")) for a in self.approvals(str(applied["change_id"]))
                )
                return
        elif kind == "DELETE_SUBJECT":
            action, entry["resource"] = "schema.delete", subject
        else:
            action = f"registry.{kind.lower() or 'record'}"
        entry["event_type"] = f"registry.{kind or 'record'}"
        entry["action"] = action
        decision = self.authorising_decision(record.timestamp_ms, str(subject or ""))
        if decision is None:
            entry["actor"] = "hub (no request: registered by the hub itself)"
        else:
            entry.update(
                actor=decision.get("principal"),
                policy_version=decision.get("policy_version"),
                decision_id=decision.get("decision_id"),
            )


def _registry_json(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        got = json.loads(raw)
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}


def ingest_counts(
    ledger: Ledger, since_ms: int, until_ms: int, tenant_scope: str | None = None
) -> dict[str, int]:
    """Records appended per topic in ``[since_ms, until_ms)`` (log time), from the ledger; with
    ``tenant_scope``, only that tenant's and those with no tenant (counted from the rows)."""
    if tenant_scope is None:
        return ledger.store.count_by_topic(since_ms, until_ms)
    counts: dict[str, int] = {}
    after = -1
    while rows := ledger.store.query(
        since_ms=since_ms, until_ms=until_ms, tenant_scope=tenant_scope, after=after, limit=10_000
    ):
        for row in rows:
            counts[row[1]] = counts.get(row[1], 0) + 1
        after = rows[-1][0]
    return dict(sorted(counts.items()))
