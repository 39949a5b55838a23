"""What both KeyStore adapters share: the AES-256-GCM data envelope and the data key cache.

Envelope (the bytes a KeyStore's ``encrypt`` returns)::

    byte 0       format: 0x01 local keyring, 0x02 transit-derived key (Vault / OpenBao)
    bytes 1-4    key version, unsigned big-endian
    bytes 5-16   96-bit random nonce
    bytes 17-    AES-256-GCM ciphertext followed by its 16-byte tag
    AAD          bind_subject(subject, bytes 0-4, caller AAD)  (hub.ports.keystore)

The header is authenticated, so a version or format byte cannot be changed unnoticed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.ports.keystore import DecryptionFailed, bind_subject

try:  # the native batch seal (native/src/aead_seal.rs); absent: the reference below runs
    from hub_native import seal_batch as _seal_batch
except ImportError:  # pragma: no cover - built by `make setup`
    _seal_batch = None
try:  # the same with the bound AADs built natively (native/src/aead_bound.rs)
    from hub_native import seal_batch_bound as _seal_batch_bound
except ImportError:  # pragma: no cover - built by `make setup`
    _seal_batch_bound = None

HEADER_LEN = 5
NONCE_LEN = 12
TAG_LEN = 16
KEY_LEN = 32
OVERHEAD = HEADER_LEN + NONCE_LEN + TAG_LEN


class DataKey:
    """A subject's data key: its ``AESGCM`` (``encrypt`` and ``decrypt`` are the AESGCM's own
    bound methods, no extra frame) and its 32 raw bytes, which the native batch seal needs
    (an ``AESGCM`` does not give its key back). Held only where the ``AESGCM`` is: the key
    caches, which ``destroy`` purges."""

    __slots__ = ("decrypt", "encrypt", "raw")

    def __init__(self, raw: bytes) -> None:
        aead = AESGCM(raw)
        self.raw = bytes(raw)
        self.encrypt = aead.encrypt
        self.decrypt = aead.decrypt


def seal(
    fmt: int, version: int, aead: AESGCM | DataKey, subject_id: str, plaintext: bytes, aad: bytes
) -> bytes:
    header = bytes([fmt]) + version.to_bytes(4, "big")
    nonce = os.urandom(NONCE_LEN)
    return header + nonce + aead.encrypt(nonce, plaintext, bind_subject(subject_id, header, aad))


def sealer(
    fmt: int, version: int, aead: AESGCM | DataKey, subject_id: str
) -> Callable[[bytes, bytes], bytes]:
    """``seal`` with the header and the subject's part of the bound AAD computed once (and the
    whole bound AAD once per distinct caller AAD): the per-batch form of ``KeyStore.encrypt``.
    Every call draws its own nonce from the OS."""
    header = bytes([fmt]) + version.to_bytes(4, "big")
    bound: dict[bytes, bytes] = {}
    encrypt, urandom = aead.encrypt, os.urandom

    def seal_one(plaintext: bytes, aad: bytes) -> bytes:
        full = bound.get(aad)
        if full is None:
            full = bound[aad] = bind_subject(subject_id, header, aad)
        nonce = urandom(NONCE_LEN)
        return header + nonce + encrypt(nonce, plaintext, full)

    return seal_one


def seal_many(
    fmt: int,
    newest: Callable[[str], tuple[int, AESGCM | DataKey]],
    subject_ids: Sequence[str],
    plaintexts: Sequence[bytes],
    aads: Sequence[bytes],
    cached: Callable[[Iterable[str]], Mapping[str, tuple[int, AESGCM | DataKey]]] | None = None,
) -> list[bytes]:
    """``seal`` of every (subject, plaintext, aad), the batch form of ``KeyStore.seal_many``:
    ``newest(subject)`` once per distinct subject (all before the first seal, so a destroyed subject
    raises with nothing sealed; ``cached``, the key cache's ``newest_many``, answers the warm ones
    in one call first and ``newest`` only the others), the bound AAD once per distinct (subject,
    aad), and the nonces drawn from the OS in ONE call and cut into 96-bit pieces, one per value
    (each as fresh and random as a call of its own). Gives exactly ``seal``'s envelope: the same
    bytes given the same nonces (``tests/unit/test_seal_many.py``). When every key is a ``DataKey``
    the values are encrypted by one native call (``hub_native.seal_batch``, the same bytes as
    ``_seal_many_py``: ``tests/unit/test_native_seal.py``)."""
    n = len(plaintexts)
    if not len(subject_ids) == len(aads) == n:
        raise ValueError(f"seal_many needs as many subjects and AADs as plaintexts ({n}).")
    index = {s: i for i, s in enumerate(dict.fromkeys(subject_ids))}  # distinct, in order
    # a C loop: each value's key index (the (key, aad) pairs are never kept as a list: a tuple
    # per value that outlived the loop made the garbage collector run through the heap more)
    return seal_keyed(
        fmt,
        newest,
        list(index),
        list(map(index.__getitem__, subject_ids)),
        plaintexts,
        aads,
        cached,
    )


def seal_keyed(
    fmt: int,
    newest: Callable[[str], tuple[int, AESGCM | DataKey]],
    subjects: list[str],
    key_of: list[int],
    plaintexts: Sequence[bytes],
    aads: Sequence[bytes],
    cached: Callable[[Iterable[str]], Mapping[str, tuple[int, AESGCM | DataKey]]] | None = None,
) -> list[bytes]:
    """``seal_many`` with the subjects given once: value i is sealed for ``subjects[key_of[i]]``
    (``subjects`` distinct; every ``key_of`` entry an index into it), the batch form of
    ``KeyStore.seal_keyed``. Same envelope, same checks, same order of key look-ups (all before
    the first seal) as ``seal_many``, which is this after building the index."""
    n = len(plaintexts)
    if not len(key_of) == len(aads) == n:
        raise ValueError(f"seal_many needs as many subjects and AADs as plaintexts ({n}).")
    keys: list[tuple[bytes, AESGCM | DataKey]] = []
    hits = cached(subjects) if cached is not None else {}
    for s in subjects:
        hit = hits.get(s)
        version, aead = hit if hit is not None else newest(s)
        keys.append((bytes([fmt]) + version.to_bytes(4, "big"), aead))
    if _seal_batch_bound is not None and all(type(k) is DataKey for _, k in keys):
        # the bound AADs built in the native call (``bind_subject``'s bytes), not per distinct
        # (subject, aad) pair in Python; None: a case the reference below decides
        out = _seal_batch_bound(
            [k.raw for _, k in keys],  # type: ignore[union-attr]
            [h for h, _ in keys],
            subjects,
            key_of,
            list(plaintexts) if type(plaintexts) is not list else plaintexts,
            list(aads) if type(aads) is not list else aads,
            os.urandom(NONCE_LEN * n),
        )
        if out is not None:
            return out  # type: ignore[no-any-return]
    # the native call answers None for an index out of range; here a negative one would wrap
    if key_of and not 0 <= min(key_of) <= max(key_of) < len(subjects):
        raise ValueError(f"seal_keyed: a key index is outside the {len(subjects)} subjects.")
    bound = {
        p: bind_subject(subjects[p[0]], keys[p[0]][0], p[1])
        for p in dict.fromkeys(zip(key_of, aads, strict=True))
    }
    full = list(map(bound.__getitem__, zip(key_of, aads, strict=True)))
    nonces = os.urandom(NONCE_LEN * n)
    if _seal_batch is not None and all(type(k) is DataKey for _, k in keys):
        out = _seal_batch(
            [k.raw for _, k in keys],  # type: ignore[union-attr]
            [h for h, _ in keys],
            key_of,
            list(plaintexts) if type(plaintexts) is not list else plaintexts,
            full,
            nonces,
        )
        if out is not None:
            return out  # type: ignore[no-any-return]
    return _seal_many_py(keys, key_of, plaintexts, full, nonces)


def _seal_many_py(
    keys: Sequence[tuple[bytes, AESGCM | DataKey]],
    key_of: Sequence[int],
    plaintexts: Sequence[bytes],
    full: Sequence[bytes],
    nonces: bytes,
) -> list[bytes]:
    """The reference of ``hub_native.seal_batch``: value i is ``keys[key_of[i]]``'s header +
    its 12-byte nonce (bytes 12i.. of ``nonces``) + AES-GCM of it under the bound AAD
    ``full[i]``."""
    out: list[bytes] = []
    add = out.append
    at = 0
    for k, plaintext, aad in zip(key_of, plaintexts, full, strict=True):
        header, aead = keys[k]
        nonce = nonces[at : at + NONCE_LEN]
        at += NONCE_LEN
        add(header + nonce + aead.encrypt(nonce, plaintext, aad))
    return out


def parse_header(fmt: int, ciphertext: bytes, kind: str) -> int:
    """The key version named by an envelope of format ``fmt``; raises ``DecryptionFailed``."""
    if len(ciphertext) < OVERHEAD or ciphertext[0] != fmt:
        raise DecryptionFailed(
            f"Not a {kind} ciphertext: expected format byte {fmt} and at least {OVERHEAD} bytes, "
            f"got {len(ciphertext)} bytes starting {bytes(ciphertext[:1]).hex() or 'nothing'}."
        )
    return int.from_bytes(ciphertext[1:HEADER_LEN], "big")


def open_sealed(aead: AESGCM | DataKey, subject_id: str, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return aead.decrypt(
            ciphertext[HEADER_LEN : HEADER_LEN + NONCE_LEN],
            ciphertext[HEADER_LEN + NONCE_LEN :],
            bind_subject(subject_id, ciphertext[:HEADER_LEN], aad),
        )
    except InvalidTag as exc:
        version = int.from_bytes(ciphertext[1:HEADER_LEN], "big")
        raise DecryptionFailed(
            f"A ciphertext of data subject {subject_id!r} (key version {version}) failed "
            "authentication: it was changed, or moved from another record, field or subject."
        ) from exc


class CreatedKeys:
    """The subjects whose key this process created and whose naming is not yet recorded
    (``KeyStore.created_here``). Bounded: beyond ``size`` entries it forgets them all, so a
    subject then named has its tenants unverified (only an officer of every tenant erases it)
    rather than believed."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, subject_id: str) -> None:
        with self._lock:
            if len(self._ids) >= self._size:
                self._ids.clear()
            self._ids.add(subject_id)

    def among(self, subject_ids: Iterable[str]) -> set[str]:
        if not self._ids:  # the steady state: no key made since the last naming
            return set()
        with self._lock:
            return self._ids.intersection(subject_ids)

    def forget(self, subject_ids: Iterable[str]) -> None:
        if not self._ids:
            return
        with self._lock:
            self._ids.difference_update(subject_ids)


