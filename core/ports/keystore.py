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


class KeyUnknown(KeyDestroyed):
    """No key of the subject was ever in this store (no key, no tombstone). A ``KeyDestroyed``
    for every caller that treats a missing key as a destroyed one (a ciphertext exists, so its
    key once did); ``TenantKeys.decrypt`` alone tells the two apart, to try the subject's
    hub-wide key of before tenant-scoped keys."""

    code = "key_destroyed"


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
    try:
        size = len(subject_id.encode())
    except UnicodeEncodeError as exc:  # a lone surrogate (JSON "\udc00"): was a 500
        raise InvalidInput(
            f"Data subject id {subject_id[:40]!r} holds a lone UTF-16 surrogate, which is not "
            "Unicode text: send the id as UTF-8 text (a surrogate pair or the character itself)."
        ) from exc
    if size > 1024:
        raise InvalidInput(
            f"Data subject id {subject_id[:40]!r}... is {len(subject_id.encode())} bytes long; "
            "the limit is 1024."
        )
    return subject_id


SCOPED_MARK = "\x00"
"""The first character of a tenant-scoped key id (``scoped_subject``). A data subject id never
holds NUL (``check_subject``), so no subject id, hub-wide (legacy), can pose as a scoped id."""


def check_tenant_name(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant or "\x00" in tenant or len(tenant) > 256:
        raise InvalidInput(
            f"Tenant {tenant!r} cannot scope a data subject key: use a non-empty name without "
            "NUL characters, at most 256 characters."
        )
    return tenant


def scoped_subject(tenant: str, subject_id: str) -> str:
    """The key id of ``subject_id`` as named by ``tenant``: ``NUL tenant NUL subject``. Data
    subject keys are per (tenant, subject): acme's "alice" and globex's "alice" are two people
    with two keys, and one tenant's officer erases its own alone (``TenantKeys``)."""
    return f"{SCOPED_MARK}{check_tenant_name(tenant)}{SCOPED_MARK}{check_subject(subject_id)}"


def parse_scoped(key_id: str) -> tuple[str, str] | None:
    """(tenant, subject) of a scoped key id, None for a hub-wide (legacy) subject id."""
    if not isinstance(key_id, str) or not key_id.startswith(SCOPED_MARK):
        return None
    tenant, sep, subject = key_id[1:].partition(SCOPED_MARK)
    if not sep:
        return None
    return tenant, subject


def check_key_id(key_id: str) -> str:
    """Return ``key_id`` if an adapter may hold a key under it: a subject id (hub-wide keys,
    made before keys were scoped) or a well-formed ``scoped_subject`` id; else ``InvalidInput``."""
    pair = parse_scoped(key_id)
    if pair is None:
        return check_subject(key_id)
    if scoped_subject(*pair) != key_id:
        raise InvalidInput(f"Key id {key_id!r} is not a well-formed tenant-scoped subject id.")
    return key_id


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


@dataclass(frozen=True)
class KeyStoreState:
    """Where a key store's own files stand (``KeyStore.state``): ``generation`` counts its
    committed changes (it never goes back), ``counts`` its rows by kind, ``digest`` names the
    exact state (two stores at one generation with different digests are different stores)."""

    generation: int
    counts: dict[str, int]
    digest: str


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

    def seal_keyed(
        self,
        subject_ids: list[str],
        key_of: list[int],
        plaintexts: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:
        """``seal_many`` with each distinct subject given once: value i is sealed for
        ``subject_ids[key_of[i]]`` (``subject_ids`` distinct, every index in range, else
        ``ValueError`` with nothing sealed). The same envelopes and errors as ``seal_many`` of
        the expanded subjects, which this default calls; the adapters skip the expansion and
        their own re-indexing (one index pass per batch instead of three)."""
        if key_of and not 0 <= min(key_of) <= max(key_of) < len(subject_ids):
            raise ValueError(f"seal_keyed: a key index is outside the {len(subject_ids)} subjects.")
        return self.seal_many(list(map(subject_ids.__getitem__, key_of)), plaintexts, aads)

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

    def any_erased(self) -> bool:
        """False only if no key of this store was ever destroyed (no erasure tombstone at all),
        so that a caller can skip :meth:`erased_among` of a batch's subjects. MUST answer True
        from the moment a ``destroy`` returns (it is asked afresh each time, never remembered);
        MAY answer True whenever the store cannot tell cheaply: this default does."""
        return True

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

    def live_among(self, subject_ids: Iterable[str]) -> set[str]:
        """The ids among ``subject_ids`` that have a live key (what :meth:`exists` says of
        each), asked in as few questions as the store allows: every open asks it of each
        erased subject (``governance.erasure_index``). An id that is not a valid subject id is
        left out; never creates a key. This default asks :meth:`exists` once per distinct id."""
        found = set()
        for subject_id in set(subject_ids):
            try:
                if self.exists(subject_id):
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

    def state(self) -> KeyStoreState | None:
        """The state of a store kept in files the hub holds (the local keyring), authenticated
        by the store (a MAC under its master key), for the hub to anchor outside those files
        (``governance.keyring_anchor``); None for a store that keeps its own history (Vault)."""
        return None

    def watch_state(self, callback: Callable[[KeyStoreState, bool], None]) -> None:  # noqa: B027
        """Call ``callback(state, False)`` after each committed change (keys made, rotated,
        destroyed), and ``callback(last state, True)`` when the store closes (a watcher that
        writes lazily writes then). Stores whose ``state`` is None never call it."""

    #: Who named each hub-wide (legacy) subject before keys were scoped: the frozen record
    #: ``SubjectTenants.tenants_of``, set by the hub's bootstrap. ``TenantKeys`` asks it only
    #: for a legacy key found erased or live; None: a legacy key counts for every tenant.
    legacy_tenants: Callable[[str], frozenset[str]] | None = None

    def for_tenant(self, tenant: str) -> TenantKeys:
        """This store as ``tenant`` sees it: every subject id names the tenant's own key
        (``TenantKeys``). One view per tenant, kept for the store's life."""
        views: dict[str, TenantKeys] | None = self.__dict__.get("_tenant_views")
        if views is None:
            views = self.__dict__.setdefault("_tenant_views", {})
        view = views.get(tenant)
        if view is None:
            view = views[tenant] = TenantKeys(self, check_tenant_name(tenant))
        return view

    def key_tenants(self, subject_id: str) -> frozenset[str] | None:
        """The tenants that have (or had: erased) a scoped key of ``subject_id``; None when
        this store cannot list them (the eraser then destroys the key of every tenant it
        knows). Never creates a key."""
        return None


UNVERIFIED_TENANTS = "(unverified)"
"""What ``SubjectTenants.tenants_of`` adds when its record of a subject fails its MAC."""


class TenantKeys(KeyStore):
    """One tenant's view of a ``KeyStore``: subject ``s`` is the key ``scoped_subject(tenant,
    s)``. Before keys were scoped, a subject's key was hub-wide (key id ``s`` itself); values
    sealed under such a legacy key stay readable, so:

    - seals (``encrypt``, ``sealer``, ``seal_many``, ``ensure_key``, ``rotate``) use the scoped
      key only; nothing new is ever sealed under a legacy key;
    - ``decrypt`` tries the scoped key, then the legacy key when the scoped key was never made
      (``KeyUnknown``) or does not open the value (``DecryptionFailed``: a subject with old and
      new values). The AAD binds the tenant either way, so the fallback opens nothing another
      tenant sealed. A scoped key that was destroyed reads as destroyed (the erasure destroyed
      the legacy key too, or refused);
    - ``erased`` / ``exists``: the scoped key's state, or the legacy key's when the legacy
      record says the tenant named the subject (or cannot say): a legacy erasure was hub-wide
      and stays in force for the tenants it covered, and does not refuse another tenant's
      unrelated subject of the same id;
    - ``destroy`` destroys the scoped key only: the legacy key is ``governance.erasure``'s.

    Subject ids are checked (``check_subject``) before use, so no id can pose as another
    tenant's scoped key id.
    """

    _IDS_HELD = 65_536  # key ids remembered (a reader opens a subject's fields one by one)

    def __init__(self, inner: KeyStore, tenant: str) -> None:
        self.inner = inner
        self.tenant = tenant
        self._held: dict[str, str] = {}

    def key_id(self, subject_id: str) -> str:
        """``scoped_subject(tenant, subject_id)``, remembered (only valid ids are kept; the
        memory is dropped whole when full)."""
        found = self._held.get(subject_id) if type(subject_id) is str else None
        if found is None:
            found = scoped_subject(self.tenant, subject_id)
            if len(self._held) >= self._IDS_HELD:
                self._held = {}
            if type(subject_id) is str:
                self._held[subject_id] = found
        return found

    def _ids(self, subject_ids: Iterable[str]) -> dict[str, str]:
        """{scoped key id: subject id} of the valid ids among ``subject_ids``."""
        out = {}
        for s in set(subject_ids):
            try:
                out[scoped_subject(self.tenant, s)] = s
            except InvalidInput:
                continue
        return out

    def _legacy_counts(self, subject_id: str) -> bool:
        named_by = self.inner.legacy_tenants
        if named_by is None:
            return True
        named = named_by(subject_id)
        return not named or UNVERIFIED_TENANTS in named or self.tenant in named

    def ensure_key(self, subject_id: str) -> KeyRef:
        return KeyRef(subject_id, self.inner.ensure_key(self.key_id(subject_id)).version)

    def encrypt(self, subject_id: str, plaintext: bytes, aad: bytes) -> bytes:
        return self.inner.encrypt(self.key_id(subject_id), plaintext, aad)

    def sealer(self, subject_id: str) -> Callable[[bytes, bytes], bytes]:
        return self.inner.sealer(self.key_id(subject_id))

    def seal_many(
        self, subject_ids: Sequence[str], plaintexts: Sequence[bytes], aads: Sequence[bytes]
    ) -> list[bytes]:
        # each distinct subject's key id through the view's memory (``key_id``): a publish
        # batch's subjects are mostly the last batches' (~0.05 us a value of checks and
        # formatting otherwise)
        index = {s: i for i, s in enumerate(dict.fromkeys(subject_ids))}  # distinct, in order
        key_of = list(map(index.__getitem__, subject_ids))
        return self.inner.seal_keyed(list(map(self.key_id, index)), key_of, plaintexts, aads)

    def seal_keyed(
        self,
        subject_ids: list[str],
        key_of: list[int],
        plaintexts: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:
        return self.inner.seal_keyed(list(map(self.key_id, subject_ids)), key_of, plaintexts, aads)

    def decrypt(self, subject_id: str, ciphertext: bytes, aad: bytes) -> bytes:
        key_id = self.key_id(subject_id)  # checks the subject id: no NUL, so no scoped id
        try:
            return self.inner.decrypt(key_id, ciphertext, aad)
        except KeyUnknown:
            try:
                return self.inner.decrypt(subject_id, ciphertext, aad)  # never scoped: legacy
            except KeyUnknown:
                # neither key ever existed: no value of this tenant's subject was ever sealed,
                # so this one was sealed for another (a copy), not erased
                raise DecryptionFailed(
                    f"A sealed value of data subject {subject_id!r} failed authentication for "
                    f"tenant {self.tenant!r}: no key of that tenant's subject was ever made, so "
                    "it was sealed for another tenant's record (or another hub)."
                ) from None
        except DecryptionFailed as first:
            try:  # a value sealed under the legacy key before this tenant's key was made
                return self.inner.decrypt(subject_id, ciphertext, aad)
            except (DecryptionFailed, KeyDestroyed):
                raise first from None  # neither opens it: the scoped key's answer

    def rotate(self, subject_id: str) -> KeyRef:
        return KeyRef(subject_id, self.inner.rotate(self.key_id(subject_id)).version)

    def destroy(self, subject_id: str) -> None:
        self.inner.destroy(self.key_id(subject_id))

    def exists(self, subject_id: str) -> bool:
        if self.inner.exists(self.key_id(subject_id)):
            return True
        return self.inner.exists(subject_id) and self._legacy_counts(subject_id)

    def erased(self, subject_id: str) -> bool:
        key_id = self.key_id(subject_id)
        # one question for both keys (the ingest path asks once per subject and batch)
        found = self.inner.erased_among((key_id, subject_id))
        if key_id in found:
            return True
        return subject_id in found and self._legacy_counts(subject_id)

    def any_erased(self) -> bool:
        # the scoped and the legacy keys are the inner store's: none erased there, none here
        return self.inner.any_erased()

    def erased_among(self, subject_ids: Iterable[str]) -> set[str]:
        of = self._ids(subject_ids)
        found = {of[k] for k in self.inner.erased_among(of)}
        legacy = self.inner.erased_among(set(of.values()) - found)
        return found | {s for s in legacy if self._legacy_counts(s)}

    def known_among(self, subject_ids: Iterable[str]) -> set[str]:
        of = self._ids(subject_ids)
        found = {of[k] for k in self.inner.known_among(of)}
        return found | self.inner.known_among(set(of.values()) - found)

    def created_here(self, subject_ids: Iterable[str]) -> set[str]:
        of = self._ids(subject_ids)
        return {of[k] for k in self.inner.created_here(of)}

    def forget_created(self, subject_ids: Iterable[str]) -> None:
        self.inner.forget_created(self._ids(subject_ids))

    def for_tenant(self, tenant: str) -> TenantKeys:
        if tenant != self.tenant:  # a view is one tenant's: a second scope is a bug
            raise InvalidInput(f"Keys of tenant {self.tenant!r} asked for tenant {tenant!r}.")
        return self


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
