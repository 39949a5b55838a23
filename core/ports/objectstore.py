"""ObjectStore: a small port for blobs by key (witnessed checkpoints, evidence packs, archives).

Adapters: ``adapters.local_objectstore.LocalObjectStore`` (a folder, the default) and, later,
MinIO/S3. Keys are ``/``-separated relative names (``checkpoints/hub.local/00000042.note``);
each segment MUST be non-empty and MUST NOT be ``.`` or ``..``.

Contract
- ``put`` stores bytes under a key. A write-once store (``write_once`` true) MUST refuse to
  replace an existing object with ``ObjectExists`` (even with identical bytes: use
  ``put_if_absent`` for idempotent writes).
- ``put_if_absent`` MUST be atomic: it stores and returns True only if no object had the key,
  else stores nothing and returns False. Two racing callers MUST NOT both get True.
- ``get`` returns the bytes or raises ``ObjectNotFound``; ``exists`` never raises for a
  missing key; ``list(prefix)`` returns the keys starting with ``prefix``, sorted.
"""

from __future__ import annotations

import abc

from core.errors import Conflict, InvalidInput, NotFound


class ObjectNotFound(NotFound):
    code = "object_not_found"


class ObjectExists(Conflict):
    code = "object_exists"


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ``InvalidInput``."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise InvalidInput(
            f"Object key {key!r} is invalid: use non-empty '/'-separated names without '.' "
            "or '..' segments."
        )
    return key


class ObjectStore(abc.ABC):
    write_once: bool = False

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data``; a write-once store raises ``ObjectExists`` if the key is taken."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` only if the key is free; True if stored."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises ``ObjectNotFound``."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
