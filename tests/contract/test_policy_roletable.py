"""The PolicyEngine port contract against the embedded role table (``core/roles.py``).

The role table decides on roles alone: it has no obligations (mask, row filter), tenants,
purposes or grants, so it runs the port-level suite (:class:`PolicyPortContract`), not the bundle
engines' cases. Its table and the shipped bundle's ``data.json`` are one (``python -m
governance.roledata`` writes the latter from the former): the suite fails if they drift.
"""

from __future__ import annotations

import pytest

from core.ports.policy import Principal
from core.roles import ROLE_ACTIONS, RoleTablePolicy
from tests.contract.policy_contract import SHIPPED, PolicyPortContract


class TestRoleTablePolicy(PolicyPortContract):
    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls) -> RoleTablePolicy:
        return RoleTablePolicy()


def test_the_table_is_the_shipped_bundles() -> None:
    shipped = SHIPPED.hub_data["role_actions"]
    assert {r: sorted(a) for r, a in ROLE_ACTIONS.items()} == {
        r: sorted(a) for r, a in shipped.items()
    }


def test_a_second_role_adds_its_actions() -> None:
    engine = RoleTablePolicy()
    both = Principal("p", frozenset({"analyst", "security_admin"}), "acme")
    for action in ROLE_ACTIONS["analyst"] | ROLE_ACTIONS["security_admin"]:
        assert engine.decide(both, action, "r").allow, action
