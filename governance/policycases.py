"""The policy's test cases as data, driven from Python over any engine.

The same cases as ``authz_test.rego`` (rego-cpp cannot run Rego tests: see that file), plus the
whole role table: every role × every action of the bundle's ``data.hub.role_actions``. They run

- in the contract suite, against the embedded engine and a real OPA server (identical answers);
- in ``hub policy propose``, against the proposed bundle before it may become an event.

Role-table cases come from the bundle under test; the attribute cases (tenant isolation, purpose
of use, grants, malformed input) pick their roles from its data too, so that a change of the role
table alone does not need new cases here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.policybundle import PolicyBundle
from core.ports.policy import Decision

NOW = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in Unix ns: cases never read a clock
ALL_TENANTS = "tenant.all"  # a role granting it crosses tenants, unfiltered
PII_READ = "pii.read"  # a role granting it sees classified fields unmasked


@dataclass(frozen=True)
class Case:
    """One input and what the decision must be (``None``: not checked)."""

    name: str
    input: Any
    allow: bool
    reason: str | None = None
    reason_prefix: str | None = None
    mask: tuple[str, ...] | None = None
    row_filter: Mapping[str, str] | None = field(default=None)

    def check(self, d: Decision) -> list[str]:
        """Every way ``d`` differs from this case; empty when it passes."""
        problems = []
        if d.allow != self.allow:
            problems.append(f"allow is {d.allow}, expected {self.allow} ({d.reason})")
        if self.reason is not None and d.reason != self.reason:
            problems.append(f"reason is {d.reason!r}, expected {self.reason!r}")
        if self.reason_prefix is not None and not d.reason.startswith(self.reason_prefix):
            problems.append(f"reason {d.reason!r} does not start with {self.reason_prefix!r}")
        if self.mask is not None and tuple(d.mask) != self.mask:
            problems.append(f"mask is {list(d.mask)}, expected {list(self.mask)}")
        if self.row_filter is not None and dict(d.row_filter) != dict(self.row_filter):
            problems.append(f"row_filter is {dict(d.row_filter)}, expected {self.row_filter}")
        return problems


def person(pid: str, roles: list[str], tenant: str = "acme") -> dict[str, Any]:
    return {"id": pid, "roles": roles, "tenant": tenant, "attributes": {}}


def request(
    principal: Any, action: Any, resource: Any = "topics/trades", **context: Any
) -> dict[str, Any]:
    return {
        "principal": principal,
        "action": action,
        "resource": resource,
        "context": {"now": NOW, **context},
    }


def role_table_cases(bundle: PolicyBundle) -> list[Case]:
    """Every role × action of the bundle's data: allowed exactly when the role grants it."""
    data = bundle.hub_data
    table: Mapping[str, Any] = data.get("role_actions", {})
    admin_roles = roles_granting(bundle, ALL_TENANTS)
    reads = set(data.get("read_actions", []))
    masked = tuple(sorted(data.get("masked_classifications", [])))
    unmasked_roles = roles_granting(bundle, PII_READ)
    out = []
    for role in data.get("roles", []):
        for action in data.get("actions", []):
            pid = f"p-{role}"
            granted = action in table.get(role, [])
            if granted:
                is_read = action in reads
                out.append(
                    Case(
                        f"role {role} may {action}",
                        request(person(pid, [role]), action),
                        True,
                        reason=f"role '{role}' grants '{action}'",
                        mask=masked if is_read and role not in unmasked_roles else (),
                        row_filter={"tenant": "acme"}
                        if is_read and role not in admin_roles
                        else {},
                    )
                )
            else:
                out.append(
                    Case(
                        f"role {role} may not {action}",
                        request(person(pid, [role]), action),
                        False,
                        reason=f"no role of principal '{pid}' (roles: {role}) grants '{action}' "
                        "on 'topics/trades'",
                        mask=(),
                        row_filter={},
                    )
                )
    return out


def roles_granting(bundle: PolicyBundle, action: str) -> set[str]:
    table = bundle.hub_data.get("role_actions", {})
    return {str(r) for r, actions in table.items() if action in actions}


def _plain_role(bundle: PolicyBundle, *, grants: str | None, lacks: str | None) -> str | None:
    """A role without ``tenant.all`` and ``pii.read`` that grants / lacks the given actions."""
    special = roles_granting(bundle, ALL_TENANTS) | roles_granting(bundle, PII_READ)
    table = bundle.hub_data.get("role_actions", {})
    for role in bundle.hub_data.get("roles", []):
        actions = table.get(role, [])
        if role in special or (grants and grants not in actions) or (lacks and lacks in actions):
            continue
        return str(role)
    return None


