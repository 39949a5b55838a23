"""Console sessions in Redis (the distributed footprint): the contract of
``hub.console.sessions.SessionStore``, shared by every hub process behind a load balancer.

Each session is one key ``hub:session:<SHA-256 of the cookie>`` holding the session as JSON
(``{"session": "<JSON>", "seal": "<HMAC>"}``), with a Redis expiry (``PX``) of the idle timeout
capped by what is left of the absolute one; a ``get`` checks both limits again (clock skew
between hubs), refreshes ``last_used`` and the expiry only while the key exists (``SET ... XX``:
a close by another process meanwhile stays closed, and this ``get`` answers None). Times are
wall-clock seconds (``time.time``), since processes share them.

The seal is HMAC-SHA256, under a key the hub derives from its API key pepper
(``ApiKeys.derived_key``: every hub process has it, Redis never sees it), over the Redis key and
the session's JSON. Redis is a cache others may reach (the client sends no password): a record
written there without the hub's key, edited (another ``key_id``), or copied under another
cookie's digest is no session, so writing to Redis does not log anybody in.

The client is a few lines of RESP over a socket (SET, GET, DEL, SCAN): no client library is
needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import ConfigError
from hub.console.sessions import Session, _digest, new_token
from hub.logs import redact_url

PREFIX = "hub:session:"
log = logging.getLogger("hub.console.sessions")


class Resp:
    """A minimal Redis client: one connection, one command at a time (a lock)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise ConfigError(
                f"{redact_url(url)!r} is not a Redis URL: use redis://[[USER]:PASSWORD@]HOST:PORT/DB."
            )
        self.host, self.port = parts.hostname, parts.port or 6379
        db = (parts.path or "/0").lstrip("/") or "0"
        if not db.isdigit():
            raise ConfigError(
                f"The Redis URL {redact_url(url)!r} names database {db!r}: use a number (e.g. /0)."
            )
        self.db = int(db)
        # AUTH on connect: a Redis that requires a password (requirepass, or an ACL user) must
        # be usable; without it, only an open Redis would do.
        self._auth = [
            a for a in (unquote(parts.username or ""), unquote(parts.password or "")) if a
        ]
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), self.timeout_s)
            except OSError as exc:
                raise ConfigError(
                    f"Redis at {self.host}:{self.port} is not reachable ({exc}): start it "
                    "(infra/redis.sh start) or set HUB_SESSION_STORE=memory."
                ) from exc
            self._sock, self._buf = sock, b""
            if self._auth:
                self._send(sock, "AUTH", *self._auth)
                try:
                    self._reply(sock)
                except ConfigError as exc:  # never the password itself
                    self.close()
                    raise ConfigError(
                        f"Redis at {self.host}:{self.port} refused the user or password of "
                        f"HUB_SESSION_REDIS_URL ({exc.message.split(':', 1)[-1].strip()})"
                    ) from None
            if self.db:
                self._send(sock, "SELECT", str(self.db))
                self._reply(sock)
        return self._sock

    @staticmethod
    def _send(sock: socket.socket, *args: str) -> None:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        sock.sendall(b"".join(out))

    def _line(self, sock: socket.socket) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection.")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _reply(self, sock: socket.socket) -> Any:
        line = self._line(sock)
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ConfigError(f"Redis answered an error: {rest.decode()}.")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self._buf) < n + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("Redis closed the connection.")
                self._buf += chunk
            data, self._buf = self._buf[:n], self._buf[n + 2 :]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(sock) for _ in range(n)]
        raise ConnectionError(f"Unexpected Redis reply {line[:40]!r}.")

    def call(self, *args: str) -> Any:
        with self._lock:
            for attempt in (1, 2):  # one reconnect after a dropped connection
                sock = self._connect()
                try:
                    self._send(sock, *args)
                    return self._reply(sock)
                except (ConnectionError, OSError):
                    self.close()
                    if attempt == 2:
                        raise
        return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class RedisSessionStore:
    """``SessionStore``'s contract over Redis (see the module docstring)."""

    def __init__(
        self,
        url: str,
        idle_s: float = 30 * 60,
        absolute_s: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
        prefix: str = PREFIX,
        *,
        mac_key: bytes,
    ) -> None:
        if len(mac_key) < 16:
            raise ConfigError("The console session seal key must be at least 16 bytes.")
        self._mac_key = mac_key
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._clock = clock
        self.prefix = prefix
        self.redis = Resp(url)

    def _ttl_ms(self, s: Session, now: float) -> int:
        left = min(s.last_used + self.idle_s, s.created + self.absolute_s) - now
        return max(1, int(left * 1000))

    def _seal(self, key: str, body: str) -> str:
        return hmac.new(self._mac_key, f"{key}\n{body}".encode(), hashlib.sha256).hexdigest()

    def _unseal(self, key: str, raw: bytes) -> Session | None:
        """The session a record holds, or None when its seal does not match (see the module
        docstring): written without the hub's key, edited, or moved from another key."""
        try:
            record = json.loads(raw)
            body, seal = record["session"], record["seal"]
            sealed = isinstance(body, str) and isinstance(seal, str)
            if sealed and hmac.compare_digest(seal, self._seal(key, body)):
                return Session(**json.loads(body))
        except (ValueError, TypeError, KeyError):
            pass
        log.warning("a console session record in Redis is not sealed by this hub: ignored")
        return None

    def _put(self, digest: str, s: Session, now: float, *, refresh: bool = False) -> bool:
        """Store ``s``; with ``refresh`` only if its key still exists. Whether it was stored."""
        key = self.prefix + digest
        body = json.dumps(asdict(s))
        record = json.dumps({"session": body, "seal": self._seal(key, body)})
        args = ["SET", key, record, "PX", str(self._ttl_ms(s, now))]
        if refresh:
            # XX: only while the session still exists. A logout (or a revocation ending it) in
            # another process between this GET and SET must stay done, not be written back.
            args.append("XX")
        return self.redis.call(*args) is not None

    def open(self, key_id: str, owner: str) -> tuple[str, Session]:
        token, now = new_token(), self._clock()
        session = Session(key_id, owner, new_token(), now, now)
        self._put(_digest(token), session, now)
        return token, session

    def get(self, token: str) -> Session | None:
        if not token:
            return None
        now, digest = self._clock(), _digest(token)
        raw = self.redis.call("GET", self.prefix + digest)
        if raw is None:
            return None
        session = self._unseal(self.prefix + digest, raw)
        if session is None:
            return None
        if now - session.last_used >= self.idle_s or now - session.created >= self.absolute_s:
            self.redis.call("DEL", self.prefix + digest)
            return None
        session.last_used = now
        return session if self._put(digest, session, now, refresh=True) else None

    def close(self, token: str) -> None:
        self.redis.call("DEL", self.prefix + _digest(token))

    def session_keys(self) -> list[str]:
        """Every session key (for tests and operators; a SCAN, never KEYS)."""
        found: list[str] = []
        cursor = "0"
        while True:
            cursor_b, batch = self.redis.call("SCAN", cursor, "MATCH", self.prefix + "*")
            found += [b.decode() for b in batch]
            cursor = cursor_b.decode()
            if cursor == "0":
                return found

    def __len__(self) -> int:
        return len(self.session_keys())
