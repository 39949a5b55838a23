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

An admin may issue any key. A key with a role that may approve is never issued to its owner by
anyone else: ``issue`` returns an enrolment token instead, and an admin's rotation of another
person's such key is a reset (``governance.enrolment``; the rules in docs/trust-model.md, which
``check_approver`` enforces). Keys from before enrolment keep the earlier provenance rules:
identities an admin created before a change was proposed count as independent people; a key
issued by the proposer never approves the proposer's change.

The set of keys is a fold of the topic; each verification first reads the topic's end offset
(one indexed query) and folds anything new, so a key created or revoked by another process takes
effect at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core import clock
from core.errors import ConfigError, Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from core.events import OutgoingEvent
from core.fold import SharedCatchUps, TopicFold, decoded
from core.ports.eventlog import EventLog
from core.ports.keyfiles import read_secret_file
from core.ports.policy import Decision, Principal
from domain.envelope import H_ID
from governance import enrolment as enr
from governance.enrolment import (
    BOOTSTRAP_ISSUER,
    LIVE,
    OWNER_PATTERN,
    TENANT_PATTERN,
    TOPIC,
    WITHDRAWN_REASON,
    Enrolment,
    EnrolmentCommands,
    EnrolmentTicket,
    is_admin,
)
from governance.enrolment import IssuedKey as IssuedKey  # re-exported: callers import it here
from governance.enrolment import check_roles as _check_roles
from governance.enrolment import fold_owner as _fold_key
from governance.enrolment import parse_time as _time
from governance.enrolment import whose as _whose
from ingest.publish import EventReader, Publisher

log = logging.getLogger("hub.governance.apikeys")

PEPPER_FILE = "apikeys.pepper"  # under <data_dir>/keys, beside the keyring
RESERVED_OWNERS = frozenset(
    {"admin", "root", "hub", "system", "local-operator", "bootstrap", "anonymous", "operator"}
)
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
    issuance: str = enr.LEGACY
    enrolment_id: str = ""

    @property
    def counts_for_approval(self) -> bool:
        """Whether the key is its owner's own (``governance.enrolment``): enrolled by the owner,
        the hub's bootstrap key, or legacy-issued (before enrolment; flagged until re-enrolled).
        A key another person issued or reset never approves."""
        return self.issuance != enr.ISSUED_BY_OTHER

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
        now = now or clock.now()
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
            "issuance": self.issuance,
            # an approver whose key someone else issued (before enrolment existed): re-enrol them
            "legacy_issued": enr.grants_approval(self.roles)
            and self.issuance in (enr.LEGACY, enr.ISSUED_BY_OTHER),
        }


@dataclass(frozen=True, slots=True)
class Origin:
    """Who first created an owner's identity (the first key naming that owner)."""

    created_by: str
    by_admin: bool
    at: datetime | None


# Told of every revocation, after its append: (revoked key ids, their owners casefolded, by,
# reason). The pending changes of other stores are withdrawn through it (``on_revoked``).
RevokedHook = Callable[[Sequence[str], frozenset[str], str, str], object]
# What a person needed to make or approve a change: (action, resource, decision context),
# decided again against the policy in force when the change is approved (``use_policy``).
Need = tuple[str, str, Mapping[str, Any] | None]
Decide = Callable[[Principal, str, str, Mapping[str, Any] | None], Decision]


