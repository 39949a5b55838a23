"""s21 (trust): every decision of the embedded Rego engine has a bound in the serving path.

redteam-s20 (medium): the proposal-time timing (``adapters.rego_deadline``) evaluates only the
bundle's own policy cases, so a branch slow for an input no case has (``endswith(
input.resource, "zz-slow")`` plus heavy work) passed ``propose`` and ``approve``, and then each
decision that hit it held the engine (one evaluation at a time) for as long as the work took:
every other decision waited behind it. Now each evaluation runs on the engine's evaluator
thread and the caller waits at most ``HUB_POLICY_DECISION_BOUND_MS``: past it the decision is
denied with the reason ``policy_eval_timeout`` (recorded as such, counted in a metric, logged),
the stuck evaluator is set aside, and the next decision is served by a fresh one. The timing
child runs under a memory cap (``RLIMIT_AS``): a bundle that allocates without end is refused
with a message naming the cap instead of exhausting the machine.
"""

from __future__ import annotations

import time

import pytest

from adapters.rego_deadline import BoundedEvaluation
from adapters.rego_policy import RegoPolicyEngine
from core.policybundle import PolicyBundle, PolicyError
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial.test_s20_rego_time import HEAD

SLOW_RESOURCE = "topics/payments-zz-slow"


def _slow_for_a_resource(bundle: PolicyBundle, side: int = 200) -> PolicyBundle:
    """``bundle`` with heavy work (``side``² steps, little memory) only for a resource whose
    name ends in ``zz-slow``: no policy case names such a resource."""
    files = dict(bundle.files)
    text = files["hub/authz.rego"]
    assert HEAD in text
    heavy = "decision := d if {\n\theavy_work == -1\n\td := fast\n} else := d if {\n\td := fast\n}"
    files["hub/authz.rego"] = text.replace(HEAD, heavy) + (
        "\ndefault heavy_work := 0\n\nheavy_work := n if {\n"
        '\tendswith(input.resource, "zz-slow")\n'
        f"\tn := count({{x | some i in numbers.range(1, {side}); "
        f"some j in numbers.range(1, {side}); x := i + j}})\n}}\n"
    )
    return PolicyBundle.from_files(files)


def _principal(hub: Hub, role: str, owner: str) -> Principal:
    return hub.keys.get(hub.keys.create([role], owner=owner).key_id).principal


def test_a_slow_branch_no_case_has_is_denied_at_the_bound_in_the_serving_path(hub: Hub) -> None:
    sam, ada = _principal(hub, "security_admin", "sam"), _principal(hub, "admin", "ada")
    changes = hub.policy_changes
    slow = _slow_for_a_resource(changes.store.active_bundle())
    pending = changes.propose(sam, dict(slow.files), "slow only for zz-slow")  # passes: no case
    changes.approve(ada, pending.change_id)
    assert changes.store.active_bundle().version == slow.version
    analyst = _principal(hub, "analyst", "ann")
    started = time.monotonic()
    denied = hub.policy.decide(analyst, "event.read", SLOW_RESOURCE)
    took = time.monotonic() - started
    assert not denied.allow
    assert "policy_eval_timeout" in denied.reason, denied.reason
    assert took < 5.0, took  # main: the whole heavy evaluation (tens of seconds)
    # the next decision is served at once by a fresh evaluator, not queued behind the stuck one
    started = time.monotonic()
    allowed = hub.policy.decide(analyst, "event.read", "topics/payments")
    assert allowed.allow, allowed.reason
    assert time.monotonic() - started < 5.0


def test_the_engine_denies_past_its_bound_and_counts_it() -> None:
    engine = RegoPolicyEngine(_slow_for_a_resource(PolicyBundle.from_dir()), decision_bound_ms=200)
    who = Principal("ann", frozenset({"analyst"}))
    before = engine.timeouts
    started = time.monotonic()
    denied = engine.decide(who, "event.read", SLOW_RESOURCE)
    assert time.monotonic() - started < 3.0
    assert not denied.allow and denied.reason.startswith("policy_eval_timeout:"), denied.reason
    assert "200 ms" in denied.reason and "HUB_POLICY_DECISION_BOUND_MS" in denied.reason
    assert engine.timeouts == before + 1
    assert engine.decide(who, "event.read", "topics/payments").allow


def test_stuck_evaluations_are_capped_then_decisions_go_to_a_killable_child() -> None:
    engine = RegoPolicyEngine(
        _slow_for_a_resource(PolicyBundle.from_dir()), decision_bound_ms=100, stuck_max=1
    )
    who = Principal("ann", frozenset({"analyst"}))
    try:
        assert "policy_eval_timeout" in engine.decide(who, "event.read", SLOW_RESOURCE).reason
        # one evaluation is still running (the cap): no second one is set aside. Session 21
        # denied every decision here until it ended; session 22 evaluates in a child process
        # killed at the bound, so the slow input is still denied and the others are answered.
        assert engine.decide(who, "event.read", "topics/payments").allow
        again = engine.decide(who, "event.read", SLOW_RESOURCE)
        assert not again.allow and "policy_eval_timeout" in again.reason, again.reason
        child = engine._child
        assert child is not None and child.started == 1
        assert engine.decide(who, "event.read", "topics/payments").allow
        assert child.started == 2  # the slow one's child was killed: a new one answered
    finally:
        engine.close()


def test_the_timing_child_has_a_memory_cap() -> None:
    files = dict(PolicyBundle.from_dir().files)
    text = files["hub/authz.rego"]
    heavy = "decision := d if {\n\theavy_work == -1\n\td := fast\n} else := d if {\n\td := fast\n}"
    files["hub/authz.rego"] = text.replace(HEAD, heavy) + (
        "\ndefault heavy_work := 0\n\nheavy_work := n if {\n"
        '\tinput.action == "hog"\n'
        "\tn := count([x | some x in numbers.range(1, 200000000)])\n}\n"
    )
    check = BoundedEvaluation(60_000, memory_mb=256)  # the CPU bound is not what stops it
    started = time.monotonic()
    with pytest.raises(PolicyError) as err:
        check(PolicyBundle.from_files(files), [("hog", {"action": "hog"})])
    assert time.monotonic() - started < 60
    assert "256 MiB" in str(err.value) and "HUB_POLICY_EVAL_MEMORY_MB" in str(err.value), err.value


def test_close_ends_the_idle_evaluator_thread() -> None:
    engine = RegoPolicyEngine(PolicyBundle.from_dir(), decision_bound_ms=5_000)
    assert engine.decide(Principal("ann", frozenset({"analyst"})), "event.read", "t").allow
    assert engine._worker is not None
    thread = engine._worker[0]._thread
    engine.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
