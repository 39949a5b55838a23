"""The recording engine's prepared path (a request seen before) decides and records exactly what
the general path does, and never serves an answer the cache's rules would refuse (issue 13).

The prepared path skips building the input document when the decision cache holds the answer;
these tests run the real embedded engine (rego-cpp) with its real cache and compare, field for
field, with ``RecordingPolicyEngine._decide_input`` (the reference) at the same ``now``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from adapters.rego_policy import RegoPolicyEngine
from core.decisioncache import DecisionCache
from core.policybundle import PolicyBundle
from core.ports.policy import Decision, Principal
from governance import decisions
from governance.decisions import DecisionCommitter, DecisionRecord, RecordingPolicyEngine

SHIPPED = PolicyBundle.from_dir()
NOW = 1_800_000_000_000_000_000


class Sink:
    def __init__(self) -> None:
        self.stored: list[DecisionRecord] = []

    def prepare(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        return list(records)

    def store(self, prepared: list[DecisionRecord]) -> None:
        self.stored += prepared


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class CountingRego(RegoPolicyEngine):
    """The real engine, counting the input documents it was given (a cache miss builds one)."""

    documents = 0
    last: Mapping[str, Any] = {}

    def decide_input(self, doc: Mapping[str, Any], *, key: str | None = None) -> Decision:
        self.documents += 1
        self.last = doc
        return super().decide_input(doc, key=key)


def recording(
    bundle: PolicyBundle = SHIPPED,
    cache: DecisionCache | None = None,
    clock: Clock | None = None,
    enrich: Any = None,
) -> tuple[RecordingPolicyEngine, CountingRego, Clock]:
    inner = CountingRego(bundle, cache=cache if cache is not None else DecisionCache(ttl_ms=60_000))
    clock = clock or Clock()
    engine = RecordingPolicyEngine(inner, DecisionCommitter(Sink()), clock_ns=clock, enrich=enrich)
    return engine, inner, clock


def _without_id(pair: tuple[Decision, DecisionRecord]) -> tuple[Any, ...]:
    d, r = pair
    assert d.decision_id == r.decision_id and r.decision_id
    return (
        (d.allow, d.reason, d.policy_version, d.mask, dict(d.row_filter)),
        r._replace(decision_id="", row_filter=dict(r.row_filter)),
    )


def _requests(n: int, seed: int) -> list[tuple[Principal, str, str, Any]]:
    hub = SHIPPED.hub_data
    rnd = random.Random(seed)
    roles = [frozenset({r}) for r in hub["roles"]] + [
        frozenset(),
        frozenset({"analyst", "admin"}),
        frozenset({"nope"}),
    ]
    attributes: list[Any] = [{}, {"key_id": "k-1"}, {"key_id": "k-2", "team": "x"}, {"n": 1}]
    actions = [*hub["actions"], "nuke.all", ""]
    resources = ["topics/trades", "/v1/topics/pay-1/events", "policy", "", "r\u00e9sum\u00e9"]
    contexts: list[Any] = [
        None,
        {},
        {"method": "GET"},
        {"tenant": "globex"},
        {"tenant": "acme", "method": "POST"},
        {"purpose": "reporting"},
        {"purpose": "investigation", "case": "CASE-7"},
        {"a": "1", "z": "2"},  # keys that sort before and after ``now``
        {"method": 1},  # not all strings: the general path
        {"method": True},
        {"grants": []},  # unhashable: the general path
        {"now": NOW - 5},  # the caller's own ``now``: the general path
    ]
    out = []
    for _ in range(n // 10):  # each drawn about ten times: a busy hub's repeats
        who = Principal(
            rnd.choice(["ann", "bob", "c\u00e9line"]),
            rnd.choice(roles),
            rnd.choice(["acme", "globex", "default"]),
            rnd.choice(attributes),
        )
        ctx = rnd.choice(contexts)
        out.append((who, rnd.choice(actions), rnd.choice(resources), ctx))
    return [rnd.choice(out) for _ in range(n)]


def test_the_prepared_path_decides_and_records_what_the_general_path_does() -> None:
    engine, inner, clock = recording()
    reqs = _requests(1_500, seed=19)
    prepared_hits = 0
    for k, (who, action, resource, ctx) in enumerate(reqs):
        clock.now = NOW + 1_000_003 * k  # the clock moves: digests and times differ per call
        documents = inner.documents
        fast = engine._decide(who, action, resource, ctx)
        if inner.documents == documents:
            prepared_hits += 1  # answered from the cache without an input document
        reference = engine._decide_input(who, action, resource, ctx)
        assert _without_id(fast) == _without_id(reference), (who, action, resource, ctx)
    # Most requests repeat: they took the prepared path and the cache answered.
    assert prepared_hits > 500
    assert len(engine._requests) > 50


def test_a_request_of_other_types_never_shares_a_string_requests_entry() -> None:
    """``1 == True`` and ``"1" != 1``: only all-string requests get an entry, so equal keys
    mean equal documents (a context of a number is decided on the general path each time)."""
    engine, _, _ = recording()
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    for ctx in ({"method": "1"}, {"method": 1}, {"method": True}, {"method": 1.0}):
        got = engine._decide(ann, "event.read", "r", ctx)
        ref = engine._decide_input(ann, "event.read", "r", ctx)
        assert _without_id(got) == _without_id(ref)
    kept = [r for r in engine._requests.values() if r is not decisions._UNPREPARED]
    assert len(kept) == 1 and kept[0].prepared.context == {"method": "1"}


class NeverCleared(DecisionCache):
    """A cache whose ``clear`` is lost (as if a decision raced the activation's clear): only
    the version check stands between an old answer and a caller."""

    def clear(self) -> None:
        pass


@pytest.mark.parametrize("cache", [DecisionCache, NeverCleared])
def test_an_activation_that_revokes_denies_the_very_next_prepared_request(cache: Any) -> None:
    engine, inner, _ = recording(cache=cache(ttl_ms=60_000))
    ann = Principal("ann", frozenset({"analyst"}), "acme", {"key_id": "k-1"})
    for _ in range(3):  # prepared, then answered from the cache
        assert engine._decide(ann, "event.read", "r", {"method": "GET"})[0].allow
    assert inner.documents == 1
    data = SHIPPED.files["hub/data.json"].replace('"event.read",\n', "", 1)
    revoked = PolicyBundle.from_files({**SHIPPED.files, "hub/data.json": data})
    engine.load(revoked)  # the activation
    decision, record = engine._decide(ann, "event.read", "r", {"method": "GET"})
    assert not decision.allow and not record.allow
    assert record.policy_version == revoked.version != SHIPPED.version
    assert inner.documents == 2  # evaluated again under the new bundle


def _with_grant(expires_at: int) -> PolicyBundle:
    import json

    doc = json.loads(SHIPPED.files["hub/data.json"])
    doc["grants"] = [
        {
            "id": "G-1",
            "principal": "bob",
            "actions": ["event.publish"],
            "resource": "*",
            "expires_at": expires_at,
        }
    ]
    return PolicyBundle.from_files({**SHIPPED.files, "hub/data.json": json.dumps(doc)})


def test_a_cached_allow_ends_with_the_grant_it_relied_on() -> None:
    engine, inner, clock = recording(bundle=_with_grant(NOW + 1_000))
    bob = Principal("bob", frozenset({"viewer"}), "acme")
    assert engine._decide(bob, "event.publish", "r", None)[0].allow
    clock.now = NOW + 999
    assert engine._decide(bob, "event.publish", "r", None)[0].allow
    assert inner.documents == 1  # the cached answer, before the grant's expiry
    clock.now = NOW + 1_000
    decision, record = engine._decide(bob, "event.publish", "r", None)
    assert not decision.allow and not record.allow
    assert record.decided_at_us == (NOW + 1_000) // 1000


def test_a_cached_answer_ends_with_the_caches_time_to_live() -> None:
    mono = [0]
    cache = DecisionCache(ttl_ms=10, monotonic_ns=lambda: mono[0])
    engine, inner, _ = recording(cache=cache)
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    for _ in range(3):
        engine._decide(ann, "event.read", "r", None)
    assert inner.documents == 1 and cache.hits == 2 and cache.misses == 1  # one miss each
    mono[0] = 10_000_000
    engine._decide(ann, "event.read", "r", None)
    assert inner.documents == 2 and cache.misses == 2


def test_a_context_naming_a_case_is_enriched_on_the_general_path() -> None:
    seen: list[Mapping[str, Any]] = []

    def enrich(ctx: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(ctx)
        return {**ctx, "known_cases": ["CASE-7"]} if ctx.get("case") else dict(ctx)

    engine, _, _ = recording(enrich=enrich)
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    ctx = {"purpose": "investigation", "case": "CASE-7"}
    for _ in range(2):
        engine._decide(ann, "pii.read", "r", ctx)
    assert len(seen) == 2 and not engine._requests  # every time, never prepared


def test_the_requests_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decisions, "_REQUESTS_MAX", 8)
    engine, _, _ = recording()
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    for k in range(50):
        engine._decide(ann, "event.read", f"r-{k}", None)
        assert len(engine._requests) <= 8


def test_an_engine_that_raises_on_the_prepared_path_is_a_recorded_deny() -> None:
    engine, inner, _ = recording()
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    engine._decide(ann, "event.read", "r", None)  # prepared

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("engine down")

    inner.decide_prepared = broken  # type: ignore[method-assign]
    inner.decide_input = broken  # type: ignore[method-assign]
    decision, record = engine._decide(ann, "event.read", "r", None)
    assert not decision.allow and "engine down" in decision.reason
    assert not record.allow and record.reason == decision.reason


def test_a_principal_changed_after_its_request_was_prepared_changes_no_later_input() -> None:
    """The prepared request keeps its own copy of the attributes it serialized: a caller that
    changes its dict later cannot make a cache miss evaluate other values under the old key."""
    engine, inner, _ = recording()
    attributes = {"key_id": "k-1"}
    engine._decide(
        Principal("ann", frozenset({"analyst"}), "acme", attributes), "event.read", "r", None
    )
    attributes["key_id"] = "k-2"  # the first caller's dict, changed in place
    assert inner.cache is not None
    inner.cache.clear()  # the next identical request misses: it is evaluated again
    same = Principal("ann", frozenset({"analyst"}), "acme", {"key_id": "k-1"})
    decision, record = engine._decide(same, "event.read", "r", None)
    assert inner.last["principal"]["attributes"] == {"key_id": "k-1"}
    assert record.key_id == "k-1"
    assert _without_id((decision, record)) == _without_id(
        engine._decide_input(same, "event.read", "r", None)
    )


def test_an_engine_swapped_in_decides_from_then_on() -> None:
    """``inner`` replaced (as the registry tests and a reload of another kind of engine do):
    no request prepared for the engine before is answered by it."""
    engine, inner, _ = recording()
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    assert engine._decide(ann, "event.read", "r", None)[0].allow
    engine.inner = CountingRego(
        PolicyBundle.from_files(
            {"hub/authz.rego": "package hub.authz\n\nimport rego.v1\n\nother := 1\n"}
        ),
        cache=DecisionCache(ttl_ms=60_000),
    )
    decision, record = engine._decide(ann, "event.read", "r", None)
    assert not decision.allow and "no decision" in decision.reason and not record.allow
    assert inner.documents == 1  # the old engine was not asked again
