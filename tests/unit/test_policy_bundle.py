"""Policy bundles, role data in step with core/roles.py, the decision cache, and `opa test`."""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from core.decisioncache import DecisionCache
from core.policybundle import (
    PolicyBundle,
    PolicyError,
    bundle_version,
    cache_key,
    decide_cached,
    decision_from_result,
    decision_input,
    input_digest,
    input_digests,
)
from core.ports.policy import Decision, Principal
from core.roles import ACTIONS, ROLE_ACTIONS, ROLES
from governance import roledata

ROOT = Path(__file__).resolve().parents[2]


def test_python_and_rego_role_data_agree() -> None:
    data = json.loads(roledata.DATA_FILE.read_text())
    assert roledata.differences(data) == [], "run `python -m governance.roledata`"
    assert data["roles"] == list(ROLES)
    assert data["actions"] == list(ACTIONS)
    assert {r: set(a) for r, a in data["role_actions"].items()} == {
        r: set(a) for r, a in ROLE_ACTIONS.items()
    }


def test_roledata_sync_rewrites_only_the_role_keys(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"roles": ["x"], "two_person": ["policy"]}))
    assert set(roledata.sync(path)) == {"roles", "actions", "role_actions"}
    data = json.loads(path.read_text())
    assert data["two_person"] == ["policy"] and data["roles"] == list(ROLES)
    assert roledata.sync(path) == []


