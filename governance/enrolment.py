"""Enrolment of people who may approve: what the hub stores and the token's shape (no I/O).

A person with approval rights (any role that grants a ``*.approve`` action) never receives a key
from another person. Creating one, granting approval rights, or resetting another person's key
returns a one-time enrolment token instead; the person redeems it (``hub enrol TOKEN``,
``POST /v1/enrol``) with a secret generated on their own machine, and the hub stores only
``HMAC-SHA256(pepper, salt + secret)`` of it, as for any key.

The token is ``he_<16 hex>.<first half>`` and, when the two-person rule needed a second approver,
``.<second half>`` appended: the requester is shown the first half, the approver the second (split
knowledge), so no one person can redeem it. Each half is 32 random bytes (URL-safe base64, 43
characters), compared in constant time against its stored HMAC; the id alone is public.

Events on ``hub.principals``: ``hub.EnrolmentIssued`` (kind ``create`` or ``reset``; a reset also
appends ``hub.KeyReset`` and revokes the old key), ``hub.EnrolmentApproved``,
``hub.EnrolmentRedeemed`` (with the new ``hub.ApiKeyIssued``, issuance ``enrolled``, in the same
append), ``hub.EnrolmentExpired`` (expired, superseded or withdrawn: a reason starting
``withdrawn:`` records that its requester lost the right to request it, and it lists as
``withdrawn``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.errors import InvalidInput, Unauthenticated
from core.roles import ROLE_ACTIONS

ISSUED = "hub.EnrolmentIssued"
APPROVED = "hub.EnrolmentApproved"
REDEEMED = "hub.EnrolmentRedeemed"
EXPIRED = "hub.EnrolmentExpired"
RESET = "hub.KeyReset"
KINDS = (ISSUED, APPROVED, REDEEMED, EXPIRED, RESET)

# Roles whose holders can approve a governed change: their keys come only from enrolment.
APPROVER_ROLES = frozenset(
    role for role, actions in ROLE_ACTIONS.items() if any(a.endswith(".approve") for a in actions)
)
DEFAULT_TTL = timedelta(hours=24)
MAX_TTL = timedelta(days=7)  # a token is a bearer credential: it must not outlive a week
ID_PATTERN = re.compile(r"^he_[0-9a-f]{16}$")
HALF_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,256}$")
WITHDRAWN_REASON = "withdrawn:"  # how an EnrolmentExpired reason marks a withdrawal

# Issuance of a key, as ApiKeyIssued.issuance records it.
ENROLLED = "enrolled"  # its owner redeemed an enrolment (or rotated such a key)
ISSUED_BY_OTHER = "issued"  # another person issued or rotated it: they saw its secret
BOOTSTRAP = "bootstrap"  # the hub itself (hub init's first admin key)
LEGACY = "legacy"  # from before enrolment existed (no issuance recorded)


def grants_approval(roles: Any) -> bool:
    return bool(APPROVER_ROLES & set(roles))


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One enrolment as the fold sees it (never a token half)."""

    enrolment_id: str
    owner: str
    roles: frozenset[str]
    tenant: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    kind: str = "create"
    resets: str = ""
    description: str = ""
    requested_by_key: str = ""
    key_expires_at: datetime | None = None
    requires_approval: bool = False
    bootstrap: bool = False
    salt: str = field(default="", repr=False)
    token_hmac: str = field(default="", repr=False)
    approved_by: str = ""
    approved_at: datetime | None = None
    approval_salt: str = field(default="", repr=False)
    approval_hmac: str = field(default="", repr=False)
    new_key_id: str = ""
    redeemed_at: datetime | None = None
    ended_at: datetime | None = None  # recorded expiry, supersession or withdrawal
    ended_reason: str = ""

    def state(self, now: datetime) -> str:
        if self.new_key_id:
            return "redeemed"
        if self.ended_at is not None and self.ended_reason.startswith(WITHDRAWN_REASON):
            return "withdrawn"
        if self.ended_at is not None or self.expires_at <= now:
            return "expired"
        if self.requires_approval and not self.approval_hmac:
            return "pending_approval"
        return "ready"

    @property
    def whole_holder(self) -> str:
        """Who was shown the whole token (so may hold the key it makes): the requester when no
        second approver added a half; nobody otherwise."""
        return "" if self.requires_approval else self.requested_by

    def public(self, now: datetime) -> dict[str, Any]:
        return {
            "enrolment_id": self.enrolment_id,
            "owner": self.owner,
            "roles": sorted(self.roles),
            "tenant": self.tenant,
            "kind": self.kind,
            "resets": self.resets or None,
            "state": self.state(now),
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "requires_approval": self.requires_approval,
            "bootstrap": self.bootstrap,
            "approved_by": self.approved_by or None,
            "expires_at": self.expires_at.isoformat(),
            "key_id": self.new_key_id or None,
            "ended_reason": self.ended_reason or None,
        }


@dataclass(frozen=True, slots=True)
class EnrolmentTicket:
    """What the requester receives instead of a key: the token (its first half when a second
    approver must add the other)."""

    enrolment_id: str
    token: str
    owner: str
    roles: tuple[str, ...]
    requires_approval: bool
    expires_at: datetime
    resets: str = ""

    @classmethod
    def of(cls, e: Enrolment, first: str, resets: str = "") -> EnrolmentTicket:
        """The ticket of enrolment ``e`` whose (first half of the) token is ``first``."""
        return cls(
            e.enrolment_id,
            f"{e.enrolment_id}.{first}",
            e.owner,
            tuple(sorted(e.roles)),
            e.requires_approval,
            e.expires_at,
            resets=resets,
        )

    def public(self) -> dict[str, Any]:
        return {
            "enrolment_id": self.enrolment_id,
            "enrolment_token": self.token,
            "owner": self.owner,
            "roles": list(self.roles),
            "status": "pending_approval" if self.requires_approval else "ready",
            "expires_at": self.expires_at.isoformat(),
            "resets": self.resets or None,
        }


def parse_token(token: str, second: str | None = None) -> tuple[str, str, str]:
    """(enrolment id, first half, second half or '') of ``token``; ``second`` may carry the
    approver's half separately. Raises ``Unauthenticated`` naming the expected shape."""
    parts = token.strip().split(".")
    if second:
        parts.append(second.strip())
    if len(parts) not in (2, 3) or not ID_PATTERN.fullmatch(parts[0]):
        raise Unauthenticated(
            "An enrolment token has the form he_<16 hex>.<43 characters>[.<43 characters>] "
            "(the second half comes from the approver, when one approved): check what you "
            "were given.",
            code="enrolment_token_malformed",
        )
    halves = parts[1:] + [""] * (3 - len(parts))
    if not all(HALF_PATTERN.fullmatch(h) for h in halves if h) or not halves[0]:
        raise Unauthenticated(
            "An enrolment token half is 43 URL-safe base64 characters: check what you were given.",
            code="enrolment_token_malformed",
        )
    return parts[0], halves[0], halves[1]


def check_secret(secret: str) -> None:
    """A secret the person chose (or ``hub enrol`` generated): 32-256 URL-safe characters."""
    if not SECRET_PATTERN.fullmatch(secret):
        raise InvalidInput(
            f"The secret must be 32 to 256 URL-safe base64 characters (A-Z a-z 0-9 - _), got "
            f"{len(secret)} characters{'' if secret.isascii() else ' (not ASCII)'}: let "
            "`hub enrol` generate one, or use `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`.",
            code="enrolment_secret_weak",
        )
