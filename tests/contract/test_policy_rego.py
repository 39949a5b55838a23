"""The PolicyEngine contract against the embedded engine (``adapters/rego_policy.py``)."""

from __future__ import annotations

import threading
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
        assert engine._inline is not None
        engine._inline.compiled = object()  # what a rego-cpp failure looks like to the adapter
        return engine


class TestBoundedRegoPolicyEngine(PolicyEngineContract):
    """The same contract with each decision on the evaluator thread, under a bound (the
    serving path's engine, ``HUB_POLICY_DECISION_BOUND_MS``)."""

    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls) -> RegoPolicyEngine:
        return RegoPolicyEngine(SHIPPED, decision_bound_ms=5_000)

    @pytest.fixture
    def cached_engine(self) -> RegoPolicyEngine:
        return RegoPolicyEngine(
            SHIPPED, cache=DecisionCache(ttl_ms=60_000), decision_bound_ms=5_000
        )

    @pytest.fixture
    def broken_engine(self) -> RegoPolicyEngine:
        engine = RegoPolicyEngine(SHIPPED, decision_bound_ms=5_000)
        assert engine._worker is not None
        engine._worker[1].compiled = object()  # a rego-cpp failure, on the evaluator thread
        return engine


def test_a_bundle_that_does_not_compile_is_refused_and_the_old_one_stays() -> None:
    engine = RegoPolicyEngine(SHIPPED)
    broken = dict(SHIPPED.files)
    broken["hub/authz.rego"] += "\nbroken := {{\n"  # a syntax error
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


def _answering(reason: str) -> PolicyBundle:
    rule = f'decision := {{"allow": true, "reason": "{reason}", "mask": [], "row_filter": {{}}}}'
    return PolicyBundle.from_files({"hub/authz.rego": f"package hub.authz\n\n{rule}\n"})


class _ReloadOnLookup(DecisionCache):
    """A real cache that reloads the engine during the first lookup: the moment between the
    decision reading the active bundle and evaluating it."""

    def __init__(self, reload: Any) -> None:
        super().__init__(ttl_ms=60_000)
        self.reload = reload

    def get(self, *args: Any, **kwargs: Any) -> Any:
        reload, self.reload = self.reload, None
        if reload is not None:
            reload()
        return super().get(*args, **kwargs)


def test_a_reload_between_reading_and_evaluating_records_the_version_that_evaluated() -> None:
    old, new = _answering("old"), _answering("new")
    engine = RegoPolicyEngine(old)
    engine.cache = _ReloadOnLookup(lambda: engine.load(new))
    d = engine.decide(Principal("a", frozenset({"admin"})), "event.read", "r")
    assert engine.version == new.version  # the reload happened mid-decision
    assert (d.reason, d.policy_version) == ("old", old.version)


def test_reloads_racing_decisions_never_record_a_version_that_did_not_evaluate() -> None:
    one, two = _answering("one"), _answering("two")
    reason_of = {one.version: "one", two.version: "two"}
    engine = RegoPolicyEngine(one)
    stop = threading.Event()

    def reload() -> None:
        while not stop.is_set():
            engine.load(two)
            engine.load(one)

    reloader = threading.Thread(target=reload)
    reloader.start()
    try:
        who = Principal("a", frozenset({"admin"}))
        seen = [engine.decide(who, "event.read", "r") for _ in range(2_000)]
    finally:
        stop.set()
        reloader.join()
    assert all(d.reason == reason_of[d.policy_version] for d in seen)
