"""Session 22 (trust leftovers, 3): a timed-out Rego evaluation cannot be stopped (rego-cpp has no
cancel), so session 21 set it aside on its thread and capped such threads
(``HUB_POLICY_STUCK_MAX``, default 2): at the cap, every decision of every principal was denied
(``policy_eval_timeout ... still running``) until one ended. A request crafted against a stored
bundle's slow branch (any caller who can name a resource) thus denied the whole hub for as long
as the stuck evaluations ran (tens of seconds to hours: the branch's work), and two cores stayed
busy meanwhile.

Now a bundle version that has timed out once (or every version, once the cap is reached, or
with ``HUB_POLICY_STUCK_MAX=0``) is evaluated in a child process that is killed at the bound:
the slow input is still denied at the bound, every other principal is answered, and no further
evaluation is left running (at most the first, set-aside one per cap).
"""

from __future__ import annotations

import os
import threading
import time

from adapters.rego_policy import RegoPolicyEngine
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial.test_s21_policy_runtime import SLOW_RESOURCE, _slow_for_a_resource

ATTACKER = Principal("mallory", frozenset({"analyst"}))
OTHER = Principal("ann", frozenset({"analyst"}))
SIDE = 300  # about 25 s of CPU time per slow evaluation on these machines


def _children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _evaluators() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "rego-evaluator" and t.is_alive())


def test_a_slow_input_repeated_does_not_deny_other_principals_nor_pile_up_cpu() -> None:
    engine = RegoPolicyEngine(
        _slow_for_a_resource(PolicyBundle.from_dir(), SIDE), decision_bound_ms=300, stuck_max=1
    )
    try:
        before = _evaluators()
        started_cpu = time.process_time()
        for _ in range(6):  # the attacker, again and again
            denied = engine.decide(ATTACKER, "event.read", SLOW_RESOURCE)
            assert not denied.allow and "policy_eval_timeout" in denied.reason, denied.reason
            answered = engine.decide(OTHER, "event.read", "topics/payments")
            # main: denied ("still running ... HUB_POLICY_STUCK_MAX") while the first runs
            assert answered.allow, answered.reason
        # One set-aside evaluation at most (the first); the later ones were killed with their
        # child: no evaluator thread beyond the cap, and the children used little CPU each.
        assert _evaluators() - before <= 2  # the stuck one and the idle one (or none)
        assert engine.timeouts == 6
        window = time.monotonic()
        cpu = time.process_time()
        time.sleep(2.0)
        busy = (time.process_time() - cpu) / (time.monotonic() - window)
        assert busy < 1.5, busy  # one core at most: the single set-aside evaluation
        assert time.process_time() - started_cpu < 60
    finally:
        engine.close()


def test_stuck_max_zero_evaluates_every_decision_in_a_killable_child() -> None:
    engine = RegoPolicyEngine(
        _slow_for_a_resource(PolicyBundle.from_dir(), SIDE), decision_bound_ms=300, stuck_max=0
    )
    try:
        before = _evaluators()
        children = _children_cpu_s()
        for _ in range(3):
            denied = engine.decide(ATTACKER, "event.read", SLOW_RESOURCE)
            assert not denied.allow and "policy_eval_timeout" in denied.reason, denied.reason
            assert engine.decide(OTHER, "event.read", "topics/payments").allow
        assert _evaluators() == before  # nothing set aside in this process
        # each killed child ran for about the bound: nowhere near a whole evaluation
        assert _children_cpu_s() - children < 20
    finally:
        engine.close()


def test_the_hub_answers_others_after_a_slow_branch_of_its_active_bundle(hub: Hub) -> None:
    sam = hub.keys.get(hub.keys.create(["security_admin"], owner="sam").key_id).principal
    ada = hub.keys.get(hub.keys.create(["admin"], owner="ada").key_id).principal
    changes = hub.policy_changes
    slow = _slow_for_a_resource(changes.store.active_bundle(), SIDE)
    changes.approve(ada, changes.propose(sam, dict(slow.files), "slow for zz-slow").change_id)
    analyst = hub.keys.get(hub.keys.create(["analyst"], owner="ann").key_id).principal
    for _ in range(4):
        denied = hub.policy.decide(analyst, "event.read", SLOW_RESOURCE)
        assert not denied.allow and "policy_eval_timeout" in denied.reason
        allowed = hub.policy.decide(analyst, "event.read", "topics/payments")
        assert allowed.allow, allowed.reason
