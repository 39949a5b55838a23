"""API keys: issued, rotated and revoked as events on ``hub.principals``; verified in constant time.

A key is ``KEY_ID:SECRET``. The key id (``hk_`` + 16 hex) is public; the secret is 32 random bytes
(URL-safe base64) shown once at creation. The log stores only ``HMAC-SHA256(pepper, salt +
secret)`` with a per-key random salt; the pepper is a server secret kept outside the log (a 0600
file beside the keyring, ``keys/apikeys.pepper``), so a leaked log lets nobody check guesses or
mint keys. Keys issued before this scheme carry ``secret_sha256``: they still authenticate, are
listed as ``legacy``, and ``hub keys rotate`` replaces them.

Identities are people. Every key has an ``owner`` (the principal id policies see). Issuance rules
(``issue``), for an issuer without the ``admin`` role:

- the roles MUST be a subset of the issuer's roles, in the issuer's tenant;
- the owner MUST be a new person: not the issuer itself, not a reserved name (``admin``, ...), not
  an owner who already has (or had) a key, compared case-insensitively;
- the new owner's identity is recorded as created by the issuer (provenance), and
  ``check_approver`` refuses an approver created, directly or transitively, by the proposer.

An admin may issue any key. Identities an admin created before a change was proposed count as
independent people for the two-person rule; ones it created afterwards do not. A key counts as
its owner's only once the owner rotated it: a key issued by the proposer (at creation, or an
admin's rotation) was shown to the proposer and never approves the proposer's change.

The set of keys is a fold of the topic; each verification first reads the topic's end offset
(one indexed query) and folds anything new, so a key created or revoked by another process takes
effect at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import ConfigError, Forbidden, InvalidInput, NotFound, Unauthenticated
from core.events import OutgoingEvent
from core.fold import TopicFold, decoded
from core.ports.eventlog import EventLog
from core.ports.keyfiles import read_secret_file
from core.ports.policy import Principal
from core.roles import ROLES
from domain.envelope import H_ID
from ingest.publish import EventReader, Publisher

TOPIC = "hub.principals"
PEPPER_FILE = "apikeys.pepper"  # under <data_dir>/keys, beside the keyring
BOOTSTRAP_ISSUER = "hub"  # issued_by of keys the hub itself issues (hub init, tests)
RESERVED_OWNERS = frozenset(
    {"admin", "root", "hub", "system", "local-operator", "bootstrap", "anonymous", "operator"}
)
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# A tenant is a name every decision carries (principal.tenant, context.tenant): the same plain
# characters as an owner, so no quote or backslash reaches the embedded engine, whose answer would
# not escape it (it denies such input: a key with such a tenant could never be allowed anything).
TENANT_PATTERN = OWNER_PATTERN
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=36500)  # a key's lifetime or grace: a hundred years at most


def parse_duration(text: str) -> timedelta:
    """``90`` (seconds), ``30s``, ``15m``, ``12h``, ``30d``, ``2w`` as a timedelta, at most
    ``MAX_DURATION`` (a longer one overflowed the date arithmetic: a 500, and for a rotation's
    grace after the replacement key was already issued)."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) <= 0:
        raise InvalidInput(
            f"Duration {text!r} is invalid: give a positive number with an optional unit "
            "s, m, h, d or w (e.g. 30d).",
            code="invalid_duration",
        )
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(
            f"Duration {text!r} is too long: give at most {MAX_DURATION.days}d.",
            code="invalid_duration",
        )
    return timedelta(seconds=seconds)