def test_bundle_version_is_a_stable_hash_of_sorted_files() -> None:
    a = {"b.rego": "package b", "a/data.json": "{}"}
    assert bundle_version(a) == bundle_version(dict(reversed(list(a.items()))))
    assert bundle_version(a) != bundle_version({**a, "b.rego": "package b "})
    assert bundle_version({"ab": "c"}) != bundle_version({"a": "bc"})
    shipped = PolicyBundle.from_dir()
    assert shipped.version == PolicyBundle.from_files(dict(shipped.files)).version
    assert shipped.data["hub"]["two_person"] == ["policy"]  # config: opt in, e.g. "rules:*"
    assert "hub/authz_test.rego" in shipped.test_modules
    assert "hub/authz_test.rego" not in shipped.modules


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"x/data.json": "{}"}, "at least one .rego"),
        ({"a.rego": "package a", "../b.rego": "x"}, "must be relative"),
        ({"a.rego": "package a", "notes.txt": "x"}, "neither a .rego"),
        ({"a.rego": "package a", "d/data.json": "[1"}, "not valid JSON"),
        ({"a.rego": "package a", "d/data.json": "[1]"}, "JSON object"),
    ],
)
def test_bad_bundles_are_refused(files: dict[str, str], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        PolicyBundle.from_files(files)


def test_input_digest_is_canonical_and_cache_key_ignores_now() -> None:
    p = Principal("ann", frozenset({"b", "a"}), "acme")
    one = decision_input(p, "event.read", "r", {"now": 1, "purpose": "x"})
    two = decision_input(p, "event.read", "r", {"purpose": "x", "now": 2})
    assert one["principal"]["roles"] == ["a", "b"]
    assert input_digest(one) != input_digest(two)
    assert cache_key(one) == cache_key(two)
    assert len(input_digest(one)) == 64


@pytest.mark.parametrize(
    "result",
    [
        None,
        [],
        {"allow": "yes", "reason": "r"},
        {"allow": True},
        {"allow": True, "reason": "r", "mask": [1]},
    ],
)
def test_a_malformed_answer_is_a_deny(result: object) -> None:
    d = decision_from_result(result, "v")
    assert not d.allow and d.reason.startswith("Access denied")


def test_cache_ttl_version_and_lru() -> None:
    clock = [0]
    cache = DecisionCache(ttl_ms=10, max_entries=2, monotonic_ns=lambda: clock[0])
    d = Decision(True, "r", "v1")
    cache.put("k1", "v1", d)
    assert cache.get("k1", "v1", 0) == d
    assert cache.get("k1", "v2", 0) is None  # another bundle version: dropped
    cache.put("k1", "v1", d)
    clock[0] = 10_000_000
    assert cache.get("k1", "v1", 0) is None  # TTL over
    cache.put("a", "v1", d)
    cache.put("b", "v1", d)
    cache.get("a", "v1", 0)
    cache.put("c", "v1", d)  # evicts b, the least recently used
    assert cache.get("b", "v1", 0) is None and cache.get("a", "v1", 0) == d
    cache.put("g", "v1", d, valid_until_ns=100)
    assert cache.get("g", "v1", 99) == d
    assert cache.get("g", "v1", 100) is None  # a grant it relied on expired


BUNDLE = PolicyBundle({"p.rego": "package hub.authz"}, "v1")


def _together(n: int, call: Any) -> list[Decision]:
    """``call()`` from ``n`` threads at once; their answers."""
    out: list[Decision] = []
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        out.append(call())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_identical_inputs_that_miss_together_are_evaluated_once() -> None:
    cache = DecisionCache(ttl_ms=60_000)
    doc = {"action": "a", "context": {"now": 5}}
    calls: list[int] = []
    release = threading.Event()

    def evaluate(d: Mapping[str, Any]) -> object:
        calls.append(1)
        release.wait(5)  # the others arrive while this one is in flight
        return {"allow": True, "reason": "ok"}

    threading.Timer(0.3, release.set).start()
    answers = _together(8, lambda: decide_cached("t", doc, BUNDLE, cache, evaluate))
    assert len(calls) == 1 and len(answers) == 8
    assert all(a == Decision(True, "ok", "v1") for a in answers)
    assert cache.shared == 7 and not cache._flights


def test_waiters_evaluate_alone_when_the_shared_evaluation_fails() -> None:
    cache = DecisionCache(ttl_ms=60_000)
    doc = {"action": "a", "context": {"now": 5}}
    calls: list[int] = []
    release = threading.Event()

    def evaluate(d: Mapping[str, Any]) -> object:
        calls.append(1)
        if len(calls) == 1:  # the first evaluation fails: nothing cached, nothing shared
            release.wait(5)
            raise RuntimeError("engine down")
        return {"allow": True, "reason": "ok"}

    threading.Timer(0.3, release.set).start()
    answers = _together(4, lambda: decide_cached("t", doc, BUNDLE, cache, evaluate))
    denied = [a for a in answers if not a.allow]
    assert len(denied) == 1 and "engine down" in denied[0].reason  # only the failed one
    assert len(calls) >= 2 and cache.shared <= 2 and not cache._flights


def test_a_shared_answer_is_checked_against_the_waiters_own_now() -> None:
    """A waiter whose ``now`` is past a grant's expiry the leader's answer relied on gets no
    shared answer (it evaluates alone), as a cache hit would not be served."""
    cache = DecisionCache(ttl_ms=60_000)
    flight = cache.get_or_claim("k", "v1", 50)
    assert flight is None  # this caller evaluates
    waiting = cache.get_or_claim("k", "v1", 150)
    assert isinstance(waiting, threading.Event)
    cache.put("k", "v1", Decision(True, "grant", "v1"), valid_until_ns=100)
    cache.release("k", "v1")
    assert cache.wait_shared(waiting, "k", "v1", 150) is None
    assert cache.wait_shared(waiting, "k", "v2", 50) is None  # another bundle version
    assert cache.wait_shared(waiting, "k", "v1", 99) == Decision(True, "grant", "v1")


_KEYS = [
    "now",
    "no",
    "nov",
    "now!",
    "now0",
    "nox",
    "Now",
    "n",
    "method",
    "case",
    "purpose",
    "grants",
    "open_cases",
    "\u00f1",
    "z",
    "",
    'a"b',
    "emoji\U0001f600",
    "now\\",
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice(["GET", "", 'é\u2028"q\\', "\U0001f512x", '"now":1', "a,b}"])
    if kind == 1:
        return rng.randrange(-(2**70), 2**70)
    if kind == 2:
        return rng.choice([None, True, False, 0.5, -1e300, float("nan")])
    if kind == 3:
        return rng.random()
    if kind == 4:
        return "x" * rng.randrange(3)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_one_serialization_gives_the_cache_key_and_the_input_digest() -> None:
    """``input_digests`` is byte-for-byte the two reference digests on random decision inputs
    (context keys sorting around ``now``, escapes, non-ASCII, nested ``"now"`` keys)."""
    rng = random.Random(13)
    for _ in range(3000):
        ctx = {rng.choice(_KEYS): _value(rng) for _ in range(rng.randrange(6))}
        ctx["now"] = rng.choice([0, 1, 2**63 - 1, rng.randrange(2**63)])
        attributes = {"key_id": rng.choice(["k1", "é"])} if rng.random() < 0.5 else {}
        who = Principal(rng.choice(["ann", 'a"b']), frozenset({"analyst"}), "acme", attributes)
        action = rng.choice(["event.read", 'é."x', ""])
        doc = decision_input(who, action, rng.choice(["/v1/topics", "r\\"]), ctx)
        assert input_digests(doc) == (cache_key(doc), input_digest(doc)), doc


def test_a_repeated_input_reuses_its_serialization_and_gives_the_reference_digests() -> None:
    """The memo of serializations (a request seen again with another ``now``) answers exactly
    as the reference, also when values equal under ``==`` but not in JSON take turns (``1``,
    ``True``, ``1.0``, ``"1"``), when only the order of a context differs, and past its bound."""
    from core import policybundle

    policybundle._SPLITS.clear()
    rng = random.Random(14)
    who = Principal("ann", frozenset({"analyst", "auditor"}), "acme", {"key_id": "k1"})
    contexts: list[dict[str, Any]] = [
        {"method": "GET"},
        {"method": "GET", "purpose": "audit"},
        {"purpose": "audit", "method": "GET"},
        {"a": "1"},
        {"a": 1},
        {"a": True},
        {"a": 1.0},
        {"a": "1", "z": 'é"q'},
        {},
    ]
    for _ in range(2000):
        ctx = {**rng.choice(contexts), "now": rng.randrange(2**63)}
        doc = decision_input(who, "event.read", rng.choice(["/v1/topics", "/v1/t/x"]), ctx)
        assert input_digests(doc) == (cache_key(doc), input_digest(doc)), doc
    # Only all-string inputs are remembered: 2 resources x 6 all-string contexts.
    assert len(policybundle._SPLITS) == 12
    for i in range(policybundle._SPLITS_MAX + 10):  # distinct resources: the memo stays bounded
        doc = decision_input(who, "event.read", f"/v1/{i}", {"now": i})
        assert input_digests(doc) == (cache_key(doc), input_digest(doc))
    assert len(policybundle._SPLITS) <= policybundle._SPLITS_MAX


@pytest.mark.parametrize(
    "doc",
    [
        {"action": "a", "context": {"now": 1.5}},  # not an int
        {"action": "a", "context": {"now": True}},  # a bool is not a time
        {"action": "a", "context": {"now": -1}},
        {"action": "a", "context": {"now": 2**64}},
        {"action": "a", "context": {"method": "GET"}},  # no now
        {"action": "a", "context": {"now": 5, 7: "x"}},  # a key that is not a string
        {"action": "a", "b": 1, "context": {"now": 5, "a": 1}},  # a key between the two
        {"context": {"now": 5, "a": 1}},  # no action
        {"action": "a", "context": "now"},
        {"action": "a", "context": {"now": 5}},
        {"action": {"now": 1}, "context": {"now": 5, "method": "GET"}, "zz": [1]},
    ],
)
def test_unusual_inputs_take_the_reference_digests(doc: dict[Any, Any]) -> None:
    def outcome(fn: Any) -> Any:
        try:
            return fn()
        except TypeError as exc:  # json's own refusal (keys of mixed types), on both paths
            return type(exc), str(exc)

    reference = outcome(lambda: (cache_key(doc), input_digest(doc)))
    assert outcome(lambda: input_digests(doc)) == reference


def test_the_rego_engine_gives_the_digest_of_what_it_decided() -> None:
    from adapters.rego_policy import RegoPolicyEngine

    engine = RegoPolicyEngine(PolicyBundle.from_dir(), cache=DecisionCache())
    who = Principal("ann", frozenset({"analyst"}), "acme", {"key_id": "k1"})
    for ctx in ({"now": 1_700_000_000_000_000_000}, {"now": 5, "method": "GET", "purpose": "p"}):
        for _ in range(2):  # a miss, then a cache hit
            decision, digest = engine.decide_digested(who, "event.read", "/v1/topics", ctx)
            assert digest == input_digest(decision_input(who, "event.read", "/v1/topics", ctx))
            assert decision == engine.decide(who, "event.read", "/v1/topics", ctx)


def test_opa_test_passes_on_the_shipped_policies() -> None:
    """The policies' own Rego tests, when the opa binary was built (infra/opa.sh build)."""
    found = subprocess.run(
        ["bash", str(ROOT / "infra/opa.sh"), "path"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.skip("opa is not built: `infra/opa.sh build` (2 min) enables `opa test`")
    done = subprocess.run(
        # opa test gives each test 5 s by default; a loaded two-core machine can need more
        [found.stdout.strip(), "test", "-v", "--timeout", "60s", str(ROOT / "governance/policies")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout


def test_opa_fmt_and_check_are_clean() -> None:
    found = subprocess.run(
        ["bash", str(ROOT / "infra/opa.sh"), "path"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.skip("opa is not built")
    opa = found.stdout.strip()
    policies = str(ROOT / "governance/policies")
    check = subprocess.run([opa, "check", "--strict", policies], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([opa, "fmt", "--list", policies], capture_output=True, text=True)
    assert fmt.stdout.strip() == "", f"not `opa fmt`-formatted: {fmt.stdout}"
