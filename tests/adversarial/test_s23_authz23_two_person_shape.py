"""s23 (authz): a ``two_person`` value the hub would not read as a list of names is refused.

The two-person rule of the policy and of every configuration change is read from the active
bundle's ``data.hub.two_person``: a list of names or ``prefix*`` entries. Any other value was
accepted and read as "no resource listed": a proposal changing ``["policy"]`` into ``"policy"``
(a string), ``{"policy": true}``, ``[["policy"]]`` or ``["policy "]`` shows a diff that still
names the policy, so the second person approves what reads as a reformatting, and from then on
one person changes the policy (and every listed setting) alone. Enrolment still saw the rule on
(any non-empty value), so nothing looked off. Now such a bundle is refused when proposed (and
again when approved), naming the value and the expected shape, and nothing is recorded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.policybundle import PolicyError
from hub.bootstrap import Hub


def _with_two_person(hub: Hub, value: Any) -> dict[str, str]:
    bundle = hub.policy_changes.store.active_bundle()
    data = json.loads(bundle.files["hub/data.json"])
    data["two_person"] = value
    return {**bundle.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def _records(hub: Hub) -> int:
    return len(hub.reader.read("hub.policies", 0, 0, 10_000))


@pytest.mark.parametrize(
    "value",
    ["policy", {"policy": True}, [["policy"]], ["policy "], ["policy", 7], ["*policy"], [""]],
    ids=["string", "object", "nested", "space", "number", "star-first", "empty-name"],
)
def test_a_two_person_value_that_is_not_a_list_of_names_is_refused(hub: Hub, value: Any) -> None:
    assert hub.policy_changes.store.active_bundle().hub_data["two_person"] == ["policy"]
    pa = hub.keys.get(hub.keys.create(["admin"], owner="pa").key_id).principal
    before = _records(hub)

    with pytest.raises(PolicyError) as err:  # before: accepted, pending a second approver
        hub.policy_changes.propose(pa, _with_two_person(hub, value), "reformat the list")

    assert err.value.code == "policy_two_person_invalid"
    assert "two_person" in err.value.message and "list" in err.value.message
    assert _records(hub) == before  # nothing proposed


def test_the_refusal_holds_over_http_and_a_valid_list_still_passes(hub: Hub) -> None:
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from tests.adversarial._api import basic

    pa = hub.keys.create(["admin"], owner="pa")
    with TestClient(create_app(hub)) as client:
        bad = _with_two_person(hub, "policy")
        r = client.post(
            "/v1/policy/changes",
            json={"files": bad, "reason": "reformat"},
            headers=basic(pa.token),
        )
        assert r.status_code == 422, r.text
        assert r.json()["reason"] == "policy_two_person_invalid"
        good = _with_two_person(hub, ["policy", "rules:*"])
        r = client.post(
            "/v1/policy/changes",
            json={"files": good, "reason": "rules too"},
            headers=basic(pa.token),
        )
        assert r.status_code in (201, 202), r.text
        assert r.json()["status"] == "pending_approval"
