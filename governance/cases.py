"""Investigation cases (purpose of use) as a fold of the ``hub.cases`` topic.

Events (``domain/schemas/Case*.avsc``), in log order:
    CaseOpened   case id, reason, subjects in scope, investigators, tenant, opened_by,
                 expiry (Unix ns)
    CaseClosed   case id, closed_by, reason

A case is *open* from its ``CaseOpened`` until its ``CaseClosed``; it is *active* while open and
before its expiry. The policy decides with the open cases in its input (``context.open_cases``,
objects ``{id, investigators, tenant, expires_at}``, added by :meth:`CaseBook.enrich` whenever a
request names a case): it unmasks personal data only when the request's purpose is
``investigation``, the named case is open, ``context.now`` is before its expiry, the requester
is one of its investigators and the resource's tenant is the case's. Nothing is updated in
place; ``state()`` folds what was appended since its last call (another process may append).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core import clock
from core.errors import Conflict, InvalidInput, NotFound
from core.fold import TopicFold
from core.ports.policy import Decision, DecisionRequest, PolicyEngine, Principal
from domain.envelope import H_ID, H_TYPE, uuid7

if TYPE_CHECKING:
    from core.ports.eventlog import EventLog, StoredRecord
    from ingest.publish import EventReader, Publisher

CASES_TOPIC = "hub.cases"
OPENED = "hub.CaseOpened"
CLOSED = "hub.CaseClosed"
DEFAULT_EXPIRY_NS = 7 * 24 * 3600 * 1_000_000_000
# Longest a case may run: a case unmasks PII for its investigators without ``pii.read``, so it
# must end; a longer investigation opens a new case (a new decision on the record).
MAX_EXPIRY_NS = 90 * 24 * 3600 * 1_000_000_000
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class CaseNotFound(NotFound):
    code = "case_not_found"


class CaseClosedAlready(Conflict):
    code = "case_closed"


def parse_duration_ns(text: str) -> int:
    """``"90m"``, ``"12h"``, ``"7d"``, ``"2w"`` → nanoseconds; a clear error otherwise."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise InvalidInput(
            f"expires_in={text!r} is not a duration: give a positive number with a unit, "
            "e.g. 90m, 12h, 7d or 2w.",
            code="invalid_duration",
        )
    ns = int(m.group(1)) * _UNIT_S[m.group(2)] * 1_000_000_000
    if ns > MAX_EXPIRY_NS:
        raise InvalidInput(
            f"expires_in={text!r} is longer than a case may run (90d): open it for at most "
            "90d, and a new case when the investigation goes on.",
            code="invalid_duration",
        )
    return ns


@dataclass
class Case:
    case_id: str
    reason: str
    subjects: list[str]
    investigators: list[str]
    tenant: str
    opened_by: str
    opened_at: str
    expires_at_ns: int
    closed_by: str | None = None
    closed_at: str | None = None
    close_reason: str = ""

    def status(self, now_ns: int) -> str:
        if self.closed_at is not None:
            return "closed"
        return "expired" if now_ns >= self.expires_at_ns else "open"

    def as_dict(self, now_ns: int | None = None) -> dict[str, Any]:
        now = clock.now_ns() if now_ns is None else now_ns
        return {
            "case_id": self.case_id,
            "status": self.status(now),
            "reason": self.reason,
            "subjects": list(self.subjects),
            "investigators": list(self.investigators),
            "tenant": self.tenant,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "expires_at": datetime.fromtimestamp(self.expires_at_ns / 1e9, UTC).isoformat(),
            "closed_by": self.closed_by,
            "closed_at": self.closed_at,
            "close_reason": self.close_reason,
        }

    def policy_object(self) -> dict[str, Any]:
        """What the policy reads of an open case (``context.open_cases``)."""
        return {
            "id": self.case_id,
            "investigators": sorted(self.investigators),
            "tenant": self.tenant,
            "expires_at": self.expires_at_ns,
        }


@dataclass
class CaseState:
    cases: dict[str, Case] = field(default_factory=dict)
    position: int = 0

    def apply(self, event_type: str, v: Mapping[str, Any]) -> None:
        if event_type == OPENED:
            self.cases[v["case_id"]] = Case(
                v["case_id"],
                v.get("reason", ""),
                list(v.get("subjects") or []),
                list(v.get("investigators") or []),
                v.get("tenant", "default"),
                v.get("opened_by", ""),
                str(v.get("opened_at", "")),
                int(v["expires_at_ns"]),
            )
        elif event_type == CLOSED and v["case_id"] in self.cases:
            case = self.cases[v["case_id"]]
            case.closed_by = v.get("closed_by", "")
            case.closed_at = str(v.get("closed_at", ""))
            case.close_reason = v.get("reason", "")


