"""ObjectStore: a small port for blobs by key (witnessed checkpoints, evidence packs, archives).

Adapters: ``adapters.local_objectstore.LocalObjectStore`` (a folder, the default) and
``adapters.s3_objectstore.S3ObjectStore`` (any S3 API through the ``minio`` client; infra/s3.sh
runs one). One contract suite runs against both (``tests/contract/objectstore_contract.py``).
Keys are ``/``-separated relative names (``checkpoints/hub.local/00000042.note``); each segment
MUST be non-empty and MUST NOT be ``.`` or ``..``.

Contract
- ``put`` stores bytes under a key. A write-once store (``write_once`` true) MUST refuse to
  replace an existing object with ``ObjectExists`` (even with identical bytes: use
  ``put_if_absent`` for idempotent writes).
- ``put_if_absent`` MUST be atomic: it stores and returns True only if no object had the key,
  else stores nothing and returns False. Two racing callers MUST NOT both get True.
- ``get`` returns the bytes or raises ``ObjectNotFound``; ``stream(key, max_bytes=n)`` yields
  the same bytes in blocks of at most ``block`` bytes, holding one block at a time, and MUST
  raise ``ObjectTooLarge`` (after yielding at most ``n`` bytes) when the object holds more than
  ``n``: a reader of an untrusted store bounds its memory by what it expects, whatever an
  object's size claims; ``exists`` never raises for a missing key; ``size`` is the object's
  length in bytes or raises ``ObjectNotFound``;
  ``list(prefix)`` returns the keys starting with ``prefix``, sorted; ``list(prefix,
  start_after=k)`` only those sorting after ``k`` (Python string order, which is S3's UTF-8
  byte order): a reader that remembers where it stopped (the witness of an incremental ledger
  verify) asks for what is new, and an adapter skips what it can without reading it (S3's
  ``StartAfter``, folders wholly before ``k``).
- ``delete`` removes an object (a missing key is a no-op) from a store that is not write-once;
  a write-once store MUST refuse it with ``ObjectImmutable`` and keep the object.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator

from core.errors import Conflict, HubError, InvalidInput, NotFound


class ObjectNotFound(NotFound):
    code = "object_not_found"


class ObjectExists(Conflict):
    code = "object_exists"


class ObjectImmutable(Conflict):
    code = "object_immutable"


class ObjectTooLarge(HubError):
    code = "object_too_large"
    http_status = 422


BLOCK_BYTES = 1 << 20


def too_large(key: str, max_bytes: int) -> ObjectTooLarge:
    return ObjectTooLarge(
        f"Object {key!r} holds more than the {max_bytes} bytes its reader expects; it was "
        "not read whole (an object changed or replaced in the store)."
    )


def read_bounded(
    read: Callable[[int], bytes], key: str, max_bytes: int, block: int
) -> Iterator[bytes]:
    """The blocks ``read(n)`` gives until it gives ``b""``, never asking for more than one byte
    past ``max_bytes`` in all: ``too_large`` as soon as the object proves larger."""
    seen = 0
    while data := read(min(block, max_bytes + 1 - seen)):
        seen += len(data)
        if seen > max_bytes:
            raise too_large(key, max_bytes)
        yield data


def folder_after(folder: str, start_after: str) -> bool:
    """Whether the folder ``folder`` (a key prefix ending in ``/``) may hold keys sorting after
    ``start_after``: not when the folder sorts before it without being its ancestor, since every
    key in it then differs from ``start_after`` first at a smaller character."""
    return not start_after or start_after.startswith(folder) or folder > start_after


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

    def stream(self, key: str, *, max_bytes: int, block: int = BLOCK_BYTES) -> Iterator[bytes]:
        """The object's bytes in blocks, at most ``max_bytes`` of them (else ``ObjectTooLarge``);
        raises ``ObjectNotFound``. This default checks ``size`` first and then reads whole (an
        object swapped in between is caught after the read): adapters stream instead."""
        if self.size(key) > max_bytes:
            raise too_large(key, max_bytes)
        data = self.get(key)
        if len(data) > max_bytes:
            raise too_large(key, max_bytes)
        for start in range(0, len(data), block):
            yield data[start : start + block]

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's length in bytes; raises ``ObjectNotFound``."""

    @abc.abstractmethod
    def list(self, prefix: str = "", *, start_after: str = "") -> list[str]:
        """Keys starting with ``prefix`` and sorting after ``start_after``, sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (no-op when missing); ``ObjectImmutable`` on a write-once store."""
