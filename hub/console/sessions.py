"""Console sessions: an opaque cookie naming a server-side session, with expiry and a CSRF token.

Contract:
- The cookie value is 32 random bytes (URL-safe base64); the store keeps only its SHA-256, so a
  copy of the store (or of a log line) does not log anybody in.
- A session holds the API key id it was opened with, never the secret. Every request re-reads
  the key (``ApiKeys.get``): a revoked or expired key ends its sessions at the next request.
- A session expires ``idle_s`` after its last use and ``absolute_s`` after login, whichever is
  first; ``close`` ends it at once (logout).
- At most ``max_per_key`` sessions per key (its least recently used one ends when it opens
  another) and ``max_sessions`` in all (then the least recently used ends).
- ``csrf`` is a second random token, sent in the page and required on every state-changing
  console request (header ``X-CSRF-Token``): a cross-site form cannot read it.

This store is in memory, per process: the embedded footprint is one process. The distributed
footprint puts the same records in Redis (``hub.console.redis_sessions``,
``HUB_SESSION_STORE=redis``); one contract test runs on both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "hub_session"
LOGIN_COOKIE = "hub_login_csrf"


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str, b: str) -> bool:
    """Constant-time equality of two tokens (empty never matches)."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Session:
    key_id: str
    owner: str
    csrf: str
    created: float
    last_used: float


class SessionStore:
    """Sessions by the SHA-256 of their cookie (see the module docstring)."""

    def __init__(
        self,
        idle_s: float = 30 * 60,
        absolute_s: float = 12 * 3600,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = 10_000,
        max_per_key: int = 32,
    ) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._clock = clock
        self._max = max_sessions
        self._max_per_key = max_per_key
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, key_id: str, owner: str) -> tuple[str, Session]:
        """A new session for ``key_id``: (cookie value, session)."""
        token, now = new_token(), self._clock()
        session = Session(key_id, owner, new_token(), now, now)
        with self._lock:
            self._expire(now)
            # A key's own sessions make room first: one key logging in over and over (any valid
            # key can) must not push everybody else's sessions out of a full store.
            own = [d for d, s in self._sessions.items() if s.key_id == key_id]
            if len(own) >= self._max_per_key:
                del self._sessions[min(own, key=lambda d: self._sessions[d].last_used)]
            if len(self._sessions) >= self._max:  # drop the least recently used
                oldest = min(self._sessions, key=lambda d: self._sessions[d].last_used)
                del self._sessions[oldest]
            self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of a cookie value (and mark it used), or None."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            digest = _digest(token)
            session = self._sessions.get(digest)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[digest]
                return None
            session.last_used = now
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.last_used >= self.idle_s or now - s.created >= self.absolute_s

    def _expire(self, now: float) -> None:
        for digest in [d for d, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[digest]
