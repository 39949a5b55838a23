"""KeyStore: per-data-subject data keys, the basis of crypto-shredding.

Every data subject (a customer, keyed by e.g. ``account_id``) has its own data key. PII is
encrypted under it before it enters the log; destroying the key makes every copy of that PII
(log, exports, backups, replicas) unreadable at once, while the log's bytes, and so the audit
ledger over them, stay unchanged.

Adapters: ``adapters.local_keystore.LocalKeyStore`` (a SQLite keyring under the data folder, the
default) and ``adapters.vault_keystore.VaultKeyStore`` (Vault / OpenBao transit via hvac). The
contract suite is ``tests/contract/keystore_contract.py``.

Contract
- ``ensure_key`` MUST create the subject's key if it has none and MUST be idempotent and safe
  under concurrent callers (threads and processes): one subject never ends up with two keys of
  the same version.
- ``encrypt`` MUST use the subject's newest key version (creating the key if needed) and return
  a self-describing ciphertext: it MUST carry its format and key version, so that ``decrypt``
  needs nothing but the subject, the ciphertext and the AAD. Two encryptions of the same
  plaintext MUST differ (fresh nonce).
- ``decrypt`` MUST authenticate: a changed byte, a different ``aad`` or a different subject MUST
  raise ``DecryptionFailed``, never return wrong plaintext. Callers bind a ciphertext to its
  place with ``aad`` (``make_aad(topic, field path, subject, tenant)``), so it cannot be moved to
  another record field or another tenant's record; adapters MUST also bind the subject
  themselves.
- ``rotate`` MUST add a new key version: later encryptions use it; ciphertexts of every older
  version MUST still decrypt until the subject is destroyed.
- ``destroy`` MUST be irreversible and idempotent (destroying a never-seen subject is allowed and
  leaves it destroyed). Afterwards ``decrypt`` of any ciphertext of that subject, of any version,
  MUST raise ``KeyDestroyed``, and ``ensure_key``/``encrypt``/``rotate`` MUST raise
  ``KeyDestroyed`` too: an erased subject stays erased (a late event for it is refused, not
  encrypted under a fresh key). No key material of the subject MAY remain recoverable from the
  store's files or server (rows overwritten and deleted, files vacuumed; transit keys deleted).
  The calling process MUST stop decrypting at once; other processes that cache keys MUST stop
  within the adapter's documented cache lifetime (``cache_ttl_s``).
- ``exists`` is True only while the subject has a live (not destroyed) key.
- ``erased`` is True once the subject was destroyed (by any instance), False for a live or a
  never-seen subject; it MUST NOT create a key.
- Library errors are translated: ``KeyStoreUnavailable`` (retryable) when the backend cannot be
  reached, ``KeyStoreError`` for anything else.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from core.errors import HubError, InvalidInput, Retryable


class KeyStoreError(HubError):
    """A key operation failed for a reason other than the ones below."""

    code = "keystore_error"
    http_status = 500


class KeyDestroyed(HubError):
    """The data subject's key was destroyed (crypto-shredded): its data cannot be read again."""

    code = "key_destroyed"
    http_status = 410


class DecryptionFailed(InvalidInput):
    """A ciphertext failed authentication: changed bytes, wrong AAD or another subject's data."""

    code = "decryption_failed"


class KeyStoreUnavailable(Retryable):
    """The key backend (e.g. the Vault server) is unreachable; the same call may succeed later."""

    code = "keystore_unavailable"


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A subject's key as callers may see it: never the key material."""

    subject_id: str
    version: int


AAD_V1 = b"hub.aad.v1"  # (topic, field, subject): legacy, opened only for old records
AAD_V2 = b"hub.aad.v2"  # (topic, field, subject, tenant): every new seal


