"""authz.rego's fast path gives the general rules' decision, field for field (issue 13).

The reference is the same bundle without ``data.hub.index``: there ``fast`` is undefined and
every decision comes from the general rules (the rules main shipped before the fast path). Both
run on rego-cpp over the policy's own cases (``governance.policycases``) and a few thousand
generated inputs: principals x roles x actions x resources x tenants x contexts, well-formed
and malformed, with and without grants and investigations. The raw answers must be equal.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from adapters.rego_policy import RegoPolicyEngine, _read, query_entrypoint
from core.policybundle import INDEX_KEY, PolicyBundle, role_index
from governance.policycases import NOW, all_cases

SHIPPED = PolicyBundle.from_dir()


def without_index(bundle: PolicyBundle) -> PolicyBundle:
    """``bundle`` as an engine without the hub's index sees it: general rules only."""
    data = json.loads(json.dumps(bundle.data))
    data["hub"].pop(INDEX_KEY)
    return PolicyBundle(bundle.files, bundle.version, data)


def with_grants(bundle: PolicyBundle, grants: list[Any]) -> PolicyBundle:
    """``bundle`` with ``data.hub.grants`` replaced (and its index derived again)."""
    files = dict(bundle.files)
    doc = json.loads(files["hub/data.json"])
    doc["grants"] = grants
    files["hub/data.json"] = json.dumps(doc)
    return PolicyBundle.from_files(files)


def generated(bundle: PolicyBundle, n: int, seed: int = 13) -> list[Any]:
    """``n`` inputs drawn over every field's usual and unusual values."""
    hub = bundle.hub_data
    rnd = random.Random(seed)
    roles = [[r] for r in hub["roles"]] + [
        [],
        ["analyst", "admin"],
        ["auditor", "analyst"],
        ["nope"],
        [3],
        "analyst",
        None,
    ]
    actions = [*hub["actions"], "nuke.all", "", 5, None]
    resources = ["topics/trades", "/v1/topics/pay-1/events", "policy", "", 3]
    tenants = ["acme", "acme", "globex", "", None]
    grant = {
        "id": "G-1",
        "principal": "ann",
        "actions": ["event.read", "event.publish"],
        "resource": "*",
        "expires_at": NOW + 10,
        "tenant": "globex",
    }
    case = {"id": "CASE-7", "investigators": ["ann"], "tenant": "acme", "expires_at": NOW + 5}
    contexts: list[Any] = [
        {"now": NOW},
        {"now": NOW, "method": "GET"},
        {"now": NOW, "tenant": "globex"},
        {"now": NOW, "tenant": "acme"},
        {"now": NOW, "tenant": ""},
        {"now": "x"},
        {},
        {"tenant": "globex"},
        {"now": NOW, "purpose": "reporting"},
        {"now": NOW, "purpose": "investigation"},
        {"now": NOW, "purpose": "investigation", "case": "CASE-7", "open_cases": [case]},
        {"now": NOW, "purpose": "investigation", "case": "CASE-7", "open_cases": ["CASE-7"]},
        {"now": NOW, "purpose": "investigation", "case": "CASE-9", "known_cases": ["CASE-9"]},
        {"now": NOW, "grants": [grant]},
        {"now": NOW, "grants": [{**grant, "expires_at": NOW - 1}]},
        {"now": NOW, "grants": []},
        {"now": NOW, "grants": "x"},
        {"now": NOW, "grants": False},
        {"now": NOW, "tenant": "globex", "grants": [grant]},
        3,
        None,
    ]
    out: list[Any] = []
    for _ in range(n):
        principal: Any = {
            "id": rnd.choice(["ann", "bob", "", 7]),
            "roles": rnd.choice(roles),
            "tenant": rnd.choice(tenants),
            "attributes": {},
        }
        if rnd.random() < 0.03:
            principal = rnd.choice([None, "ann", {"id": "ann"}])
        doc: Any = {
            "principal": principal,
            "action": rnd.choice(actions),
            "resource": rnd.choice(resources),
        }
        context = rnd.choice(contexts)
        if context is not None:
            doc["context"] = context
        out.append(doc if rnd.random() > 0.01 else rnd.choice([[], "x", 1]))
    return out


def _compare(bundle: PolicyBundle, inputs: list[Any]) -> int:
    """Assert equal answers with and without the index; returns how many took the fast path."""
    fast, general = RegoPolicyEngine(bundle), RegoPolicyEngine(without_index(bundle))
    differ = []
    for doc in inputs:
        a, b = fast.evaluate(doc), general.evaluate(doc)
        if a != b:
            differ.append((doc, a, b))
    assert not differ, f"{len(differ)} inputs decided differently, first: {differ[:3]}"
    return _fast_count(bundle, inputs)


def _fast_count(bundle: PolicyBundle, inputs: list[Any]) -> int:
    """How many of ``inputs`` ``fast`` decides (the bundle compiled with it as entrypoint)."""
    import regopy

    interp = regopy.Interpreter()
    interp.add_data(dict(bundle.data))
    for path, text in sorted(bundle.modules.items()):
        interp.add_module(path, text)
    compiled = interp.build("x = data.hub.authz.fast", ["hub/authz/fast"])
    decided = 0
    for doc in inputs:
        interp.set_input(doc)
        decided += _read(*query_entrypoint(interp, compiled, "hub/authz/fast")) is not None
    return decided


def test_the_index_is_derived_from_the_bundle_data_and_replaces_a_files_own() -> None:
    hub = SHIPPED.hub_data
    index = hub[INDEX_KEY]
    assert index == role_index(hub)
    assert index["role_actions"]["analyst"]["event.read"] is True
    assert set(index["actions"]) == set(hub["actions"]) and index["plain"] is True
    files = dict(SHIPPED.files)
    doc = json.loads(files["hub/data.json"])
    files["hub/data.json"] = json.dumps({**doc, "index": {"plain": True, "actions": {}}})
    assert PolicyBundle.from_files(files).hub_data[INDEX_KEY] == index
    doc["role_actions"] = {"analyst": "event.read"}  # not an array: no index, general rules
    files["hub/data.json"] = json.dumps({**doc, "index": index})
    assert INDEX_KEY not in PolicyBundle.from_files(files).hub_data


def test_fast_path_equals_the_general_rules_on_the_policy_cases() -> None:
    inputs = [case.input for case in all_cases(SHIPPED)]
    assert _compare(SHIPPED, inputs) > len(inputs) // 2


def test_fast_path_equals_the_general_rules_on_generated_inputs() -> None:
    inputs = generated(SHIPPED, 2000)
    assert _compare(SHIPPED, inputs) > 40  # most draws are unusual on purpose


@pytest.mark.parametrize("grants", [[{"id": "G", "principal": "ann", "actions": ["*"]}], "x"])
def test_grants_in_the_data_turn_the_fast_path_off_not_the_answers(grants: Any) -> None:
    bundle = with_grants(SHIPPED, grants)
    assert bundle.hub_data[INDEX_KEY]["plain"] is False
    assert _compare(bundle, generated(bundle, 300, seed=5)) == 0