class CaseBook:
    """Opens, closes and lists cases; gives the policy the open ones. Thread-safe."""

    def __init__(
        self, log: EventLog, reader: EventReader, publisher: Publisher, clock_ns: Any = None
    ) -> None:
        self._log = log
        self._reader = reader
        self._publisher = publisher
        self._clock_ns = clock_ns or time.time_ns
        self._state = CaseState()
        self._fold = TopicFold(log, CASES_TOPIC, self._apply, once_by=H_ID)

    # -- reading -----------------------------------------------------------------------------
    def state(self) -> CaseState:
        """The fold, brought up to date with what was appended since the last call."""
        with self._fold.lock:
            self._fold.catch_up()
            self._state.position = self._fold.positions.get(0, 0)
            return self._state

    def _apply(self, rec: StoredRecord) -> None:
        value = self._reader.decode(rec).get("value")
        if isinstance(value, dict):
            self._state.apply((rec.header(H_TYPE) or b"").decode(), value)

    def list_cases(self, *, status: str | None = None) -> list[dict[str, Any]]:
        now = self._clock_ns()
        out = [c.as_dict(now) for c in self.state().cases.values()]
        return [c for c in out if status is None or c["status"] == status]

    def get(self, case_id: str) -> Case:
        case = self.state().cases.get(case_id)
        if case is None:
            raise CaseNotFound(
                f"There is no case {case_id!r}: list the cases with `hub case list`."
            )
        return case

    def open_cases(self) -> list[dict[str, Any]]:
        """Every case not closed, expired or not (the policy checks expiry against now)."""
        return [c.policy_object() for c in self.state().cases.values() if c.closed_at is None]

    def enrich(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """``context`` with ``open_cases`` and ``known_cases`` when it names a case (else
        unchanged): what the policy needs to decide a purpose of use."""
        ctx = dict(context)
        if ctx.get("case"):
            state = self.state()
            ctx["open_cases"] = self.open_cases()
            ctx["known_cases"] = sorted(state.cases)
        return ctx

    # -- writing -----------------------------------------------------------------------------
    def open(
        self,
        *,
        reason: str,
        actor: str,
        tenant: str = "default",
        subjects: Sequence[str] = (),
        investigators: Sequence[str] = (),
        expires_in: str | None = None,
    ) -> dict[str, Any]:
        if not reason.strip():
            raise InvalidInput(
                "A case needs a reason: say which matter or request it serves (--reason).",
                code="reason_required",
            )
        for what, items in (("subject", subjects), ("investigator", investigators)):
            for item in items:
                if not isinstance(item, str) or not item.strip():
                    raise InvalidInput(
                        f"{what} {item!r} is not a non-empty string.", code=f"invalid_{what}"
                    )
        now = self._clock_ns()
        expiry = now + (DEFAULT_EXPIRY_NS if expires_in is None else parse_duration_ns(expires_in))
        case_id = f"CASE-{uuid7()}"
        value = {
            "case_id": case_id,
            "reason": reason.strip(),
            "subjects": sorted(set(subjects)),
            "investigators": sorted(set(investigators) or {actor}),
            "tenant": tenant,
            "opened_by": actor,
            "opened_at": datetime.fromtimestamp(now / 1e9, UTC).isoformat(),
            "expires_at_ns": expiry,
        }
        self._publish(OPENED, value, actor, tenant)
        return self.get(case_id).as_dict(now)

    def close(self, case_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        case = self.get(case_id)
        if case.closed_at is not None:
            raise CaseClosedAlready(
                f"Case {case_id!r} was already closed by {case.closed_by!r} at {case.closed_at}."
            )
        now = self._clock_ns()
        value = {
            "case_id": case_id,
            "closed_by": actor,
            "reason": reason,
            "closed_at": datetime.fromtimestamp(now / 1e9, UTC).isoformat(),
        }
        self._publish(CLOSED, value, actor, case.tenant)
        return self.get(case_id).as_dict(now)

    def _publish(self, event_type: str, value: dict[str, Any], actor: str, tenant: str) -> None:
        from core.events import OutgoingEvent

        self._publisher.publish(
            CASES_TOPIC,
            [OutgoingEvent(value=value, event_type=event_type, key=value["case_id"])],
            producer=actor,
            tenant=tenant,
        )


def decide_on_case(
    policy: PolicyEngine,
    principal: Principal,
    action: str,
    case: Case,
    context: Mapping[str, Any],
) -> Decision:
    """The policy's decision on ``action`` (``case.read``, ``case.close``) for ``case``, asked
    about the case's own tenant: another tenant's case needs ``tenant.all`` or a grant of that
    tenant. Callers MUST ask it before showing or changing one case."""
    resource = f"cases/{case.case_id}"
    return policy.decide(principal, action, resource, {**context, "tenant": case.tenant})


def cases_within(
    policy: PolicyEngine,
    principal: Principal,
    cases: Sequence[dict[str, Any]],
    context: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The cases (``as_dict``) ``principal`` may read: its own tenant's (the caller has been
    allowed ``case.read``), and another tenant's only where ``case.read`` asked about that
    tenant is allowed (``tenant.all`` or a grant). One decision per other tenant listed; each
    is recorded like any decision."""
    allowed = {principal.tenant: True}
    for tenant in sorted({str(c["tenant"]) for c in cases} - {principal.tenant}):
        decision = policy.decide(principal, "case.read", "cases", {**context, "tenant": tenant})
        allowed[tenant] = decision.allow
    return [c for c in cases if allowed[str(c["tenant"])]]


PURPOSE_HEADERS = (("x-hub-purpose", "purpose"), ("x-hub-case", "case"))


def purpose_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The purpose of use a request declares (``X-Hub-Purpose``, ``X-Hub-Case``) as context."""
    return {key: headers[h] for h, key in PURPOSE_HEADERS if h in headers}


class WithContext(PolicyEngine):
    """A policy engine that adds ``context`` to every decision it asks ``inner`` for: the
    decisions a service takes on a request's behalf (e.g. ``pii.read`` for a query) carry the
    request's purpose of use."""

    def __init__(self, inner: PolicyEngine, context: Mapping[str, Any]) -> None:
        self.inner = inner
        self.context = dict(context)

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        return self.inner.decide(principal, action, resource, {**self.context, **(context or {})})

    def decide_many(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        return self.inner.decide_many(
            [(p, a, r, {**self.context, **(c or {})}) for p, a, r, c in requests]
        )