def check_subject(subject_id: str) -> str:
    """Return ``subject_id`` if usable as a data subject id, else raise ``InvalidInput``."""
    if not isinstance(subject_id, str) or not subject_id or "\x00" in subject_id:
        raise InvalidInput(
            f"Data subject id {subject_id!r} is invalid: use a non-empty string without NUL "
            "characters (e.g. the account_id)."
        )
    if len(subject_id.encode()) > 1024:
        raise InvalidInput(
            f"Data subject id {subject_id[:40]!r}... is {len(subject_id.encode())} bytes long; "
            "the limit is 1024."
        )
    return subject_id


def make_aad(topic: str, field_path: str, subject_id: str, tenant: str) -> bytes:
    """The associated data (v2) that binds a ciphertext to (topic, field path, subject, tenant).

    Length-prefixed, so no two different quadruples encode to the same bytes. ``tenant`` is the
    tenant of the record the value is sealed into (its ``ce_tenant`` header, ``default`` without
    one): data keys are per subject hub-wide and topics are shared by tenants, so without it a
    tenant could copy another's ciphertext into its own record and have the hub open it
    (docs/trust-model.md, "PII associated data"). A reader passes the tenant of the record as
    stored, never one a caller asks for.
    """
    if not isinstance(tenant, str) or not tenant:
        raise InvalidInput(
            f"Tenant {tenant!r} cannot be bound into PII associated data: give the record's "
            "tenant (its ce_tenant header, 'default' without one)."
        )
    t, f, s, n = topic.encode(), field_path.encode(), subject_id.encode(), tenant.encode()
    lt, lf, ls, ln = (len(x).to_bytes(4, "big") for x in (t, f, s, n))
    return b"".join((AAD_V2, lt, t, lf, f, ls, s, ln, n))


def make_aad_v1(topic: str, field_path: str, subject_id: str) -> bytes:
    """The legacy (v1) associated data, without the tenant: only to OPEN values stored before
    v2 (``core.pii`` decides when that is allowed); nothing new is sealed under it."""
    t, f, s = topic.encode(), field_path.encode(), subject_id.encode()
    lt, lf, ls = (len(x).to_bytes(4, "big") for x in (t, f, s))
    return b"".join((AAD_V1, lt, t, lf, f, ls, s))


def bind_subject(subject_id: str, header: bytes, aad: bytes) -> bytes:
    """The AES-GCM associated data adapters use: envelope header, subject and caller AAD."""
    s = subject_id.encode()
    n = len(header).to_bytes(4, "big")
    return b"".join((n, header, len(s).to_bytes(4, "big"), s, len(aad).to_bytes(4, "big"), aad))


