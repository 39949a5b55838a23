"""The PolicyEngine contract: one suite, run against every adapter of the port.

Subclasses provide the ``engine`` fixture (an engine on the shipped bundle, ``governance/
policies``, with no cache) and a ``broken_engine`` fixture (the same adapter unable to evaluate:
server stopped, compile state corrupted ...). Every case of ``governance.policycases`` (every
role × action of the role table, tenant isolation, purpose of use, expired vs valid grants,
malformed input) MUST give the expected decision, and the SAME decision, field for field, as the
embedded reference engine. A broken engine MUST deny with a reason, never raise.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.decisioncache import DecisionCache
from core.policybundle import PolicyBundle
from core.ports.policy import Decision, Principal
from governance.policycases import NOW, all_cases, request, role_table_cases

SHIPPED = PolicyBundle.from_dir()
CASES = all_cases(SHIPPED)
ROLE_CASES = role_table_cases(SHIPPED)


def _reference() -> Any:
    from adapters.rego_policy import RegoPolicyEngine

    return RegoPolicyEngine(SHIPPED)


def decide_case(engine: Any, case: Any) -> Decision:
    """A case's input asked through the port's ``decide()``."""
    p = case.input["principal"]
    principal = Principal(p["id"], frozenset(p["roles"]), p["tenant"], p["attributes"])
    d: Decision = engine.decide(
        principal, case.input["action"], case.input["resource"], case.input["context"]
    )
    return d


class PolicyPortContract:
    """Every PolicyEngine adapter. Not collected itself (no ``Test`` prefix)."""

    @pytest.mark.parametrize("case", ROLE_CASES, ids=[c.name for c in ROLE_CASES])
    def test_role_table(self, engine: Any, case: Any) -> None:
        d = decide_case(engine, case)
        assert isinstance(d, Decision) and d.allow == case.allow, d
        assert d.reason == case.reason, d

    def test_denies_for_every_role(self, engine: Any) -> None:
        """Each role is denied something (admin: an unknown action), with a reason naming it."""
        for role in SHIPPED.hub_data["roles"]:
            p = Principal(f"p-{role}", frozenset({role}), "acme")
            denied = [
                a
                for a in SHIPPED.hub_data["actions"]
                if a not in SHIPPED.hub_data["role_actions"][role]
            ] or ["no.such.action"]
            d = engine.decide(p, denied[0], "r")
            assert not d.allow and d.reason and denied[0] in d.reason, (role, d)

    def test_no_role_no_access(self, engine: Any) -> None:
        nobody = Principal("nobody", frozenset(), "acme")
        for action in SHIPPED.hub_data["actions"]:
            assert not engine.decide(nobody, action, "topics/trades").allow, action

    def test_the_version_is_stable(self, engine: Any) -> None:
        ann = Principal("ann", frozenset({"analyst"}), "acme")
        a, b = engine.decide(ann, "event.read", "r"), engine.decide(ann, "no.such", "r")
        assert a.policy_version and a.policy_version == b.policy_version


class PolicyEngineContract(PolicyPortContract):
    """The bundle engines (Rego, OPA). Not collected itself; subclass it once per adapter."""

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls) -> Any:
        return _reference()

    @pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
    def test_case(self, engine: Any, reference: Any, case: Any) -> None:
        got = engine.decide_input(case.input)
        assert case.check(got) == [], got
        assert got == reference.decide_input(case.input), "engines disagree"

    def test_the_version_is_the_bundle_hash(self, engine: Any) -> None:
        d = engine.decide_input(CASES[0].input)
        assert d.policy_version == SHIPPED.version
        assert len(d.policy_version) == 64

    def test_decide_builds_the_input_and_sets_now(self, engine: Any) -> None:
        ann = Principal("ann", frozenset({"analyst"}), "acme")
        d = engine.decide(ann, "event.read", "topics/trades")
        assert d.allow and d.mask == ("pii",) and dict(d.row_filter) == {"tenant": "acme"}
        grant = {
            "id": "g",
            "principal": "ann",
            "actions": ["event.publish"],
            "resource": "*",
            "expires_at": 2**62,
        }
        assert engine.decide(ann, "event.publish", "t", {"grants": [grant]}).allow
        assert not engine.decide(ann, "event.publish", "t", {"grants": [grant], "now": 2**62}).allow

    def test_broken_engine_denies_with_a_reason(self, broken_engine: Any) -> None:
        ann = Principal("ann", frozenset({"admin"}), "acme")
        d = broken_engine.decide(ann, "event.read", "topics/trades")
        assert isinstance(d, Decision)
        assert not d.allow
        assert "policy engine" in d.reason and "failed" in d.reason

    def test_cache_answers_repeats_and_respects_grant_expiry(self, cached_engine: Any) -> None:
        ann = Principal("bob", frozenset({"analyst"}), "acme")
        grant = {
            "id": "g",
            "principal": "bob",
            "actions": ["event.publish"],
            "resource": "*",
            "expires_at": NOW + 10,
        }
        cache: DecisionCache = cached_engine.cache
        first = cached_engine.decide(ann, "event.publish", "t", {"grants": [grant], "now": NOW})
        again = cached_engine.decide(ann, "event.publish", "t", {"grants": [grant], "now": NOW + 1})
        assert first.allow and again == first and cache.hits >= 1
        # same input but past the grant's expiry: the cached allow MUST NOT be served
        late = cached_engine.decide(ann, "event.publish", "t", {"grants": [grant], "now": NOW + 10})
        assert not late.allow

    @pytest.mark.parametrize(
        "where",
        ["resource", "principal", "tenant", "context value", "context key"],
    )
    @pytest.mark.parametrize("text", ['topics/x", "allow": true, "z": "', "topics\\a"])
    def test_an_input_holding_a_quote_or_backslash_is_denied_by_every_engine(
        self, engine: Any, reference: Any, where: str, text: str
    ) -> None:
        """Both footprints give the safe answer: rego-cpp cannot echo such text (it does not
        escape it), so every engine denies it, OPA too (it decided such inputs normally)."""
        ann = Principal(
            text if where == "principal" else "ann",
            frozenset({"admin"}),
            text if where == "tenant" else "acme",
        )
        resource = text if where == "resource" else "topics/trades"
        context = {"case_id": text} if where == "context value" else {}
        if where == "context key":
            context = {text: "x"}
        got = engine.decide(ann, "event.read", resource, context)
        assert not got.allow and "quote or backslash" in got.reason, got
        want = reference.decide(ann, "event.read", resource, context)
        assert got.reason.split(": ", 1)[1] == want.reason.split(": ", 1)[1]

    def test_malformed_documents_never_raise(self, engine: Any) -> None:
        for doc in [None, 1, "x", [], {}, {"principal": {"roles": None}}, request(7, 7, 7)]:
            d = engine.decide_input(doc)
            assert not d.allow and d.reason.startswith("malformed input:"), (doc, d)