def load_pepper(path: Path) -> bytes:
    """The server pepper at ``path`` (32 random bytes), created once with mode 0600.

    Two processes starting together agree (``core.ports.keyfiles``); a file that others may
    read is refused.
    """
    pepper = read_secret_file(path, "API key pepper", lambda: secrets.token_bytes(32))
    if len(pepper) != 32:
        raise InvalidInput(
            f"The API key pepper {path} is not 32 bytes: restore it from a backup (without it "
            "no key verifies).",
            code="pepper_invalid",
        )
    return pepper


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One issued key as the fold sees it (never the secret)."""

    key_id: str
    owner: str
    roles: frozenset[str]
    tenant: str = "default"
    issued_by: str = BOOTSTRAP_ISSUER
    issued_by_key: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    description: str = ""
    replaces: str = ""
    salt: str = field(default="", repr=False)
    secret_hmac: str = field(default="", repr=False)
    secret_sha256: str = field(default="", repr=False)
    revoked_at: datetime | None = None
    revoked_by: str = ""
    revoked_reason: str = ""

    @property
    def legacy(self) -> bool:
        """Issued before salted, keyed hashes (verified by plain SHA-256): rotate it."""
        return not self.secret_hmac

    @property
    def principal(self) -> Principal:
        return Principal(self.owner, self.roles, self.tenant, {"key_id": self.key_id})

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: datetime | None = None) -> dict[str, Any]:
        """What listings show: everything but the salt and hashes."""
        now = now or datetime.now(UTC)
        return {
            "key_id": self.key_id,
            "owner": self.owner,
            "roles": sorted(self.roles),
            "tenant": self.tenant,
            "state": self.state(now),
            "legacy": self.legacy,
            "issued_by": self.issued_by,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "replaces": self.replaces or None,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    secret: str
    owner: str = ""

    @property
    def token(self) -> str:
        return f"{self.key_id}:{self.secret}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Who first created an owner's identity (the first key naming that owner)."""

    created_by: str
    by_admin: bool
    at: datetime | None


def _fold_key(s: str) -> str:
    return s.strip().casefold()


def is_admin(principal: Principal) -> bool:
    return "admin" in principal.roles