class KeyStore(abc.ABC):
    """Per-data-subject data keys with rotation and irreversible destruction."""

    @abc.abstractmethod
    def ensure_key(self, subject_id: str) -> KeyRef:
        """The subject's newest key, created if absent; raises ``KeyDestroyed`` if destroyed."""

    @abc.abstractmethod
    def encrypt(self, subject_id: str, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt under the subject's newest key version; the ciphertext names that version."""

    def sealer(self, subject_id: str) -> Callable[[bytes, bytes], bytes]:
        """``encrypt`` bound to the subject for one batch: ``sealer(s)(plaintext, aad)`` is
        ``encrypt(s, plaintext, aad)`` (a fresh nonce every call, the key newest when the sealer
        was made). Adapters look the key up once here instead of once per value; hold a sealer
        no longer than a batch (a destroy elsewhere is only seen by the next one). Raises what
        ``encrypt`` raises (``KeyDestroyed`` for an erased subject), here or at the first call."""
        encrypt = self.encrypt

        def seal(plaintext: bytes, aad: bytes) -> bytes:
            return encrypt(subject_id, plaintext, aad)

        return seal

    def seal_many(
        self, subject_ids: Sequence[str], plaintexts: Sequence[bytes], aads: Sequence[bytes]
    ) -> list[bytes]:
        """``[encrypt(s, p, a) for s, p, a in zip(subject_ids, plaintexts, aads)]`` for one
        batch: every value gets its own fresh random nonce; each subject's newest key is looked
        up once per call. Raises what ``encrypt`` raises (``KeyDestroyed`` for an erased
        subject), and then seals nothing. This default makes one ``sealer`` per subject."""
        sealers: dict[str, Callable[[bytes, bytes], bytes]] = {}
        for s in subject_ids:
            if s not in sealers:
                sealers[s] = self.sealer(s)
        return [sealers[s](p, a) for s, p, a in zip(subject_ids, plaintexts, aads, strict=True)]

    @abc.abstractmethod
    def decrypt(self, subject_id: str, ciphertext: bytes, aad: bytes) -> bytes:
        """Decrypt; ``KeyDestroyed`` after ``destroy``, ``DecryptionFailed`` on any mismatch."""

    @abc.abstractmethod
    def rotate(self, subject_id: str) -> KeyRef:
        """Add a new key version (creating the key if absent) and return it."""

    @abc.abstractmethod
    def destroy(self, subject_id: str) -> None:
        """Destroy every version of the subject's key, irreversibly; idempotent."""

    @abc.abstractmethod
    def exists(self, subject_id: str) -> bool:
        """True while the subject has a live key."""

    @abc.abstractmethod
    def erased(self, subject_id: str) -> bool:
        """True once the subject's key was destroyed; never creates a key."""

    def erased_among(self, subject_ids: Iterable[str]) -> set[str]:
        """The ids among ``subject_ids`` whose key was destroyed (what :meth:`erased` says of
        each), asked in as few questions as the store allows: a batch names hundreds of
        subjects. An id that is not a valid subject id is never erased and is left out; never
        creates a key. This default asks :meth:`erased` once per distinct id."""
        found = set()
        for subject_id in set(subject_ids):
            try:
                if self.erased(subject_id):
                    found.add(subject_id)
            except InvalidInput:
                continue  # not a valid subject id: nothing can have been erased under it
        return found

    def known_among(self, subject_ids: Iterable[str]) -> set[str]:
        """The ids among ``subject_ids`` that have a live key or were erased (what
        ``exists(s) or erased(s)`` says of each); never creates a key. An id that is not a valid
        subject id is left out. This default asks once per distinct id."""
        found = set()
        for subject_id in set(subject_ids):
            try:
                if self.exists(subject_id) or self.erased(subject_id):
                    found.add(subject_id)
            except InvalidInput:
                continue
        return found

    def created_here(self, subject_ids: Iterable[str]) -> set[str]:
        """The ids among ``subject_ids`` whose key THIS instance created on first use
        (``ensure_key``, ``encrypt``, a sealer) and that ``forget_created`` has not been told
        of since. ``SubjectTenants`` names a batch's subjects after sealing it: a subject with a
        key but no record of its tenants is a new one only if its key was made here, just now;
        any other key is older than the record that was lost (``adapters.subject_tenants``).
        Process memory (bounded), not the store's files: whoever edits a file cannot add to it.
        Adapters MUST answer for the keys they create; this default (none) makes every first
        naming after a key's creation unverified."""
        return set()

    def forget_created(self, subject_ids: Iterable[str]) -> None:  # noqa: B027 - optional hook
        """Drop ``subject_ids`` from what ``created_here`` answers (their naming is recorded)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. The store MUST NOT be used afterwards."""


class SubjectTenants(abc.ABC):
    """Which tenants named each data subject (subject keys are hub-wide, tenants are not).

    An erasure destroys a subject's key for every tenant, so a reader limited to one tenant may
    erase only a subject that no other tenant named (``governance.erasure``). Writers call
    ``name`` before sealing or appending a batch; it MUST be durable before it returns, and MUST
    be cheap when every pair is already known (a set difference per batch, no write)."""

    @abc.abstractmethod
    def name(self, tenant: str, subject_ids: Iterable[str]) -> None:
        """Record that ``tenant`` named each of ``subject_ids`` (idempotent)."""

    @abc.abstractmethod
    def tenants_of(self, subject_id: str) -> frozenset[str]:
        """Every tenant that named ``subject_id``; empty when none did (or before records)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