class KeyCache:
    """A bounded LRU of unwrapped data keys whose entries expire after ``ttl`` seconds.

    ``newest`` remembers each subject's newest version for the same lifetime, so a warm encrypt
    touches no storage. ``purge`` forgets a subject at once (destroy).
    """

    def __init__(self, size: int, ttl: float) -> None:
        self._size = size
        self._ttl = ttl
        self._keys: OrderedDict[tuple[str, int], tuple[AESGCM | DataKey, float]] = OrderedDict()
        self._newest: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(self, subject_id: str, version: int) -> AESGCM | DataKey | None:
        with self._lock:
            hit = self._keys.get((subject_id, version))
            if hit is None:
                return None
            if hit[1] < time.monotonic():
                del self._keys[(subject_id, version)]
                return None
            self._keys.move_to_end((subject_id, version))
            return hit[0]

    def newest(self, subject_id: str) -> tuple[int, AESGCM | DataKey] | None:
        with self._lock:
            hit = self._newest.get(subject_id)
            if hit is None or hit[1] < time.monotonic():
                return None
            key = self._keys.get((subject_id, hit[0]))
            if key is None or key[1] < time.monotonic():
                return None
            return hit[0], key[0]

    def newest_many(self, subject_ids: Iterable[str]) -> dict[str, tuple[int, AESGCM | DataKey]]:
        """``newest`` of every subject that has a live entry, under ONE lock and one clock
        reading (a publish batch's distinct subjects: ~0.24 us a subject of lock and clock
        calls otherwise); a subject left out is a miss, looked up by the caller."""
        now = time.monotonic()
        found: dict[str, tuple[int, AESGCM | DataKey]] = {}
        with self._lock:
            newest, keys = self._newest.get, self._keys.get
            for subject_id in subject_ids:
                hit = newest(subject_id)
                if hit is None or hit[1] < now:
                    continue
                key = keys((subject_id, hit[0]))
                if key is None or key[1] < now:
                    continue
                found[subject_id] = hit[0], key[0]
        return found

    def put(self, subject_id: str, version: int, aead: AESGCM | DataKey, *, newest: bool) -> None:
        if self._size <= 0:
            return
        expires = time.monotonic() + self._ttl
        with self._lock:
            self._keys[(subject_id, version)] = (aead, expires)
            self._keys.move_to_end((subject_id, version))
            if newest:
                self._newest[subject_id] = (version, expires)
            while len(self._keys) > self._size:
                (old_subject, _), _ = self._keys.popitem(last=False)
                self._newest.pop(old_subject, None)

    def purge(self, subject_id: str) -> None:
        with self._lock:
            for key in [k for k in self._keys if k[0] == subject_id]:
                del self._keys[key]
            self._newest.pop(subject_id, None)
