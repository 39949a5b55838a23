"""Session 26, red team (docs/benchmarks/s26-redteam-attacker26.md): two processes decide key
changes side by side.

The keyring's checks run under a lock of its process only; several ``hub serve`` processes (or
``hub`` commands beside ``hub serve``) on one log each fold the keys topic and check against
what they folded. Two requests on two processes, each checked before the other's append:

- **a rotation raced by a rotation**: the holder of a leaked key rotates it on one instance
  (with a grace, so the key still works a while) while its owner rotates it on another. Both
  checks passed ("a key already rotated is
  refused"), both replacements were issued: the owner, told the key is rotated, never learnt
  that the leak's holder kept a key of theirs, active, with their roles;
- **a revocation raced by an issuance** (``--cascade`` on one instance, the leaked key issuing on
  another): the key issued after the revocation was appended was active, the cascade computed
  without it.

Now every instance folds the keys topic alike, in log order: a second replacement of one key
and a key issued with a key already revoked never become active (folded revoked, the reason
named), and the request that appended it is refused (``already_rotated`` / ``key_revoked``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.errors import HubError
from governance.apikeys import ApiKeys
from hub.bootstrap import Hub
from tests.service.test_apikeys_shared_catchup import _other_instance


class _Interleaved:
    """The other instance's publisher: ``first`` runs (on this instance) once the other has
    checked and is about to append, as a concurrent request would."""

    def __init__(self, publisher: Any, first: Any) -> None:
        self._publisher, self._first = publisher, [first]

    def publish(self, *a: Any, **kw: Any) -> Any:
        if self._first:
            self._first.pop()()
        return self._publisher.publish(*a, **kw)


def _active_successors(keys: ApiKeys, key_id: str) -> list[str]:
    return [k.key_id for k in keys.active() if k.replaces == key_id]


def test_two_rotations_of_one_key_on_two_instances(hub: Hub) -> None:
    leaked = hub.keys.create(["analyst"], owner="val", tenant="globex")
    val = hub.keys.get(leaked.key_id).principal
    owner_side = _other_instance(hub)
    owner_side.active()  # folded: the key is active there
    thief = []
    owner_side._publisher = _Interleaved(  # type: ignore[assignment]
        hub.publisher,
        lambda: thief.append(hub.keys.rotate(val, leaked.key_id, grace=timedelta(hours=1))),
    )
    with pytest.raises(HubError) as refused:
        owner_side.rotate(val, leaked.key_id, reason="leaked")
    assert refused.value.code == "already_rotated", refused.value.message
    assert thief[0].key_id in refused.value.message
    # one replacement only, on both instances: the owner is told of the other one
    assert _active_successors(hub.keys, leaked.key_id) == [thief[0].key_id]
    assert _active_successors(owner_side, leaked.key_id) == [thief[0].key_id]


def test_an_issuance_by_a_key_revoked_on_another_instance(hub: Hub) -> None:
    leaked = hub.keys.create(["security_admin", "analyst"], owner="sam", tenant="globex")
    sam = hub.keys.get(leaked.key_id).principal
    root = hub.keys.get(hub.keys.create(["admin"], principal="root").key_id).principal
    holder_side = _other_instance(hub)
    holder_side.active()
    holder_side._publisher = _Interleaved(  # type: ignore[assignment]
        hub.publisher,
        lambda: hub.keys.revoke(
            leaked.key_id, revoked_by=root.id, reason="leaked", actor=root, cascade=True
        ),
    )
    with pytest.raises(HubError) as refused:
        holder_side.issue(sam, ["analyst"], owner="mallory")
    assert refused.value.code == "key_revoked", refused.value.message
    for keys in (hub.keys, holder_side):
        assert [k.owner for k in keys.active() if k.issued_by_key == leaked.key_id] == []


def test_two_approvals_of_one_enrolment_on_two_instances(hub: Hub) -> None:
    """Two approvers approve one pending enrolment on two instances at once: both checks saw
    it pending, both approvals were appended and both answered a second half; the fold keeps
    the first, so the other approver handed the person a half that never redeems (and the
    ledger holds two approvals of one enrolment, one of them void). The later one is refused
    now, naming the approval that stands."""
    from governance.enrolment import EnrolmentTicket

    root = hub.keys.get(hub.keys.create(["admin"], owner="root").key_id).principal
    ann = hub.keys.get(hub.keys.create(["admin"], owner="ann").key_id).principal
    dave = hub.keys.get(hub.keys.create(["security_admin"], owner="dave").key_id).principal
    hub.keys.create(["compliance_officer"], owner="carol")  # the bootstrap window is closed
    ticket = hub.keys.issue(root, ["security_admin"], owner="pat")
    assert isinstance(ticket, EnrolmentTicket) and ticket.requires_approval
    other = _other_instance(hub)
    other.enrolments()  # folded: pending there
    halves: list[str] = []
    other._publisher = _Interleaved(  # type: ignore[assignment]
        hub.publisher,
        lambda: halves.append(hub.keys.approve_enrolment(ann, ticket.enrolment_id, "known")),
    )
    with pytest.raises(HubError) as refused:
        other.approve_enrolment(dave, ticket.enrolment_id, "known")
    assert refused.value.code == "enrolment_not_pending", refused.value.message
    assert "ann" in refused.value.message
    issued = hub.keys.redeem(ticket.token, "s" * 40, second=halves[0])
    assert hub.keys.get(issued.key_id).owner == "pat"