def _case(*, expires: int = NOW + 1, who: str = "ann", tenant: str = "acme") -> dict[str, Any]:
    """Context of a request under case CASE-7 as the hub sends it (``governance.cases``)."""
    case = {"id": "CASE-7", "investigators": [who], "tenant": tenant, "expires_at": expires}
    return {"open_cases": [case], "known_cases": ["CASE-7"]}


def attribute_cases(bundle: PolicyBundle) -> list[Case]:
    """Tenant isolation, purpose of use, time-bound grants, unknown actions, malformed input."""
    data = bundle.hub_data
    masked = tuple(sorted(data.get("masked_classifications", [])))
    purpose = data.get("investigation_purpose", "investigation")
    out: list[Case] = []
    reader = _plain_role(bundle, grants="event.read", lacks=None)
    admin = next(iter(sorted(roles_granting(bundle, ALL_TENANTS))), None)
    if reader:
        ann = person("ann", [reader])
        out += [
            Case(
                "tenant isolation: another tenant's resource is denied",
                request(ann, "event.read", tenant="globex"),
                False,
                reason="tenant isolation: principal 'ann' of tenant 'acme' may not act on "
                "tenant 'globex'",
                mask=(),
                row_filter={},
            ),
            Case(
                "tenant isolation: own tenant named explicitly is allowed",
                request(ann, "event.read", tenant="acme"),
                True,
                row_filter={"tenant": "acme"},
            ),
            Case(
                "reads are filtered to the principal's tenant and masked",
                request(ann, "event.read"),
                True,
                mask=masked,
                row_filter={"tenant": "acme"},
            ),
            Case(
                "purpose: an open investigation unmasks",
                request(ann, "event.read", purpose=purpose, case="CASE-7", open_cases=["CASE-7"]),
                True,
                mask=(),
                row_filter={"tenant": "acme"},
            ),
            Case(
                "purpose: a case the hub does not know is denied",
                request(ann, "event.read", purpose=purpose, case="CASE-8", open_cases=["CASE-7"]),
                False,
                reason="purpose of use: case 'CASE-8' is not a case of this hub; open one with "
                "`hub case open` or POST /v1/cases",
            ),
            Case(
                "purpose: an investigation that names no case is denied",
                request(ann, "event.read", purpose=purpose),
                False,
                reason="purpose of use: an investigation must name its case (X-Hub-Case)",
            ),
            Case(
                "purpose: a known case that is no longer open stays masked",
                request(
                    ann,
                    "event.read",
                    purpose=purpose,
                    case="CASE-8",
                    open_cases=["CASE-7"],
                    known_cases=["CASE-7", "CASE-8"],
                ),
                True,
                mask=masked,
            ),
            Case(
                "purpose: an open, unexpired case naming the requester unmasks",
                request(ann, "event.read", purpose=purpose, case="CASE-7", **_case()),
                True,
                mask=(),
                row_filter={"tenant": "acme"},
            ),
            Case(
                "purpose: an open investigation grants pii.read",
                request(ann, PII_READ, purpose=purpose, case="CASE-7", **_case()),
                True,
                reason="open investigation case 'CASE-7' grants 'pii.read'",
            ),
            Case(
                "purpose: an expired case stays masked",
                request(ann, "event.read", purpose=purpose, case="CASE-7", **_case(expires=NOW)),
                True,
                mask=masked,
            ),
            Case(
                "purpose: an expired case grants no pii.read",
                request(ann, PII_READ, purpose=purpose, case="CASE-7", **_case(expires=NOW)),
                False,
            ),
            Case(
                "purpose: a case of other investigators stays masked",
                request(ann, "event.read", purpose=purpose, case="CASE-7", **_case(who="bob")),
                True,
                mask=masked,
            ),
            Case(
                "purpose: a case of another tenant stays masked",
                request(
                    ann, "event.read", purpose=purpose, case="CASE-7", **_case(tenant="globex")
                ),
                True,
                mask=masked,
            ),
            Case(
                "purpose: another purpose with an open case stays masked",
                request(
                    ann, "event.read", purpose="reporting", case="CASE-7", open_cases=["CASE-7"]
                ),
                True,
                mask=masked,
            ),
            Case(
                "purpose: an open case without the investigation purpose stays masked",
                request(ann, "event.read", case="CASE-7", open_cases=["CASE-7"]),
                True,
                mask=masked,
            ),
        ]
    if admin:
        root = person("root", [admin])
        out += [
            Case(
                "tenant isolation: an admin crosses tenants, unfiltered and unmasked",
                request(root, "event.read", tenant="globex"),
                True,
                mask=(),
                row_filter={},
            ),
            Case(
                "an unknown action is denied even to an admin",
                request(root, "nuke.everything"),
                False,
                reason="unknown action 'nuke.everything'",
            ),
        ]
    outsider = _plain_role(bundle, grants=None, lacks="event.publish")
    if outsider:
        bob = person("bob", [outsider])

        def grant(expires_at: int, **over: Any) -> dict[str, Any]:
            return {
                "id": "g-1",
                "principal": "bob",
                "actions": ["event.publish"],
                "resource": "topics/",
                "expires_at": expires_at,
                **over,
            }

        out += [
            Case(
                "grant: a valid grant allows",
                request(bob, "event.publish", grants=[grant(NOW + 1)]),
                True,
                reason="grant 'g-1' grants 'event.publish' until it expires",
            ),
            Case(
                "grant: an expired grant denies, naming it",
                request(bob, "event.publish", grants=[grant(NOW)]),
                False,
                reason="grant 'g-1' for 'event.publish' has expired and no role of principal "
                "'bob' grants it",
            ),
            Case(
                "grant: expired one hour ago",
                request(bob, "event.publish", grants=[grant(NOW - 3_600_000_000_000)]),
                False,
                reason_prefix="grant 'g-1' for 'event.publish' has expired",
            ),
            Case(
                "grant: another principal's grant does not apply",
                request(bob, "event.publish", grants=[grant(NOW + 1, principal="eve")]),
                False,
                reason_prefix="no role of principal 'bob'",
            ),
            Case(
                "grant: scoped to its resource prefix",
                request(
                    bob,
                    "event.publish",
                    "topics/payments",
                    grants=[grant(NOW + 1, resource="topics/trades")],
                ),
                False,
            ),
            Case(
                "grant: '*' matches every resource",
                request(bob, "event.publish", "anything", grants=[grant(NOW + 1, resource="*")]),
                True,
            ),
            Case(
                "grant: without context.now no grant is valid",
                {**request(bob, "event.publish", grants=[grant(NOW + 1)]), "context": {}},
                False,
            ),
            Case(
                "grant: opens another tenant only when it names it",
                request(
                    bob, "event.publish", tenant="globex", grants=[grant(NOW + 1, tenant="globex")]
                ),
                True,
            ),
            Case(
                "grant: for another tenant does not open a third",
                request(
                    bob, "event.publish", tenant="initech", grants=[grant(NOW + 1, tenant="globex")]
                ),
                False,
                reason_prefix="tenant isolation:",
            ),
        ]
    out += [
        Case(
            "malformed: principal is a string, action a number",
            {"principal": "bob", "action": 3},
            False,
            reason="malformed input: action must be a non-empty string; principal must be an "
            "object; resource must be a string",
        ),
        Case("malformed: empty object", {}, False, reason_prefix="malformed input:"),
        Case("malformed: an array", [], False, reason="malformed input: input must be an object"),
        Case("malformed: null", None, False, reason="malformed input: input must be an object"),
        Case(
            "malformed: roles is a string",
            request({"id": "x", "roles": "admin", "tenant": "acme"}, "event.read"),
            False,
            reason="malformed input: principal.roles must be an array of strings",
        ),
        Case(
            "malformed: a role is not a string",
            request({"id": "x", "roles": ["admin", 7], "tenant": "acme"}, "event.read"),
            False,
            reason="malformed input: principal.roles must be an array of strings",
        ),
        Case(
            "malformed: empty principal id and no tenant",
            request({"id": "", "roles": []}, "event.read"),
            False,
            reason="malformed input: principal.id must be a non-empty string; principal.tenant "
            "must be a non-empty string",
        ),
        Case(
            "malformed: context is an array",
            {**request(person("x", ["admin"]), "event.read"), "context": []},
            False,
            reason="malformed input: context must be an object",
        ),
        Case(
            "malformed: now is a string",
            request(person("x", ["admin"]), "event.read", now="2026-11-25T00:00:00Z"),
            False,
            reason="malformed input: context.now must be an integer (Unix nanoseconds)",
        ),
        Case(
            "malformed: resource missing",
            {"principal": person("x", ["admin"]), "action": "event.read"},
            False,
            reason="malformed input: resource must be a string",
        ),
        Case(
            "no roles at all",
            request(person("nobody", []), "schema.read"),
            False,
            reason="no role of principal 'nobody' (roles: none) grants 'schema.read' on "
            "'topics/trades'",
        ),
        Case(
            "an unknown role grants nothing",
            request(person("w", ["wizard"]), "schema.read"),
            False,
        ),
    ]
    return out


def all_cases(bundle: PolicyBundle) -> list[Case]:
    return role_table_cases(bundle) + attribute_cases(bundle)


def run_cases(
    decide_input: Callable[[Any], Decision], cases: list[Case]
) -> list[tuple[Case, list[str]]]:
    """Run each case; returns the failing ones with their problems."""
    failures = []
    for case in cases:
        problems = case.check(decide_input(case.input))
        if problems:
            failures.append((case, problems))
    return failures