class ApiKeys(EnrolmentCommands):
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
        self._replaced_by: dict[str, str] = {}  # key id -> its first replacement (rotation)
        self._voided: dict[str, tuple[str, str]] = {}  # key id -> why never active (code, why)
        self._stopped: set[str] = set()  # keys whose revocation, folded, was effective at once
        self._enrolments: dict[str, Enrolment] = {}
        # The bootstrap window (enrolment without a second approver while the two-person rule
        # is on) closes for good at the first approved enrolment or once three people hold
        # approver keys: ``governance.enrolment`` and docs/trust-model.md.
        self._bootstrap_closed = False
        self._two_person_on: Callable[[], bool] = lambda: False
        self._on_revoked: list[RevokedHook] = []
        self._decide: Decide | None = None
        self._lock = threading.RLock()
        self._catch_ups = SharedCatchUps()  # _refresh() shares catch-ups
        self._fold = TopicFold(
            log,
            TOPIC,
            decoded(
                self._reader,
                lambda ev: self._apply(
                    ev["headers"].get("ce_type"), ev.get("value") or {}, ev.get("timestamp_ms")
                ),
            ),
            lock=self._lock,
            once_by=H_ID,
        )

    def use_two_person(self, on: Callable[[], bool]) -> None:
        """Tell the keys whether the two-person rule is on (the composition root: the active
        policy bundle lists any two-person resource). Enrolment then needs a second approver."""
        self._two_person_on = on

    def use_policy(self, decide: Decide) -> None:
        """Decide permissions with ``decide`` (the composition root: the policy engine on the
        bundle in force). ``check_proposer`` and ``check_permitted`` then ask it again at
        approval, so a permission the policy took away since the proposal (a role's action, an
        expired grant) no longer lets a pending change count. Without it, roles are compared."""
        self._decide = decide

    def _denied(
        self, principal: Principal, needs: Sequence[Need], decide: Decide | None = None
    ) -> str | None:
        """Why the policy in force (or ``decide``) refuses ``principal`` one of ``needs``; None:
        all allowed (or no engine to ask). An engine that fails raises: the approval fails
        closed."""
        decide = decide or self._decide
        if decide is None:
            return None
        for action, resource, context in needs:
            d = decide(principal, action, resource, context)
            if not d.allow:
                return f"{action} on {resource!r} denied: {d.reason} (policy {d.policy_version})"
        return None

    def check_permitted(self, principal: Principal, needs: Sequence[Need], what: str) -> None:
        """Raise ``Forbidden`` (``approver_not_permitted``) unless the policy in force allows
        ``principal`` every one of ``needs`` now: an approval is decided against the policy
        that holds when it is applied, not the one its caller's engine last loaded."""
        why = self._denied(principal, needs)
        if why is not None:
            raise Forbidden(
                f"{principal.id!r} may not approve {what} under the policy in force: {why}.",
                code="approver_not_permitted",
            )

    def on_revoked(self, hook: RevokedHook) -> None:
        """Call ``hook`` after each revocation (the composition root: the policy and config
        change stores withdraw the pending changes whose proposer may no longer propose
        them). Called outside this keyring's lock, since a hook takes its store's lock, whose
        approvals take this one; a hook that fails is logged, and the approval check
        (``check_proposer``) still refuses what it did not withdraw."""
        self._on_revoked.append(hook)

    def _after_revoked(self, ids: Sequence[str], by: str, reason: str) -> None:
        """Withdraw what the revoked keys' owners proposed and may no longer propose: their
        live enrolments here, the pending changes of other stores through the hooks."""
        owners = frozenset(_fold_key(self._keys[k].owner) for k in ids if k in self._keys)
        why = f"key {', '.join(ids)} revoked by {by}" + (f" ({reason})" if reason else "")
        try:
            self._withdraw_enrolments(owners, by, why)
        except Exception:  # the approval check still refuses them (check_proposer)
            log.exception("withdrawing the enrolments of revoked keys %s failed", ids)
        for hook in list(self._on_revoked):
            try:
                hook(ids, owners, by, why)
            except Exception:
                log.exception("withdrawing the pending changes of revoked keys %s failed", ids)

    # -- the fold ---------------------------------------------------------------------------
    def ticket(self) -> int:
        """Taken when a request arrives, for a ``verify`` made later or in another thread:
        that verify is served by a catch-up begun after this call (``SharedCatchUps``)."""
        return self._catch_ups.ticket()

    def _refresh(self, ticket: int | None = None) -> None:
        """Fold what was appended to the keys topic since the last catch-up (or since
        ``ticket`` was taken).

        Concurrent callers share catch-ups (``core.fold.SharedCatchUps``): a key revoked by
        another instance before the request arrived is seen; only the round trip (a ListOffsets
        on Kafka, per request verifying a key) is saved. A caller already holding the lock (a
        writer after its append) never finds one: none can run while it holds the lock."""
        if ticket is None:
            ticket = self._catch_ups.ticket()  # taken on arrival, before the wait for the lock
        with self._lock:
            self._catch_ups.run(ticket, self._fold.catch_up)

    def _apply(
        self, kind: str | None, v: Mapping[str, Any], appended_ms: int | None = None
    ) -> None:
        if not v.get("key_id"):  # undecodable: nothing to fold
            return
        if kind in enr.KINDS:
            self._apply_enrolment(kind, v)
        elif kind == "hub.ApiKeyIssued":
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
                enrolment_id=v.get("enrolment_id") or "",
            )
            key = replace(key, issuance=self._issuance(key, v.get("issuance") or ""))
            void = self._void_issuance(key)
            if void is not None:  # folded revoked from the start, on every instance alike
                self._voided[key.key_id] = void
                key = replace(
                    key,
                    revoked_at=key.issued_at or clock.now(),
                    revoked_by="hub",
                    revoked_reason=void[1],
                )
            elif key.replaces:
                self._replaced_by.setdefault(key.replaces, key.key_id)
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
            # only an approver key can close the window: no scan per key of other roles
            if (
                not self._bootstrap_closed
                and enr.grants_approval(key.roles)
                and len(self._approver_owners()) >= 3
            ):
                self._bootstrap_closed = True
        elif kind == "hub.ApiKeyRevoked":
            old = self._keys.get(v["key_id"])
            at = _time(v.get("revoked_at"))
            # Effective when appended (not a rotation's grace): whatever is appended after it
            # in the log was decided without the key (``_void_issuance``).
            if (
                old is not None
                and at is not None
                and appended_ms is not None
                and int(at.timestamp() * 1000) <= appended_ms
            ):
                self._stopped.add(old.key_id)
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

    def _void_issuance(self, key: ApiKey) -> tuple[str, str] | None:
        """(code, reason) when a key the log holds must never be active, decided in log order
        so every instance folds it alike; None for a good key.

        Two processes check a key change each against what they folded, and append: both
        checks may pass (``docs/benchmarks/s26-redteam-attacker26.md``). Refused here: a second
        replacement of one key (two rotations decided side by side: the first appended stands)
        and a key issued with a key whose revocation, effective at once (not a rotation's grace),
        the log holds before it (an issuance decided beside a revocation: a cascade computed
        before the key existed never reached it), or dated at or before the key's issue."""
        parent = self._keys.get(key.issued_by_key) if key.issued_by_key else None
        if (
            parent is not None
            and parent.revoked_at is not None
            and (
                parent.key_id in self._stopped
                or (key.issued_at is not None and parent.revoked_at <= key.issued_at)
            )
        ):
            return (
                "key_revoked",
                f"issued with key {parent.key_id}, whose revocation "
                f"({parent.revoked_at.isoformat()}) the log holds before it",
            )
        earlier = self._replaced_by.get(key.replaces) if key.replaces else None
        if earlier is not None and earlier != key.key_id:
            return (
                "already_rotated",
                f"a second replacement of key {key.replaces}, already rotated to {earlier} "
                "(two rotations decided at once)",
            )
        return None

    def _issuance(self, key: ApiKey, claimed: str) -> str:
        """The issuance a key's event claims, if its history bears it out; else ``issued``
        (never counts). An enrolled key is its enrolment's redemption or its owner's rotation
        of an enrolled key; a legacy one predates enrolment or is its owner's rotation of one."""
        if not claimed:  # written before enrolment existed: legacy-issued, listed as such
            return enr.LEGACY
        mine = _fold_key(key.issued_by) == _fold_key(key.owner)
        old = self._keys.get(key.replaces) if key.replaces else None
        rotated_own = old is not None and mine and _fold_key(old.owner) == _fold_key(key.owner)
        if claimed == enr.ENROLLED:
            if key.replaces:
                ok = rotated_own and old is not None and old.issuance == enr.ENROLLED
            else:
                e = self._enrolments.get(key.enrolment_id)
                ok = (
                    e is not None
                    and e.new_key_id == key.key_id
                    and _fold_key(e.owner) == _fold_key(key.owner)
                    and key.roles == e.roles
                    and key.tenant == e.tenant
                )
            return enr.ENROLLED if ok else enr.ISSUED_BY_OTHER
        if claimed == enr.BOOTSTRAP:
            ok = key.issued_by == BOOTSTRAP_ISSUER or (
                rotated_own and old is not None and old.issuance == enr.BOOTSTRAP
            )
            return enr.BOOTSTRAP if ok else enr.ISSUED_BY_OTHER
        if claimed == enr.LEGACY:  # written by this code: an owner's rotation of a legacy key
            ok = rotated_own and old is not None and old.issuance == enr.LEGACY
            return enr.LEGACY if ok else enr.ISSUED_BY_OTHER
        return enr.ISSUED_BY_OTHER

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (e.g. ``console-sessions``), derived from the pepper:
        a secret every hub process holds and no store (the log, Redis) ever sees. A salt per
        purpose (HMAC over ``hub-derived:`` and the name) keeps it apart from the key digests."""
        return hmac.new(self._pepper, b"hub-derived:" + purpose.encode(), "sha256").digest()

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
        issuance: str | None = None,
        enrolment_id: str = "",
    ) -> IssuedKey:
        """Issue a key without issuance rules (the hub itself: ``hub init``, rotation, tests).

        Routes and commands call ``issue``, which checks the issuer's rights first. The secret
        is returned once and never stored. ``issuance`` defaults to ``bootstrap`` for the hub's
        own keys and ``issued`` (never approves) for keys another person issues.
        """
        _check_roles(roles)
        with self._lock:
            self._refresh()
            self.check_acting_key(issued_by_key, "issued nothing")
            key_id = self._new_id("hk_")
            who = owner or principal or key_id
            secret = secrets.token_urlsafe(32)
            if issuance is None:
                issuance = enr.BOOTSTRAP if issued_by == BOOTSTRAP_ISSUER else enr.ISSUED_BY_OTHER
            event = self._key_event(
                key_id,
                secret,
                who,
                roles,
                tenant=tenant,
                description=description,
                issued_by=issued_by,
                issued_by_key=issued_by_key,
                issuer_roles=issuer_roles,
                expires_at=expires_at,
                replaces=replaces,
                issuance=issuance,
                enrolment_id=enrolment_id,
            )
            self._publisher.publish(
                TOPIC,
                [event],
                producer=issued_by,
                tenant=tenant,  # the key's tenant: its auditor sees who got access to it
            )
            self._refresh()
            void = self._voided.get(key_id)
            if void is not None:
                code, reason = void
                error = Unauthenticated if code == "key_revoked" else InvalidInput
                raise error(
                    f"No key was issued: another request changed the keys while this one was "
                    f"decided (key {key_id}, {reason}); it is recorded revoked. Check the keys "
                    "(`hub keys list --all`) and try again if still needed.",
                    code=code,
                )
        return IssuedKey(key_id, secret, who)

    def check_acting_key(self, key_id: str, outcome: str) -> None:
        """Raise ``Unauthenticated`` (``key_revoked``) when ``key_id``, the key a request acts
        with, is revoked or expired now (decided on the keys folded under the caller's lock).

        A request's key is verified when the request arrives, and its route runs once the body
        is read (up to ``HUB_REQUEST_BODY_TIMEOUT_S`` and more for a large body). A key issued
        or approved with a key revoked meanwhile outlived the revocation: a leaked key revoked
        with ``cascade`` still issued a key the cascade, computed before it existed, never
        reached. ``""`` or a key this keyring never knew (a principal the hub built in-process)
        is not refused here."""
        key = self._keys.get(key_id) if key_id else None
        if key is None:
            return
        state = key.state(clock.now())
        if state != "active":
            raise Unauthenticated(
                f"API key {key_id} is {state}: it was {state} while this request was in "
                f"flight, so the request {outcome}. Ask for a new key.",
                code="key_revoked",
            )

    def _new_id(self, prefix: str) -> str:
        new = prefix + secrets.token_hex(8)
        while new in self._keys or new in self._enrolments:  # pragma: no cover - 64 bits
            new = prefix + secrets.token_hex(8)
        return new

    def _key_event(
        self,
        key_id: str,
        secret: str,
        owner: str,
        roles: list[str] | frozenset[str],
        *,
        tenant: str,
        description: str,
        issued_by: str,
        issued_by_key: str,
        issuer_roles: frozenset[str],
        expires_at: datetime | None,
        replaces: str,
        issuance: str,
        enrolment_id: str,
    ) -> OutgoingEvent:
        salt = secrets.token_hex(16)
        return OutgoingEvent(
            event_type="hub.ApiKeyIssued",
            value={
                "key_id": key_id,
                "secret_sha256": "",
                "principal": owner,
                "owner": owner,
                "roles": sorted(set(roles)),
                "tenant": tenant,
                "description": description,
                "issued_by": issued_by,
                "issued_by_key": issued_by_key,
                "issuer_roles": sorted(issuer_roles),
                "issued_at": clock.now().isoformat(),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "salt": salt,
                "secret_hmac": self._digest(salt, secret),
                "replaces": replaces,
                "issuance": issuance,
                "enrolment_id": enrolment_id,
            },
        )

    def issue(
        self,
        issuer: Principal,
        roles: list[str],
        *,
        owner: str | None = None,
        tenant: str | None = None,
        description: str = "",
        expires_at: datetime | None = None,
    ) -> IssuedKey | EnrolmentTicket:
        """Issue a key on behalf of ``issuer`` under the rules of the module docstring; for a
        role that may approve, an enrolment token instead (``request_enrolment``)."""
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
        if expires_at is not None and expires_at <= clock.now():
            raise InvalidInput(
                f"expires_at {expires_at.isoformat()} is in the past: give a future time.",
                code="invalid_expiry",
            )
        if enr.grants_approval(roles):
            return self.request_enrolment(
                issuer,
                roles,
                owner=owner,
                tenant=tenant,
                description=description,
                key_expires_at=expires_at,
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
            enrolling = any(_fold_key(e.owner) == folded for e in self._enrolments.values())
            if folded in self._origins or enrolling:
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
        key issued with it, transitively (a leaked key's offspring). What the revoked keys'
        owners proposed and may no longer propose is withdrawn (``on_revoked``).
        """
        ids = self._revoke(
            key_id, revoked_by=revoked_by, reason=reason, actor=actor, at=at, cascade=cascade
        )
        self._after_revoked(ids, revoked_by, reason)
        return ids

    def _revoke(
        self,
        key_id: str,
        *,
        revoked_by: str,
        reason: str,
        actor: Principal | None,
        at: datetime | None,
        cascade: bool,
    ) -> list[str]:
        with self._lock:
            self._refresh()
            key = self._keys.get(key_id)
            now = clock.now()
            if key is None or key.state(now) == "revoked":
                raise InvalidInput(f"No active API key {key_id!r}.", code="unknown_key")
            if actor is not None and not self.may_manage(actor, key):
                raise Forbidden(
                    f"Principal {actor.id!r} may not revoke key {key_id}{_whose(actor, key)}: "
                    "ask an admin.",
                    code="key_not_manageable",
                )
            ids = [key_id]
            if cascade:
                frontier = [key_id]
                while frontier:
                    parent = frontier.pop()
                    for k in self._keys.values():
                        if (
                            k.issued_by_key == parent or self._enrolled_with(k, parent)
                        ) and k.key_id not in ids:
                            if k.state(now) != "revoked":
                                ids.append(k.key_id)
                            frontier.append(k.key_id)
            when = (at or now).isoformat()
            # a cascade also ends the live enrolments requested with a revoked key
            ended = [
                self._ended(e.enrolment_id, f"cascade from {key_id}", revoked_by, now)
                for e in self._enrolments.values()
                if cascade and e.requested_by_key in ids and e.state(now) in LIVE
            ]
            if at is None or at <= now:  # the enrolments it withdraws, in the same append
                ended += self._withdrawn_with(
                    frozenset(ids), {e.value["key_id"] for e in ended}, revoked_by, reason, now
                )
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
                ]
                + ended,
                producer=revoked_by,
                tenant=tenants.pop() if len(tenants) == 1 else "default",
            )
            self._refresh()
            return ids

    def _withdrawn_with(
        self, ids: frozenset[str], ending: set[Any], by: str, reason: str, now: datetime
    ) -> list[OutgoingEvent]:
        """The ``EnrolmentExpired`` ("withdrawn: ...") events of the live enrolments whose
        requester holds no key that may request them once ``ids`` are revoked: appended with
        the revocation, so no reader sees the key revoked and its owner's enrolment still
        live (before, they were written just after, and a crash in between left them live)."""
        owners = {_fold_key(self._keys[k].owner) for k in ids if k in self._keys}
        why = f"key {', '.join(sorted(ids))} revoked by {by}" + (f" ({reason})" if reason else "")
        out = []
        for e in self._enrolments.values():
            if (
                e.enrolment_id in ending
                or _fold_key(e.requested_by) not in owners
                or e.state(now) not in LIVE
            ):
                continue
            try:
                self.check_proposer(
                    e.requested_by,
                    e.requested_by_key,
                    e.enrolment_id,
                    [("keys.create", "/v1/keys", None)],
                    excluding=ids,
                )
            except Conflict:
                lost = f"{WITHDRAWN_REASON} requester {e.requested_by!r} lost the right"
                out.append(self._ended(e.enrolment_id, f"{lost}: {why}", by, now))
        return out

    def rotate(
        self, actor: Principal, key_id: str, *, grace: timedelta | None = None, reason: str = ""
    ) -> IssuedKey | EnrolmentTicket:
        """Issue a replacement (same owner, roles, tenant, lifetime) and revoke ``key_id`` now,
        or after ``grace``. Only the key's owner or an admin may rotate it; only an admin's
        rotation ends later than the old key would have. A key already rotated (in its grace)
        is refused: rotate its replacement. An admin's rotation of another person's key with
        approval rights is a reset (``reset``): the owner enrols again."""
        with self._lock:
            self._refresh()
            old = self._keys.get(key_id)
            is_reset = (
                old is not None
                and enr.grants_approval(old.roles)
                and _fold_key(old.owner) != _fold_key(actor.id)
            )
        if is_reset:  # outside the lock: a reset tells the revocation hooks (``on_revoked``)
            return self.reset(actor, key_id, reason=reason)
        with self._lock:
            self._refresh()
            old = self._keys.get(key_id)
            now = clock.now()
            if old is None or old.state(now) != "active":
                raise InvalidInput(
                    f"Key {key_id!r} is not an active key: only active keys can be rotated.",
                    code="unknown_key",
                )
            # Rotation hands over the new secret: only the owner or an admin, never a peer
            # (who would then hold a second person's key).
            if not (is_admin(actor) or _fold_key(old.owner) == _fold_key(actor.id)):
                raise Forbidden(
                    f"Principal {actor.id!r} may not rotate key {key_id}{_whose(actor, old)}: "
                    "only the key's owner or an admin may (revoke it instead).",
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
            own = _fold_key(old.owner) == _fold_key(actor.id)
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
                # the owner's own rotation keeps what the key was (enrolled stays enrolled); a
                # rotation by anyone else hands them the secret: issued, never approves
                issuance=old.issuance if own else enr.ISSUED_BY_OTHER,
                enrolment_id=old.enrolment_id if own else "",
            )
            why = reason or f"rotated to {issued.key_id}"
            self._revoke(
                key_id,
                revoked_by=actor.id,
                reason=why,
                actor=None,
                at=now + grace if grace else now,
                cascade=False,
            )
        self._after_revoked([key_id], actor.id, why)  # the successor still proposes: usually none
        return issued

    # -- verifying --------------------------------------------------------------------------
    def verify(self, key_id: str, secret: str, *, ticket: int | None = None) -> Principal:
        """The principal of a valid key; raises ``Unauthenticated`` (same message for any miss
        of id or secret; a right secret of a revoked or expired key is told so). ``ticket``
        (``ticket()`` taken when the request arrived): sees every change made before then."""
        self._refresh(ticket)  # one indexed end-offset query when nothing changed; sees revocations
        key = self._keys.get(key_id)
        if key is not None and key.secret_hmac:
            digest, expected = self._digest(key.salt, secret), key.secret_hmac
        elif key is not None and key.secret_sha256:
            digest, expected = hashlib.sha256(secret.encode()).hexdigest(), key.secret_sha256
        else:
            digest, expected = hashlib.sha256(secret.encode()).hexdigest(), "0" * 64
        if not hmac.compare_digest(digest, expected) or key is None:
            raise Unauthenticated("Invalid API key or secret.")
        state = key.state(clock.now())
        if state == "revoked":
            raise Unauthenticated(f"API key {key_id} has been revoked: ask for a new key.")
        if state == "expired":
            raise Unauthenticated(f"API key {key_id} has expired: ask for a new key.")
        return key.principal

    def active(self) -> list[ApiKey]:
        self._refresh()
        now = clock.now()
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

        Refused (``key_revoked``): an approver whose key is no longer active (revoked while
        the approval's request was in flight: ``check_acting_key``). Refused: the same owner
        (any key, any role, before or after rotation); a key the
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
        # the approving key, decided again now: a key revoked while the approval's request
        # was in flight does not count as the second person
        self.check_acting_key(str(approver.attributes.get("key_id", "")), "approved nothing")
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
        self._check_enrolled(proposed_by, approver, since, what)
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

    def check_proposer(
        self,
        proposed_by: str,
        proposed_key: str,
        what: str,
        needs: Sequence[Need] = (),
        decide: Decide | None = None,
        excluding: frozenset[str] = frozenset(),
    ) -> None:
        """Raise ``Conflict`` (``proposer_revoked``) unless the proposer of ``what`` still holds,
        now, an unrevoked, unexpired key that may propose it: the proposing key itself, or
        another key of the same owner in the same tenant holding at least its roles (a
        rotation's successor, a second key) or ``admin``. A pending change is the proposer's
        act that an approval completes: once an admin revoked the proposer's right, the half
        they left behind must not become a change.

        Without the proposing key (events from before it was recorded, a principal the hub
        built in-process) the roles and tenant it proposed with are unknown: any active key of
        the owner counts. An owner the keyring never knew had no key that could be revoked
        (an in-process principal): not refused here.

        With ``needs`` (what proposing took: the action and the resource's write action) and a
        policy engine (``use_policy``), such a key counts only while the policy in force still
        allows it every need: ``proposer_not_permitted`` otherwise. Comparing roles alone let a
        change count after the policy took the permission away from the proposer's role.
        ``decide``: decide the needs with it instead of the policy in force (a bundle about to
        be activated: ``governance.changes`` withdraws in the activation's own append).
        ``excluding``: key ids to count as revoked (a revocation about to be appended, which
        withdraws the enrolments it ends in its own append).
        """
        self._refresh()
        now = clock.now()
        owner = _fold_key(proposed_by)
        owned = [
            k
            for k in self._keys.values()
            if _fold_key(k.owner) == owner and k.key_id not in excluding
        ]
        key = self._keys.get(proposed_key) if proposed_key else None
        if key is not None and _fold_key(key.owner) != owner:
            key = None  # not the proposer's: decide from the owner's keys
        if key is None and not owned:
            return
        if key is not None:
            proposing = key
            alive = [
                k
                for k in owned
                if k.state(now) == "active"
                and _fold_key(k.tenant) == _fold_key(proposing.tenant)
                and (proposing.roles <= k.roles or "admin" in k.roles)
            ]
            need = (
                f"key {proposing.key_id} (roles {', '.join(sorted(proposing.roles))}, tenant "
                f"{proposing.tenant!r}) or another key of theirs with those roles in that tenant"
            )
        else:
            alive = [k for k in owned if k.state(now) == "active"]
            need = "any active key (the proposal does not say which key proposed it)"
        if alive and needs and (decide or self._decide) is not None:
            denials = []
            for k in alive:
                why = self._denied(k.principal, needs, decide)
                if why is None:
                    return
                denials.append(f"key {k.key_id}: {why}")
            raise Conflict(
                f"The proposer of {what}, {proposed_by!r}, may no longer propose it under the "
                f"policy in force ({'; '.join(denials)}), so it no longer counts: a proposal "
                "stands only while its proposer still may make it. Someone who may must "
                "propose it again.",
                code="proposer_not_permitted",
            )
        if alive:
            return
        raise Conflict(
            f"The proposer of {what}, {proposed_by!r}, holds no unrevoked key that may propose "
            f"it now (needed: {need}), so it no longer counts: a proposal stands only while its "
            "proposer still may make it. Someone who may must propose it again.",
            code="proposer_revoked",
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
