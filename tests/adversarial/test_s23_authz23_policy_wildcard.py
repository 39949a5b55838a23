"""s23 (authz): a ``two_person`` entry written as a prefix (``*``, ``polic*``) covers the policy.

``data.hub.two_person`` entries are an exact name or a prefix ending in ``*`` (README, policy
section; ``governance.configchanges.two_person_applies``). The configuration changes read them
so, but the policy changes compared the resource ``policy`` with the list's entries exactly:
under an active bundle listing ``["*"]`` (every governed resource needs a second person) a rule
change, a registry level or a retention policy needed a second approver, while one security
admin changed the policy itself alone (and with it the ``two_person`` list, the roles and the
grants). Now the policy's resource is matched by the same rule as every other resource.
"""

from __future__ import annotations

import json

import pytest

from core.errors import Forbidden
from core.policybundle import PolicyBundle
from hub.bootstrap import Hub


def _activate_two_person(hub: Hub, listed: list[str]) -> None:
    """Make ``listed`` the active bundle's ``two_person`` (two admins: proposer, approver)."""
    bundle = hub.policy_changes.store.active_bundle()
    data = json.loads(bundle.files["hub/data.json"])
    data["two_person"] = listed
    files = {**bundle.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    pa = hub.keys.get(hub.keys.create(["admin"], owner="pa").key_id).principal
    pb = hub.keys.get(hub.keys.create(["admin"], owner="pb").key_id).principal
    change = hub.policy_changes.propose(pa, files, f"two_person = {listed}")
    assert hub.policy_changes.approve(pb, change.change_id).status == "activated"
    active = hub.policy_changes.store.active_bundle()
    assert active.version == PolicyBundle.from_files(files).version


def _loosened(hub: Hub) -> dict[str, str]:
    """The active files with the two-person list emptied: what a lone proposer would want."""
    bundle = hub.policy_changes.store.active_bundle()
    data = json.loads(bundle.files["hub/data.json"])
    data["two_person"] = []
    return {**bundle.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


@pytest.mark.parametrize("listed", [["*"], ["polic*"], ["rules:*", "policy*"]])
def test_a_prefix_entry_puts_policy_changes_under_the_two_person_rule(
    hub: Hub, listed: list[str]
) -> None:
    _activate_two_person(hub, listed)
    before = hub.policy_changes.store.active_bundle().version
    if listed == ["*"]:  # the control: a configuration change needs a second person under it
        assert hub.config_changes.requires_two_person("rules:trades-value")
    sam = hub.keys.get(hub.keys.create(["security_admin"], owner="sam").key_id).principal

    change = hub.policy_changes.propose(sam, _loosened(hub), "no more second approvers")

    assert change.requires_approval, change  # before: activated at once by one person
    assert change.status == "pending_approval", change
    assert hub.policy_changes.store.active_bundle().version == before
    assert hub.policy_changes.store.active_bundle().hub_data["two_person"] == listed
    # and the same person cannot approve it with another key of theirs
    other = hub.keys.get(hub.keys.create(["security_admin"], owner="SAM").key_id).principal
    with pytest.raises(Forbidden) as err:
        hub.policy_changes.approve(other, change.change_id)
    assert err.value.code == "two_person_rule"
    assert hub.policy_changes.store.active_bundle().version == before


def test_an_exact_entry_of_another_resource_does_not_cover_the_policy(hub: Hub) -> None:
    """The matching is the documented one, not "any entry": ``rules:*`` alone leaves policy
    changes to one person, as the bundle says."""
    _activate_two_person(hub, ["rules:*"])
    sam = hub.keys.get(hub.keys.create(["security_admin"], owner="sam").key_id).principal
    change = hub.policy_changes.propose(sam, _loosened(hub), "rules only were listed")
    assert change.status == "activated", change