class ApiKeys:
    def __init__(
        self, log: EventLog, reader: EventReader, publisher: Publisher, pepper: bytes
    ) -> None:
        """``reader`` must not redact (the fold needs the stored key hashes): bootstrap hands
        it one built with ``redact=False``, used by nothing else."""
        if len(pepper) < 16:
            raise InvalidInput("The API key pepper must be at least 16 bytes.")
        if reader.redacts:
            raise ConfigError(
                "ApiKeys needs an EventReader built with redact=False: a redacting reader hides "
                "the key hashes it folds, so no key would ever verify."
            )
        self._log = log
        self._publisher = publisher
        self._pepper = pepper
        self._reader = reader
        self._keys: dict[str, ApiKey] = {}
        self._origins: dict[str, Origin] = {}  # casefolded owner -> first creation
        self._lock = threading.RLock()
        self._fold = TopicFold(
            log,
            TOPIC,
            decoded(
                self._reader,
                lambda ev: self._apply(ev["headers"].get("ce_type"), ev.get("value") or {}),
            ),
            lock=self._lock,
            once_by=H_ID,
        )

    # -- the fold ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        self._fold.catch_up()

    def _apply(self, kind: str | None, v: Mapping[str, Any]) -> None:
        if not v.get("key_id"):  # undecodable: nothing to fold
            return
        if kind == "hub.ApiKeyIssued":
            if v["key_id"] in self._keys:  # a colliding id never replaces the first key
                return
            owner = v.get("owner") or v["principal"]
            key = ApiKey(
                key_id=v["key_id"],
                owner=owner,
                roles=frozenset(v["roles"]),
                tenant=v.get("tenant") or "default",
                issued_by=v.get("issued_by") or BOOTSTRAP_ISSUER,
                issued_by_key=v.get("issued_by_key") or "",
                issued_at=_time(v.get("issued_at")),
                expires_at=_time(v.get("expires_at")),
                description=v.get("description") or "",
                replaces=v.get("replaces") or "",
                salt=v.get("salt") or "",
                secret_hmac=v.get("secret_hmac") or "",
                secret_sha256=v.get("secret_sha256") or "",
            )
            if v.get("issuer_roles"):
                by_admin = "admin" in v["issuer_roles"]
            else:  # legacy events: the hub itself, the old CLI operator, or an admin owner
                by_admin = key.issued_by in (BOOTSTRAP_ISSUER, "local-operator") or any(
                    "admin" in k.roles
                    for k in self._keys.values()
                    if _fold_key(k.owner) == _fold_key(key.issued_by)
                )
            self._keys[key.key_id] = key
            self._origins.setdefault(
                _fold_key(owner), Origin(key.issued_by, by_admin, key.issued_at)
            )
        elif kind == "hub.ApiKeyRevoked":
            old = self._keys.get(v["key_id"])
            at = _time(v.get("revoked_at"))
            # The earliest revocation wins: a rotation's grace schedules one for later, and an
            # admin revoking the key (leaked) during that grace must stop it now, not then.
            if old is not None and (
                old.revoked_at is None or (at is not None and at < old.revoked_at)
            ):
                self._keys[old.key_id] = replace(
                    old,
                    revoked_at=at,
                    revoked_by=v.get("revoked_by") or "",
                    revoked_reason=v.get("reason") or "",
                )

    # -- issuing ----------------------------------------------------------------------------
    def _digest(self, salt: str, secret: str) -> str:
        return hmac.new(self._pepper, bytes.fromhex(salt) + secret.encode(), "sha256").hexdigest()

    def create(
        self,
        roles: list[str],
        *,
        principal: str | None = None,
        owner: str | None = None,
        tenant: str = "default",
        description: str = "",
        issued_by: str = BOOTSTRAP_ISSUER,
        issued_by_key: str = "",
        issuer_roles: frozenset[str] = frozenset({"admin"}),
        expires_at: datetime | None = None,
        replaces: str = "",
    ) -> IssuedKey:
        """Issue a key without issuance rules (the hub itself: ``hub init``, rotation, tests).

        Routes and commands call ``issue``, which checks the issuer's rights first. The secret
        is returned once and never stored.
        """
        unknown = sorted(set(roles) - set(ROLES))
        if not roles or unknown:
            raise InvalidInput(
                f"Unknown role(s) {', '.join(unknown) or '(none given)'}: choose from "
                f"{', '.join(ROLES)}.",
                code="invalid_role",
            )
        with self._lock:
            self._refresh()
            key_id = "hk_" + secrets.token_hex(8)
            while key_id in self._keys:  # pragma: no cover - 64 random bits
                key_id = "hk_" + secrets.token_hex(8)
            who = owner or principal or key_id
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            self._publisher.publish(
                TOPIC,
                [
                    OutgoingEvent(
                        event_type="hub.ApiKeyIssued",
                        value={
                            "key_id": key_id,
                            "secret_sha256": "",
                            "principal": who,
                            "owner": who,
                            "roles": sorted(set(roles)),
                            "tenant": tenant,
                            "description": description,
                            "issued_by": issued_by,
                            "issued_by_key": issued_by_key,
                            "issuer_roles": sorted(issuer_roles),
                            "issued_at": datetime.now(UTC).isoformat(),
                            "expires_at": expires_at.isoformat() if expires_at else None,
                            "salt": salt,
                            "secret_hmac": self._digest(salt, secret),
                            "replaces": replaces,
                        },
                    )
                ],
                producer=issued_by,
                tenant=tenant,  # the key's tenant: its auditor sees who got access to it
            )
            self._refresh()
        return IssuedKey(key_id, secret, who)

    def issue(
        self,
        issuer: Principal,
        roles: list[str],
        *,
        owner: str | None = None,
        tenant: str | None = None,
        description: str = "",
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        """Issue a key on behalf of ``issuer`` under the rules of the module docstring."""
        tenant = tenant or issuer.tenant
        if not TENANT_PATTERN.fullmatch(tenant):  # match() let "acme\n" through ($)
            raise InvalidInput(
                f"Tenant {tenant!r} is not a valid tenant name: use 1-128 ASCII letters, digits "
                "and . _ @ + - (starting with a letter or digit), e.g. acme.",
                code="invalid_tenant",
            )
        if owner is not None:
            owner = owner.strip()
            if not OWNER_PATTERN.fullmatch(owner):
                raise InvalidInput(
                    f"Owner {owner!r} is not a valid person id: use 1-128 ASCII letters, digits "
                    "and . _ @ + - (starting with a letter or digit), e.g. alice@example.com.",
                    code="invalid_owner",
                )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidInput(
                f"expires_at {expires_at.isoformat()} is in the past: give a future time.",
                code="invalid_expiry",
            )
        if not is_admin(issuer):
            self._check_delegation(issuer, set(roles), owner, tenant)
        return self.create(
            roles,
            owner=owner,
            tenant=tenant,
            description=description,
            issued_by=issuer.id,
            issued_by_key=issuer.attributes.get("key_id", ""),
            issuer_roles=issuer.roles,
            expires_at=expires_at,
        )

    def _check_delegation(
        self, issuer: Principal, roles: set[str], owner: str | None, tenant: str
    ) -> None:
        extra = sorted(roles - set(issuer.roles))
        if extra:
            raise Forbidden(
                f"Principal {issuer.id!r} (roles: {', '.join(sorted(issuer.roles))}) may not "
                f"issue a key with role(s) {', '.join(extra)} that it does not hold: ask an "
                "admin.",
                code="role_escalation",
            )
        if tenant != issuer.tenant:
            raise Forbidden(
                f"Principal {issuer.id!r} of tenant {issuer.tenant!r} may not issue a key for "
                f"tenant {tenant!r}: ask an admin.",
                code="tenant_escalation",
            )
        if owner is None:
            return
        folded = _fold_key(owner)
        if folded == _fold_key(issuer.id):
            raise Forbidden(
                f"Principal {issuer.id!r} may not issue a second key to itself: identities are "
                "people, and a second key would let one person act as two (ask an admin to "
                "rotate or add your key).",
                code="self_issue",
            )
        if folded in RESERVED_OWNERS:
            raise Forbidden(
                f"Owner {owner!r} is a reserved identity: only an admin may issue keys to it.",
                code="owner_reserved",
            )
        with self._lock:
            self._refresh()
            if folded in self._origins:
                raise Forbidden(
                    f"Owner {owner!r} is an existing person: only an admin may issue another "
                    "key to an existing owner (choose a new owner id).",
                    code="owner_exists",
                )

    # -- revoking and rotating --------------------------------------------------------------
    def may_manage(self, actor: Principal, key: ApiKey) -> bool:
        """An admin manages every key; others their own keys and, in their own tenant, keys
        whose roles they hold (a tenant's security admin never revokes another tenant's keys)."""
        return (
            is_admin(actor)
            or _fold_key(key.owner) == _fold_key(actor.id)
            or (
                "admin" not in key.roles and key.roles <= actor.roles and key.tenant == actor.tenant
            )
        )

    def get(self, key_id: str) -> ApiKey:
        self._refresh()
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"No API key {key_id!r}: list keys with `hub keys list`.")
        return key

    def revoke(
        self,
        key_id: str,
        *,
        revoked_by: str,
        reason: str = "",
        actor: Principal | None = None,
        at: datetime | None = None,
        cascade: bool = False,
    ) -> list[str]:
        """Revoke ``key_id`` (at ``at``, default now); returns the revoked key ids.

        ``actor`` (when given) must be allowed to manage the key. ``cascade`` also revokes every
        key issued with it, transitively (a leaked key's offspring).
        """
        with self._lock:
            self._refresh()
            key = self._keys.get(key_id)
            now = datetime.now(UTC)
            if key is None or key.state(now) == "revoked":
                raise InvalidInput(f"No active API key {key_id!r}.", code="unknown_key")
            if actor is not None and not self.may_manage(actor, key):
                raise Forbidden(
                    f"Principal {actor.id!r} may not revoke key {key_id} of {key.owner!r} "
                    f"(roles: {', '.join(sorted(key.roles))}): ask an admin.",
                    code="key_not_manageable",
                )
            ids = [key_id]
            if cascade:
                frontier = [key_id]
                while frontier:
                    parent = frontier.pop()
                    for k in self._keys.values():
                        if k.issued_by_key == parent and k.key_id not in ids:
                            if k.state(now) != "revoked":
                                ids.append(k.key_id)
                            frontier.append(k.key_id)
            when = (at or now).isoformat()
            # the revoked keys' tenant when they share one (a cascade across tenants is a
            # hub-wide act, recorded as default): one append, so a cascade is all or nothing
            tenants = {self._keys[kid].tenant for kid in ids}
            self._publisher.publish(
                TOPIC,
                [
                    OutgoingEvent(
                        event_type="hub.ApiKeyRevoked",
                        value={
                            "key_id": kid,
                            "revoked_by": revoked_by,
                            "reason": reason if kid == key_id else f"cascade from {key_id}",
                            "revoked_at": when,
                        },
                    )
                    for kid in ids
                ],
                producer=revoked_by,
                tenant=tenants.pop() if len(tenants) == 1 else "default",
            )
            self._refresh()
            return ids

    def rotate(
        self, actor: Principal, key_id: str, *, grace: timedelta | None = None, reason: str = ""
    ) -> IssuedKey:
        """Issue a replacement (same owner, roles, tenant, lifetime) and revoke ``key_id`` now,
        or after ``grace``. Only the key's owner or an admin may rotate it; only an admin's
        rotation ends later than the old key would have. A key already rotated (in its grace)
        is refused: rotate its replacement."""
        with self._lock:
            self._refresh()
            old = self._keys.get(key_id)
            now = datetime.now(UTC)
            if old is None or old.state(now) != "active":
                raise InvalidInput(
                    f"Key {key_id!r} is not an active key: only active keys can be rotated.",
                    code="unknown_key",
                )
            # Rotation hands over the new secret: only the owner or an admin, never a peer
            # (who would then hold a second person's key).
            if not (is_admin(actor) or _fold_key(old.owner) == _fold_key(actor.id)):
                raise Forbidden(
                    f"Principal {actor.id!r} may not rotate key {key_id} of {old.owner!r}: only "
                    "the key's owner or an admin may (revoke it instead).",
                    code="key_not_manageable",
                )
            # A key in its rotation grace is already replaced: rotating it again would let
            # whoever holds it (the leak the rotation answers) trade it for a key the grace's
            # deadline does not bind.
            if old.revoked_at is not None:
                successors = [k.key_id for k in self._keys.values() if k.replaces == key_id]
                raise InvalidInput(
                    f"Key {key_id!r} was already rotated (to {', '.join(successors) or 'another'}"
                    f" key) and stops at {old.revoked_at.isoformat()}: rotate its replacement "
                    "instead.",
                    code="already_rotated",
                )
            expires_at = (
                now + (old.expires_at - old.issued_at)
                if old.expires_at and old.issued_at
                else old.expires_at
            )
            # An expiry is the issuer's limit, not the holder's: only an admin (who could issue
            # a new key anyway) renews the lifetime; anyone else's replacement ends when the old
            # key would have, or a key's holder could rotate it forever.
            if not is_admin(actor) and old.expires_at is not None and expires_at is not None:
                expires_at = min(expires_at, old.expires_at)
            issued = self.create(
                sorted(old.roles),
                owner=old.owner,
                tenant=old.tenant,
                description=old.description,
                issued_by=actor.id,
                issued_by_key=actor.attributes.get("key_id", ""),
                issuer_roles=actor.roles,
                expires_at=expires_at,
                replaces=key_id,
            )
            self.revoke(
                key_id,
                revoked_by=actor.id,
                reason=reason or f"rotated to {issued.key_id}",
                at=now + grace if grace else now,
            )
            return issued

    # -- verifying --------------------------------------------------------------------------
    def verify(self, key_id: str, secret: str) -> Principal:
        """The principal of a valid key; raises ``Unauthenticated`` (same message for any miss
        of id or secret; a right secret of a revoked or expired key is told so)."""
        self._refresh()  # one indexed end-offset query when nothing changed; sees revocations
        key = self._keys.get(key_id)
        if key is not None and key.secret_hmac:
            digest, expected = self._digest(key.salt, secret), key.secret_hmac
        elif key is not None and key.secret_sha256:
            digest, expected = hashlib.sha256(secret.encode()).hexdigest(), key.secret_sha256
        else:
            digest, expected = hashlib.sha256(secret.encode()).hexdigest(), "0" * 64
        if not hmac.compare_digest(digest, expected) or key is None:
            raise Unauthenticated("Invalid API key or secret.")
        state = key.state(datetime.now(UTC))
        if state == "revoked":
            raise Unauthenticated(f"API key {key_id} has been revoked: ask for a new key.")
        if state == "expired":
            raise Unauthenticated(f"API key {key_id} has expired: ask for a new key.")
        return key.principal

    def active(self) -> list[ApiKey]:
        self._refresh()
        now = datetime.now(UTC)
        return sorted(
            (k for k in self._keys.values() if k.state(now) == "active"), key=lambda k: k.key_id
        )

    def all(self) -> list[ApiKey]:
        self._refresh()
        return sorted(self._keys.values(), key=lambda k: k.key_id)

    def has_admin(self) -> bool:
        return any("admin" in k.roles for k in self.active())

    # -- provenance and the two-person rule -------------------------------------------------
    def origin(self, owner: str) -> Origin | None:
        self._refresh()
        return self._origins.get(_fold_key(owner))

    def check_approver(
        self, proposed_by: str, approver: Principal, proposed_at: Any, what: str
    ) -> None:
        """Raise ``Forbidden`` unless ``approver`` is another person than ``proposed_by``.

        Refused: the same owner (any key, any role, before or after rotation); a key the
        proposer issued (at the identity's creation, or by rotating it as an admin), since its
        secret was shown to the proposer: its owner must rotate it first, which hands a secret
        only the owner has seen; or an approver whose identity the proposer created, directly or
        through identities it created. An admin's creation before the proposal is trusted (the
        admin vouches for a person) once the person holds a key of their own.
        """
        if _fold_key(approver.id) == _fold_key(proposed_by):
            raise Forbidden(
                f"Two-person rule: {approver.id!r} proposed {what} and may not approve it too, "
                "with any of its keys; another person must.",
                code="two_person_rule",
            )
        self._refresh()
        since = _time(proposed_at)
        seen: set[str] = set()
        current = _fold_key(approver.id)
        while current not in seen:
            seen.add(current)
            origin = self._origins.get(current)
            if origin is None:
                break
            creator = _fold_key(origin.created_by)
            trusted = origin.by_admin and (since is None or origin.at is None or origin.at < since)
            if creator == _fold_key(proposed_by) and not trusted:
                raise Forbidden(
                    f"Two-person rule: the identity {approver.id!r} was created by "
                    f"{proposed_by!r}, who proposed {what}; an approver must be an independent "
                    "person.",
                    code="two_person_rule",
                )
            current = creator
        handed = self._handed_by(str(approver.attributes.get("key_id", "")), proposed_by)
        if handed is not None:
            raise Forbidden(
                f"Two-person rule: key {handed} of {approver.id!r} was issued by "
                f"{proposed_by!r} (or with a key {proposed_by!r} issued), who proposed {what}; "
                "its secret was shown to them, so it is not a second person's key: "
                f"{approver.id!r} must rotate their own key first (`hub keys rotate KEY_ID` "
                "with that key), then approve with the new one.",
                code="two_person_rule",
            )

    def _handed_by(self, key_id: str, proposer: str) -> str | None:
        """``key_id`` when its secret went through ``proposer``'s hands: the proposer issued
        it, or issued a key it was issued with (walking ``issued_by_key`` up). A key its owner
        issued (a rotation by the owner) ends the walk: only the owner saw that secret."""
        seen: set[str] = set()
        current = self._keys.get(key_id)
        while current is not None and current.key_id not in seen:
            seen.add(current.key_id)
            if _fold_key(current.issued_by) == _fold_key(proposer):
                return key_id
            if _fold_key(current.issued_by) == _fold_key(current.owner):
                return None
            current = self._keys.get(current.issued_by_key)
        return None
