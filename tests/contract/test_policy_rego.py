"""The PolicyEngine contract against the embedded engine (``adapters/rego_policy.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.rego_policy import RegoPolicyEngine
from core.decisioncache import DecisionCache
from core.policybundle import PolicyBundle, PolicyError
from core.ports.policy import Principal
from tests.contract.policy_contract import SHIPPED, PolicyEngineContract


class TestRegoPolicyEngine(PolicyEngineContract):
    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls) -> RegoPolicyEngine:
        return RegoPolicyEngine(SHIPPED)

    @pytest.fixture
    def cached_engine(self) -> RegoPolicyEngine:
        return RegoPolicyEngine(SHIPPED, cache=DecisionCache(ttl_ms=60_000))

    @pytest.fixture
    def broken_engine(self) -> RegoPolicyEngine:
        engine = RegoPolicyEngine(SHIPPED)
        engine._compiled = object()  # what a rego-cpp failure looks like to the adapter
        return engine


def test_a_bundle_that_does_not_compile_is_refused_and_the_old_one_stays() -> None:
    engine = RegoPolicyEngine(SHIPPED)
    broken = dict(SHIPPED.files)
    broken["hub/authz.rego"] = broken["hub/authz.rego"].replace(
        "decision := {", "decision := {{", 1
    )
    with pytest.raises(PolicyError, match="does not compile"):
        engine.load(PolicyBundle.from_files(broken))
    assert engine.version == SHIPPED.version
    assert engine.decide(Principal("a", frozenset({"admin"})), "event.read", "r").allow


def test_a_policy_without_the_decision_rule_denies() -> None:
    files = {"hub/authz.rego": "package hub.authz\n\nimport rego.v1\n\nother := 1\n"}
    engine = RegoPolicyEngine(PolicyBundle.from_files(files))
    d = engine.decide(Principal("a", frozenset({"admin"})), "event.read", "r")
    assert not d.allow and "no decision" in d.reason


def test_reload_clears_the_cache_and_changes_the_version(tmp_path: Any) -> None:
    cache = DecisionCache(ttl_ms=60_000)
    engine = RegoPolicyEngine(SHIPPED, cache=cache)
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    assert engine.decide(ann, "event.read", "r").allow
    data = SHIPPED.files["hub/data.json"].replace('"event.read",\n', "", 1)
    changed = PolicyBundle.from_files({**SHIPPED.files, "hub/data.json": data})
    engine.load(changed)
    d = engine.decide(ann, "event.read", "r")
    assert d.policy_version == changed.version != SHIPPED.version
    assert len(cache) == 1  # the old entry went with the reload
