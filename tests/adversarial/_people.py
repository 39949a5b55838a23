"""Approvers as the hub makes them now: enrolled, never handed over (``governance.enrolment``).

``enrolled(hub, issuer, roles, owner=...)`` is ``hub.keys.issue`` for any roles: a role that may
approve goes through a real enrolment (a second approver, "witness", adds the second half when
the two-person rule needs one) and a redemption with a secret generated here.
"""

from __future__ import annotations

import secrets
from typing import Any

from core.ports.policy import Principal
from governance.apikeys import IssuedKey
from hub.bootstrap import Hub

WITNESS = "witness"


def witness(hub: Hub) -> Principal:
    """An independent admin (the hub's own bootstrap key) who approves enrolments in tests."""
    for k in hub.keys.active():
        if k.owner == WITNESS:
            return k.principal
    return hub.keys.get(hub.keys.create(["admin"], owner=WITNESS).key_id).principal


def enrolled(hub: Hub, issuer: Principal, roles: list[str], **kw: Any) -> IssuedKey:
    got = hub.keys.issue(issuer, roles, **kw)
    if isinstance(got, IssuedKey):
        return got
    second = (
        hub.keys.approve_enrolment(witness(hub), got.enrolment_id)
        if got.requires_approval
        else None
    )
    return hub.keys.redeem(got.token, secrets.token_urlsafe(32), second=second)
