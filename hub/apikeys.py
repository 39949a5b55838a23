"""API keys: issued and revoked as events on ``hub.principals``, verified in constant time.

A key is ``KEY_ID:SECRET``. The key id (``hk_`` + 16 hex) is public; the secret is 32 random bytes
(URL-safe base64) shown once at creation. Only the SHA-256 of the secret is stored: secrets are
high-entropy random values, so a slow password hash adds nothing (as with GitHub tokens).
The set of keys is a fold of the topic; a verification that misses first catches up with the tail,
so a key created by another process (the CLI) works at once in a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.authz import ROLES
from hub.errors import InvalidInput, Unauthenticated
from hub.events import EventReader, OutgoingEvent, Publisher
from hub.ports.eventlog import EventLog
from hub.ports.policy import Principal
from hub.registry.service import SchemaRegistry

TOPIC = "hub.principals"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    secret_sha256: str
    principal: Principal
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{self.key_id}:{self.secret}"


class ApiKeys:
    def __init__(self, log: EventLog, registry: SchemaRegistry, publisher: Publisher) -> None:
        self._log = log
        self._publisher = publisher
        self._reader = EventReader(log, registry)
        self._keys: dict[str, ApiKey] = {}
        self._next = 0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._lock:
            end = self._log.end_offsets(TOPIC)[0]
            while self._next < end:
                chunk = self._log.read(TOPIC, 0, self._next, 1000)
                if not chunk:
                    break
                for rec in chunk:
                    ev = self._reader.decode(rec)
                    v = ev.get("value") or {}
                    kind = ev["headers"].get("ce_type")
                    if kind == "hub.ApiKeyIssued":
                        expires = v.get("expires_at")
                        self._keys[v["key_id"]] = ApiKey(
                            v["key_id"],
                            v["secret_sha256"],
                            Principal(v["principal"], frozenset(v["roles"]), v["tenant"]),
                            datetime.fromisoformat(expires.replace("Z", "+00:00"))
                            if expires
                            else None,
                        )
                    elif kind == "hub.ApiKeyRevoked":
                        self._keys.pop(v["key_id"], None)
                self._next = chunk[-1].offset + 1

    def create(
        self,
        roles: list[str],
        *,
        principal: str | None = None,
        tenant: str = "default",
        description: str = "",
        issued_by: str = "local-operator",
    ) -> IssuedKey:
        """Issue a key; the secret is returned once and never stored."""
        unknown = sorted(set(roles) - set(ROLES))
        if not roles or unknown:
            raise InvalidInput(
                f"Unknown role(s) {', '.join(unknown) or '(none given)'}: choose from "
                f"{', '.join(ROLES)}.",
                code="invalid_role",
            )
        key_id = "hk_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC).isoformat()
        self._publisher.publish(
            TOPIC,
            [
                OutgoingEvent(
                    event_type="hub.ApiKeyIssued",
                    value={
                        "key_id": key_id,
                        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                        "principal": principal or key_id,
                        "roles": sorted(set(roles)),
                        "tenant": tenant,
                        "description": description,
                        "issued_by": issued_by,
                        "issued_at": now,
                    },
                )
            ],
            producer=issued_by,
        )
        return IssuedKey(key_id, secret)

    def revoke(self, key_id: str, *, revoked_by: str, reason: str = "") -> None:
        self._refresh()
        if key_id not in self._keys:
            raise InvalidInput(f"No active API key {key_id!r}.", code="unknown_key")
        self._publisher.publish(
            TOPIC,
            [
                OutgoingEvent(
                    event_type="hub.ApiKeyRevoked",
                    value={
                        "key_id": key_id,
                        "revoked_by": revoked_by,
                        "reason": reason,
                        "revoked_at": datetime.now(UTC).isoformat(),
                    },
                )
            ],
            producer=revoked_by,
        )
        self._refresh()

    def verify(self, key_id: str, secret: str) -> Principal:
        """The principal of a valid key; raises ``Unauthenticated`` (same message for any miss)."""
        self._refresh()  # one indexed end-offset query when nothing changed; sees revocations
        key = self._keys.get(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        expected = key.secret_sha256 if key else "0" * 64
        valid = hmac.compare_digest(digest, expected) and key is not None
        if not valid or key is None:
            raise Unauthenticated("Invalid API key or secret.")
        if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            raise Unauthenticated(f"API key {key_id} has expired.")
        return key.principal

    def active(self) -> list[ApiKey]:
        self._refresh()
        return sorted(self._keys.values(), key=lambda k: k.key_id)
