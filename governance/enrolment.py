"""Enrolment of people who may approve: what the hub stores, the token's shape, and the commands.

A person with approval rights (any role that grants a ``*.approve`` action) never receives a key
from another person. Creating one, granting approval rights, or resetting another person's key
returns a one-time enrolment token instead; the person redeems it (``hub enrol``, token on stdin,
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

``EnrolmentCommands`` holds the commands (request, approve, redeem, reset, expire, withdraw) and
the trust-model checks of enrolled keys (docs/trust-model.md rules 2-5); the keyring
(``governance.apikeys.ApiKeys``) mixes them in, owning the fold, the keys and the issuance they
use. The names both share (the topic, the owner and tenant patterns, ``IssuedKey``) live here,
since the keyring imports this module and not the reverse.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core import clock
from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.roles import ROLE_ACTIONS, ROLES

if TYPE_CHECKING:
    import threading

    from ingest.publish import Publisher

TOPIC = "hub.principals"
BOOTSTRAP_ISSUER = "hub"  # issued_by of keys the hub itself issues (hub init, tests)
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# A tenant is a name every decision carries (principal.tenant, context.tenant): the same plain
# characters as an owner, so no quote or backslash reaches the embedded engine, whose answer would
# not escape it (it denies such input: a key with such a tenant could never be allowed anything).
TENANT_PATTERN = OWNER_PATTERN
LIVE = ("ready", "pending_approval")  # an enrolment's states in which a token may still work

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
    approved_by_key: str = ""
    approved_at: datetime | None = None
    approval_salt: str = field(default="", repr=False)
    approval_hmac: str = field(default="", repr=False)
    approval_reason: str = ""
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
            "approval_reason": self.approval_reason or None,
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


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    secret: str
    owner: str = ""

    @property
    def token(self) -> str:
        return f"{self.key_id}:{self.secret}"


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def check_roles(roles: list[str] | frozenset[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise InvalidInput(
            f"Unknown role(s) {', '.join(unknown) or '(none given)'}: choose from "
            f"{', '.join(ROLES)}.",
            code="invalid_role",
        )


def whose(actor: Principal, key: Any) -> str:
    """`` of 'owner' (roles: ...)`` for a refusal about a key (an ``ApiKey``) of the actor's own
    tenant; nothing for another tenant's: ``GET /v1/keys`` does not list that tenant's owners
    and roles to the actor, and a refusal must not either (any key may ask to rotate any key
    id)."""
    if key.tenant != actor.tenant:
        return ""
    return f" of {key.owner!r} (roles: {', '.join(sorted(key.roles))})"


def fold_owner(s: str) -> str:
    """An owner as compared: trimmed, casefolded (``Alice `` is ``alice``)."""
    return s.strip().casefold()


def is_admin(principal: Principal) -> bool:
    return "admin" in principal.roles


class EnrolmentCommands:
    """The enrolment commands and checks of the keyring (``governance.apikeys.ApiKeys``), which
    provides what is declared under ``TYPE_CHECKING`` below: its lock, fold, keys, publisher,
    pepper digest, issuance and the proposer/approver checks."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _keys: dict[str, Any]  # key id -> governance.apikeys.ApiKey
        _enrolments: dict[str, Enrolment]
        _publisher: Publisher
        _bootstrap_closed: bool
        _two_person_on: Callable[[], bool]

        def _refresh(self) -> None: ...

        def _digest(self, salt: str, secret: str) -> str: ...

        def _new_id(self, prefix: str) -> str: ...

        def _key_event(self, *args: Any, **kwargs: Any) -> OutgoingEvent: ...

        def _check_delegation(
            self, issuer: Principal, roles: set[str], owner: str | None, tenant: str
        ) -> None: ...

        def _after_revoked(self, ids: Sequence[str], by: str, reason: str) -> None: ...

        def check_proposer(
            self,
            proposed_by: str,
            proposed_key: str,
            what: str,
            needs: Sequence[tuple[str, str, Mapping[str, Any] | None]] = (),
        ) -> None: ...

        def check_approver(
            self, proposed_by: str, approver: Principal, proposed_at: Any, what: str
        ) -> None: ...

        def check_acting_key(self, key_id: str, outcome: str) -> None: ...

        def check_permitted(
            self,
            principal: Principal,
            needs: Sequence[tuple[str, str, Mapping[str, Any] | None]],
            what: str,
        ) -> None: ...

    def _withdraw_enrolments(self, owners: frozenset[str], by: str, why: str) -> list[str]:
        """End (``withdrawn: ...``) each live enrolment requested, or approved, by one of
        ``owners`` who no longer holds a key that may request (approve) it; their ids. An
        approval is the second person's half of the token: a ready token whose approver's key
        was revoked (a stolen approver key, found out) must not still make a key."""
        with self._lock:
            self._refresh()
            now = clock.now()
            ended: list[OutgoingEvent] = []
            tenants: set[str] = set()
            for e in self._enrolments.values():
                if e.state(now) not in LIVE:
                    continue
                lost = ""
                for role, who, key, resource in (
                    ("requester", e.requested_by, e.requested_by_key, "/v1/keys"),
                    (
                        "approver",
                        e.approved_by,
                        e.approved_by_key,
                        f"/v1/enrolments/{e.enrolment_id}/approve",
                    ),
                ):
                    if lost or not who or fold_owner(who) not in owners:
                        continue
                    try:
                        self.check_proposer(
                            who, key, e.enrolment_id, [("keys.create", resource, None)]
                        )
                    except Conflict:
                        lost = f"{WITHDRAWN_REASON} {role} {who!r} lost the right"
                if lost:
                    ended.append(self._ended(e.enrolment_id, f"{lost}: {why}", by, now))
                    tenants.add(e.tenant)
            if not ended:
                return []
            self._publisher.publish(
                TOPIC,
                ended,
                producer=by,
                tenant=tenants.pop() if len(tenants) == 1 else "default",
            )
            self._refresh()
            return [str(e.value["key_id"]) for e in ended]

    def _apply_enrolment(self, kind: str, v: Mapping[str, Any]) -> None:
        eid = v["key_id"]
        if kind == ISSUED:
            if eid in self._enrolments:  # a colliding id never replaces the first
                return
            self._enrolments[eid] = Enrolment(
                enrolment_id=eid,
                owner=v["owner"],
                roles=frozenset(v["roles"]),
                tenant=v.get("tenant") or "default",
                requested_by=v["requested_by"],
                requested_at=parse_time(v["requested_at"]) or clock.now(),
                expires_at=parse_time(v["expires_at"]) or clock.now(),
                kind=v.get("kind") or "create",
                resets=v.get("resets") or "",
                description=v.get("description") or "",
                requested_by_key=v.get("requested_by_key") or "",
                key_expires_at=parse_time(v.get("key_expires_at")),
                requires_approval=bool(v.get("requires_approval")),
                bootstrap=bool(v.get("bootstrap")),
                salt=v.get("salt") or "",
                token_hmac=v.get("token_hmac") or "",
            )
            return
        e = self._enrolments.get(eid)
        if e is None or e.new_key_id or e.ended_at is not None:
            return  # an event about an unknown or finished enrolment changes nothing
        if kind == APPROVED and e.requires_approval and not e.approval_hmac:
            self._enrolments[eid] = replace(
                e,
                approved_by=v.get("approved_by") or "",
                approved_by_key=v.get("approved_by_key") or "",
                approved_at=parse_time(v.get("approved_at")),
                approval_salt=v.get("approval_salt") or "",
                approval_hmac=v.get("approval_hmac") or "",
                approval_reason=v.get("reason") or "",
            )
            self._bootstrap_closed = True
        elif kind == REDEEMED and (not e.requires_approval or e.approval_hmac):
            self._enrolments[eid] = replace(
                e,
                new_key_id=v.get("new_key_id") or "",
                redeemed_at=parse_time(v.get("redeemed_at")),
            )
        elif kind == EXPIRED:
            self._enrolments[eid] = replace(
                e, ended_at=parse_time(v.get("expired_at")), ended_reason=v.get("reason") or ""
            )

    def _approver_owners(self, now: datetime | None = None) -> set[str]:
        """Owners (casefolded) holding an active approver key that counts for approval."""
        now = now or clock.now()
        return {
            fold_owner(k.owner)
            for k in self._keys.values()
            if grants_approval(k.roles) and k.counts_for_approval and k.state(now) == "active"
        }

    def two_person_on(self) -> bool:
        return bool(self._two_person_on())

    def request_enrolment(
        self,
        requester: Principal,
        roles: list[str],
        *,
        owner: str | None,
        tenant: str | None = None,
        description: str = "",
        key_expires_at: datetime | None = None,
        ttl: timedelta = DEFAULT_TTL,
    ) -> EnrolmentTicket:
        """A one-time enrolment token for ``owner`` with ``roles`` (a role that may approve).

        The requester MUST be allowed to issue those roles to that owner (an admin, or the
        delegation rules of ``issue``). When the two-person rule is on, the token is redeemable
        only after a second approver approves (``approve_enrolment``), who receives its second
        half; outside the bootstrap window (``bootstrap_open``). A live enrolment of the same
        owner is superseded (recorded as expired) in the same append.
        """
        tenant = tenant or requester.tenant
        check_roles(roles)
        if not is_admin(requester):  # what it may grant first: the rule a caller must know
            self._check_delegation(requester, set(roles), owner, tenant)
        if not owner:
            raise InvalidInput(
                "A key that may approve belongs to a named person: give --owner (e.g. "
                "alice@example.com); they enrol with the token this returns.",
                code="owner_required",
            )
        if not TENANT_PATTERN.fullmatch(tenant):
            raise InvalidInput(
                f"Tenant {tenant!r} is not a valid tenant name.", code="invalid_tenant"
            )
        if not OWNER_PATTERN.fullmatch(owner):
            raise InvalidInput(
                f"Owner {owner!r} is not a valid person id: use 1-128 ASCII letters, digits "
                "and . _ @ + - (starting with a letter or digit), e.g. alice@example.com.",
                code="invalid_owner",
            )
        if not timedelta(minutes=5) <= ttl <= MAX_TTL:
            raise InvalidInput(
                f"An enrolment token lives 5 minutes to {MAX_TTL.days} days, not {ttl}.",
                code="invalid_duration",
            )
        with self._lock:
            self._refresh()
            self.check_acting_key(str(requester.attributes.get("key_id", "")), "enrolled nobody")
            now = clock.now()
            on = self.two_person_on()
            bootstrap = on and self.bootstrap_open(requester)
            eid, events = self._enrolment_events(
                requester,
                roles,
                owner,
                tenant,
                description,
                key_expires_at,
                now + ttl,
                requires_approval=on and not bootstrap,
                bootstrap=bootstrap,
            )
            first, token_event = events[-1]
            self._publisher.publish(
                TOPIC,
                [e for _, e in events[:-1]] + [token_event],
                producer=requester.id,
                tenant=tenant,
            )
            self._refresh()
            e = self._enrolments[eid]
        return EnrolmentTicket.of(e, first)

    def _enrolment_events(
        self,
        requester: Principal,
        roles: list[str] | frozenset[str],
        owner: str,
        tenant: str,
        description: str,
        key_expires_at: datetime | None,
        expires_at: datetime,
        *,
        requires_approval: bool,
        bootstrap: bool,
        kind: str = "create",
        resets: str = "",
    ) -> tuple[str, list[tuple[str, OutgoingEvent]]]:
        """(enrolment id, [(first half or '', event)]): supersessions of the owner's live
        enrolments, then the new EnrolmentIssued (its first half beside it)."""
        now = clock.now()
        events: list[tuple[str, OutgoingEvent]] = [
            ("", self._ended(e.enrolment_id, "superseded by a new enrolment", requester.id, now))
            for e in self._enrolments.values()
            if fold_owner(e.owner) == fold_owner(owner) and e.state(now) in LIVE
        ]
        eid = self._new_id("he_")
        first, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
        value = {
            "key_id": eid,
            "owner": owner,
            "roles": sorted(set(roles)),
            "tenant": tenant,
            "description": description,
            "kind": kind,
            "resets": resets,
            "requested_by": requester.id,
            "requested_by_key": requester.attributes.get("key_id", ""),
            "requester_roles": sorted(requester.roles),
            "requested_at": now.isoformat(),
            "expires_at": expires_at.isoformat(),
            "key_expires_at": key_expires_at.isoformat() if key_expires_at else None,
            "requires_approval": requires_approval,
            "bootstrap": bootstrap,
            "salt": salt,
            "token_hmac": self._digest(salt, first),
        }
        events.append((first, OutgoingEvent(event_type=ISSUED, value=value)))
        return eid, events

    @staticmethod
    def _ended(eid: str, reason: str, by: str, at: datetime) -> OutgoingEvent:
        return OutgoingEvent(
            event_type=EXPIRED,
            value={
                "key_id": eid,
                "expired_at": at.isoformat(),
                "reason": reason,
                "recorded_by": by,
            },
        )

    def bootstrap_open(self, requester: Principal) -> bool:
        """Whether ``requester`` (an admin) may enrol without a second approver while the
        two-person rule is on: only before the first approved enrolment and while fewer than
        three people hold approver keys (the hub's first people, vouched for by the admin who
        enrolled them; the ledger marks each such enrolment ``bootstrap``)."""
        with self._lock:
            self._refresh()
            return (
                is_admin(requester)
                and not self._bootstrap_closed
                and len(self._approver_owners()) < 3
            )

    def approve_enrolment(self, approver: Principal, enrolment_id: str, reason: str = "") -> str:
        """Approve a pending enrolment as a second person; returns the token's second half,
        which the approver hands to the person (never to the requester).

        The approver MUST pass the two-person rule against the requester (``check_approver``)
        and, unless an admin, hold every role enrolled, in the enrolment's tenant.
        """
        with self._lock:
            self._refresh()
            e = self._enrolments.get(enrolment_id)
            now = clock.now()
            # Another tenant's enrolment answers as a missing one, before any other check: its
            # existence, state and requester are that tenant's business (the list a
            # tenant-limited reader gets leaves it out too).
            if e is None or (not is_admin(approver) and e.tenant != approver.tenant):
                raise NotFound(
                    f"No enrolment {enrolment_id!r}: list them with `hub principals list`."
                )
            if e.state(now) != "pending_approval":
                raise Conflict(
                    f"Enrolment {enrolment_id} is {e.state(now)}, not pending approval.",
                    code="enrolment_not_pending",
                )
            what = f"enrolment {enrolment_id}"
            # what the routes asked of each (POST /v1/keys, POST /v1/enrolments/{id}/approve),
            # decided again against the policy in force now
            self.check_proposer(
                e.requested_by, e.requested_by_key, what, [("keys.create", "/v1/keys", None)]
            )
            self.check_approver(e.requested_by, approver, e.requested_at, what)
            self.check_permitted(
                approver,
                [("keys.create", f"/v1/enrolments/{enrolment_id}/approve", None)],
                what,
            )
            if not is_admin(approver) and not e.roles <= approver.roles:
                raise Forbidden(
                    f"Principal {approver.id!r} may not approve enrolment {enrolment_id} of "
                    f"{e.owner!r} with role(s) {', '.join(sorted(e.roles))} in tenant "
                    f"{e.tenant!r}: an approver holds every role it approves, in that tenant.",
                    code="role_escalation",
                )
            second, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
            self._publisher.publish(
                TOPIC,
                [
                    OutgoingEvent(
                        event_type=APPROVED,
                        value={
                            "key_id": enrolment_id,
                            "approved_by": approver.id,
                            "approved_by_key": approver.attributes.get("key_id", ""),
                            "approved_at": now.isoformat(),
                            "approval_salt": salt,
                            "approval_hmac": self._digest(salt, second),
                            "reason": reason,
                        },
                    )
                ],
                producer=approver.id,
                tenant=e.tenant,
            )
            self._refresh()
            folded = self._enrolments[enrolment_id]
            if folded.approval_hmac != self._digest(salt, second):
                # another process approved it first (both checks saw it pending): the fold
                # keeps the first approval, so this second half would never redeem
                raise Conflict(
                    f"Enrolment {enrolment_id} was approved by {folded.approved_by!r} at the "
                    "same time, in another request: that approval stands and this one does "
                    "not count (hand the person nothing from it).",
                    code="enrolment_not_pending",
                )
            return second

    def reset(self, actor: Principal, key_id: str, *, reason: str = "") -> EnrolmentTicket:
        """Reset another person's key: revoke it now and enrol its owner again (same roles,
        tenant), two-person when the rule is on. Only an admin resets; a person rotates their
        own key alone (``rotate``)."""
        with self._lock:
            self._refresh()
            self.check_acting_key(str(actor.attributes.get("key_id", "")), "reset nothing")
            old = self._keys.get(key_id)
            now = clock.now()
            if old is None or old.state(now) == "revoked":
                raise InvalidInput(f"No active API key {key_id!r}.", code="unknown_key")
            if fold_owner(old.owner) == fold_owner(actor.id):
                raise InvalidInput(
                    f"Key {key_id} is your own: rotate it (`hub keys rotate {key_id}`).",
                    code="reset_own_key",
                )
            if not is_admin(actor):
                raise Forbidden(
                    f"Principal {actor.id!r} may not reset key {key_id}{whose(actor, old)}: "
                    "only an admin may (revoke it instead).",
                    code="key_not_manageable",
                )
            on = self.two_person_on()
            eid, events = self._enrolment_events(
                actor,
                old.roles,
                old.owner,
                old.tenant,
                old.description,
                old.expires_at,
                now + DEFAULT_TTL,
                requires_approval=on,
                bootstrap=False,
                kind="reset",
                resets=key_id,
            )
            first, issued = events[-1]
            reset = OutgoingEvent(
                event_type=RESET,
                value={
                    "key_id": key_id,
                    "owner": old.owner,
                    "reset_by": actor.id,
                    "enrolment_id": eid,
                    "reset_at": now.isoformat(),
                    "reason": reason,
                },
            )
            revoked = OutgoingEvent(
                event_type="hub.ApiKeyRevoked",
                value={
                    "key_id": key_id,
                    "revoked_by": actor.id,
                    "reason": reason or f"reset: {old.owner} enrols again ({eid})",
                    "revoked_at": now.isoformat(),
                },
            )
            self._publisher.publish(
                TOPIC,
                [e for _, e in events[:-1]] + [reset, revoked, issued],
                producer=actor.id,
                tenant=old.tenant,
            )
            self._refresh()
            e = self._enrolments[eid]
        self._after_revoked([key_id], actor.id, reason or f"reset ({eid})")
        return EnrolmentTicket.of(e, first, resets=key_id)

    def redeem(
        self,
        token: str,
        secret: str,
        *,
        second: str | None = None,
        presented_by: Principal | None = None,
    ) -> IssuedKey:
        """Redeem an enrolment token with ``secret`` (generated where the person is); returns
        the new key (``KEY_ID:SECRET``, the secret the caller sent). The hub stores only its
        salted HMAC. Refused: a malformed, unknown or wrong token (one message, constant-time
        compare), a reused, expired or unapproved one, and a caller authenticated as anyone
        but the token's owner (an admin redeeming a token they were handed)."""
        eid, first, second_half = parse_token(token, second)
        check_secret(secret)
        with self._lock:
            self._refresh()
            e = self._enrolments.get(eid)
            if e is not None:
                ok = hmac.compare_digest(self._digest(e.salt, first), e.token_hmac)
                if e.requires_approval:
                    expected = e.approval_hmac or "0" * 64
                    got = self._digest(e.approval_salt or "00", second_half)
                    ok = hmac.compare_digest(got, expected) and ok and bool(e.approval_hmac)
            else:  # the same work for an unknown id: no timing tells ids apart
                hmac.compare_digest(self._digest("00", first), "0" * 64)
                ok = False
            if e is None or not ok:
                pending = e is not None and e.requires_approval and not e.approval_hmac
                raise Unauthenticated(
                    f"Enrolment {eid} waits for a second approver: redeem it once approved, "
                    "with the second half the approver gives you."
                    if pending and not second_half
                    else "Invalid enrolment token.",
                    code="enrolment_pending"
                    if pending and not second_half
                    else "enrolment_invalid",
                )
            now = clock.now()
            if presented_by is not None and fold_owner(presented_by.id) != fold_owner(e.owner):
                raise Forbidden(
                    f"Enrolment {eid} is {e.owner!r}'s: {presented_by.id!r} may not redeem it. "
                    "The person it names runs `hub enrol` themselves, without another key.",
                    code="enrolment_not_yours",
                )
            state = e.state(now)
            if state == "redeemed":
                raise Unauthenticated(
                    f"Enrolment {eid} was already redeemed (key {e.new_key_id}): a token works "
                    "once. If that was not you, ask an admin to revoke that key and reset it.",
                    code="enrolment_used",
                )
            if state == "withdrawn":
                raise Unauthenticated(
                    f"Enrolment {eid} was withdrawn ({e.ended_reason}): ask an admin for a new "
                    "one.",
                    code="enrolment_withdrawn",
                )
            if state == "expired":
                if e.ended_at is None:  # record it once: the ledger shows the token lapsed
                    self._publisher.publish(
                        TOPIC,
                        [self._ended(eid, "expired unredeemed", e.owner, now)],
                        producer=BOOTSTRAP_ISSUER,
                        tenant=e.tenant,
                    )
                    self._refresh()
                raise Unauthenticated(
                    f"Enrolment {eid} has expired or was superseded: ask an admin for a new one.",
                    code="enrolment_expired",
                )
            # decided again now: the withdrawal that follows a revocation is a second append
            # (a crash between them, or a failed hook, left a ready token redeemable)
            for role, who, by_key, resource in (
                ("requester", e.requested_by, e.requested_by_key, "/v1/keys"),
                ("approver", e.approved_by, e.approved_by_key, f"/v1/enrolments/{eid}/approve"),
            ):
                if not who:
                    continue
                try:
                    self.check_proposer(who, by_key, eid, [("keys.create", resource, None)])
                except Conflict:
                    raise Unauthenticated(
                        f"Enrolment {eid} no longer counts: its {role} {who!r} lost the right "
                        "to make it (key revoked, or the policy took the permission): ask an "
                        "admin for a new one.",
                        code="enrolment_withdrawn",
                    ) from None
            key_id = self._new_id("hk_")
            self._publisher.publish(
                TOPIC,
                [
                    OutgoingEvent(
                        event_type=REDEEMED,
                        value={
                            "key_id": eid,
                            "new_key_id": key_id,
                            "owner": e.owner,
                            "redeemed_at": now.isoformat(),
                        },
                    ),
                    self._key_event(
                        key_id,
                        secret,
                        e.owner,
                        e.roles,
                        tenant=e.tenant,
                        description=e.description,
                        issued_by=e.owner,
                        issued_by_key="",
                        issuer_roles=e.roles,
                        expires_at=e.key_expires_at,
                        replaces="",
                        issuance=ENROLLED,
                        enrolment_id=eid,
                    ),
                ],
                producer=e.owner,
                tenant=e.tenant,
            )
            self._refresh()
            if self._enrolments[eid].new_key_id != key_id:  # another process redeemed it first
                raise Unauthenticated(
                    f"Enrolment {eid} was already redeemed: a token works once.",
                    code="enrolment_used",
                )
        return IssuedKey(key_id, secret, e.owner)

    def expire_due(self) -> list[str]:
        """Record every enrolment that passed its expiry unredeemed (one append); their ids."""
        with self._lock:
            self._refresh()
            now = clock.now()
            due = [
                e
                for e in self._enrolments.values()
                if e.ended_at is None and not e.new_key_id and e.expires_at <= now
            ]
            if due:
                self._publisher.publish(
                    TOPIC,
                    [
                        self._ended(e.enrolment_id, "expired unredeemed", BOOTSTRAP_ISSUER, now)
                        for e in due
                    ],
                    producer=BOOTSTRAP_ISSUER,
                    tenant="default",
                )
                self._refresh()
            return [e.enrolment_id for e in due]

    def enrolments(self) -> list[Enrolment]:
        self._refresh()
        return sorted(self._enrolments.values(), key=lambda e: e.requested_at)

    def _check_enrolled(
        self, proposed_by: str, approver: Principal, since: datetime | None, what: str
    ) -> None:
        """Rules 2-5 of the trust model (docs/trust-model.md): the approver's key is their own
        (enrolled, bootstrap or legacy-issued), neither person saw the other's whole enrolment
        token, and the proposer did not enrol the approver while the change was pending."""
        key_id = str(approver.attributes.get("key_id", ""))
        key = self._keys.get(key_id) if key_id else None
        if key_id and (key is None or fold_owner(key.owner) != fold_owner(approver.id)):
            raise Forbidden(
                f"Two-person rule: {approver.id!r} approves {what} with key {key_id!r}, which "
                "is not theirs; an approval is a person's act, made with their own key.",
                code="two_person_rule",
            )
        if key is None:
            # A principal the hub built in-process (no key: never one a route or the CLI
            # authenticated): the rules that compare people, over all of the owner's keys.
            now = clock.now()
            owned = [
                k
                for k in self._keys.values()
                if fold_owner(k.owner) == fold_owner(approver.id) and k.state(now) == "active"
            ]
            if fold_owner(proposed_by) in self._holders(owned):
                raise Forbidden(
                    f"Two-person rule: {proposed_by!r} saw the whole enrolment token of "
                    f"{approver.id!r}: {approver.id!r} does not approve {what} of theirs.",
                    code="two_person_rule",
                )
            self._check_not_held_by(proposed_by, approver, since, what)
            return
        if not key.counts_for_approval:
            raise Forbidden(
                f"Two-person rule: key {key.key_id} of {approver.id!r} was issued by "
                f"{key.issued_by!r}, who saw its secret; it does not approve. {approver.id!r} "
                "must enrol (ask an admin to reset the key: `hub keys rotate "
                f"{key.key_id}`, then redeem the token with `hub enrol`).",
                code="two_person_not_enrolled",
            )
        mine = self._enrolments.get(key.enrolment_id) if key.issuance == ENROLLED else None
        proposer = fold_owner(proposed_by)
        held_by = self._holders([key])
        if proposer in held_by:
            raise Forbidden(
                f"Two-person rule: {proposed_by!r} saw the whole enrolment token of "
                f"{approver.id!r} (or of whoever enrolled them that way): they requested it "
                f"without a second approver and may hold that key, so {approver.id!r} does not "
                f"approve {what} of theirs. Reset {approver.id!r}'s key with a second approver "
                "first.",
                code="two_person_rule",
            )
        if mine is not None and since is not None:
            during = (fold_owner(mine.requested_by) == proposer and mine.requested_at > since) or (
                fold_owner(mine.approved_by) == proposer
                and mine.approved_at is not None
                and mine.approved_at > since
            )
            if during:
                raise Forbidden(
                    f"Two-person rule: {approver.id!r} was enrolled ({mine.enrolment_id}) by "
                    f"{proposed_by!r} after they proposed {what}; an approver must not be "
                    "enrolled by the proposer while the change is pending.",
                    code="two_person_rule",
                )
        self._check_not_held_by(proposed_by, approver, since, what)

    def _check_not_held_by(
        self, proposed_by: str, approver: Principal, since: datetime | None, what: str
    ) -> None:
        """Rule 4 (docs/trust-model.md): the approver never saw a whole enrolment token of the
        proposer's keys (those unrevoked, or revoked only after the proposal)."""
        now = clock.now()
        proposer = fold_owner(proposed_by)
        theirs = [
            k
            for k in self._keys.values()
            if fold_owner(k.owner) == proposer
            and (k.state(now) != "revoked" or (since is not None and (k.revoked_at or now) > since))
        ]
        if fold_owner(approver.id) in self._holders(theirs):
            raise Forbidden(
                f"Two-person rule: {approver.id!r} saw the whole enrolment token of "
                f"{proposed_by!r} (or of whoever enrolled them that way): they do not approve "
                f"{what} of {proposed_by!r}.",
                code="two_person_rule",
            )

    def _holders(self, keys: list[Any]) -> set[str]:
        """Everyone (casefolded) who saw the whole enrolment token of one of ``keys``, then of
        one of their unrevoked keys, and so on: the people who may hold those keys. Only
        enrolments without a second approver (bootstrap, or the two-person rule off) have a
        whole holder, so the walk is short."""
        now = clock.now()
        found: set[str] = set()
        frontier = list(keys)
        while frontier:
            k = frontier.pop()
            e = self._enrolments.get(k.enrolment_id) if k.issuance == ENROLLED else None
            holder = fold_owner(e.whole_holder) if e is not None and e.whole_holder else ""
            if not holder or holder in found or holder == fold_owner(k.owner):
                continue
            found.add(holder)
            frontier += [
                o
                for o in self._keys.values()
                if fold_owner(o.owner) == holder and o.state(now) != "revoked"
            ]
            # and the key the token was requested with, revoked or not: whoever held it then
            # was shown the token, and revoking it later does not make them forget it (the
            # walk stopped at a revoked middle link: admin -> x -> y, x revoked, y approved
            # the admin's change)
            requesting = self._keys.get(e.requested_by_key) if e is not None else None
            if requesting is not None and fold_owner(requesting.owner) == holder:
                frontier.append(requesting)
        return found

    def _enrolled_with(self, key: Any, parent: str) -> bool:
        """Whether ``key`` comes from an enrolment requested with key ``parent``."""
        e = self._enrolments.get(key.enrolment_id) if key.issuance == ENROLLED else None
        return e is not None and e.requested_by_key == parent
