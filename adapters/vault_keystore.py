"""The distributed KeyStore: Vault / OpenBao transit through hvac.

One transit key per data subject, ``hub-subject-<digest>`` (``digest``: the first 40 hex digits of
the SHA-256 of the labelled subject id, so subject ids never appear in the server's key names).

Design: transit-derived data keys. The data key of (subject, version N) is
``HMAC-SHA256(transit key version N, "hub.datakey.v1" || subject)``, computed by the server's
``transit/hmac`` endpoint (the transit key never leaves the server; HMAC is a PRF, so this is the
HKDF-Expand construction with the transit key as PRK). The hub then encrypts locally with
AES-256-GCM, so a warm encrypt or decrypt costs no network round trip, and ciphertexts have the
same compact envelope as the local keyring's, with format byte 0x02::

    byte 0       0x02 (format: transit-derived key, AES-256-GCM)
    bytes 1-4    transit key version, unsigned big-endian
    bytes 5-16   96-bit random nonce
    bytes 17-    AES-256-GCM ciphertext followed by its 16-byte tag
    AAD          bind_subject(subject, bytes 0-4, caller AAD)  (hub.ports.keystore)

Compared with transit ``datakey`` (a random data key wrapped by the transit key), nothing needs
to be stored beside the ciphertext (no 90-byte wrapped key per value) and the data key is never
at rest anywhere; compared with transit ``encrypt`` per value, there is one round trip per
(subject, version) per process instead of one per field.

Rotation is ``transit/keys/<name>/rotate``. Destroy: 1. create the tombstone key
``hub-erased-<digest>`` (so the subject stays erased); 2. allow deletion and delete the subject's
transit key, every version; 3. purge this process's derived keys. Other processes stop within
``cache_ttl_s``. A first ``ensure_key`` creates the key, then checks for a tombstone (and deletes
what it created if there is one), so a race with ``destroy`` cannot leave a live key.

The token needs: create/read/update/delete on ``<mount>/keys/hub-*``, update on
``<mount>/keys/hub-*/config``, ``<mount>/keys/hub-*/rotate`` and ``<mount>/hmac/hub-*``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import hvac
import requests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hvac import exceptions as hvac_errors

from adapters import _aead
from adapters._aead import CreatedKeys, DataKey, KeyCache, open_sealed, parse_header, seal
from core.errors import ConfigError
from core.ports.keystore import (
    DecryptionFailed,
    KeyDestroyed,
    KeyRef,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailable,
    KeyUnknown,
    check_key_id,
    check_subject,
    parse_scoped,
)

FORMAT_TRANSIT = 0x02
_BACKEND_ERRORS = (hvac_errors.VaultError, requests.exceptions.RequestException)
_DERIVE_LABEL = b"hub.datakey.v1\x00"
_PAGE = 16  # names a paginated LIST of transit keys answers at a time (``_listed``)


def _digest(subject_id: str) -> str:
    return hashlib.sha256(b"hub.subject.v1\x00" + subject_id.encode()).hexdigest()[:40]


class _NoKey(Exception):
    """The subject's transit key does not exist (internal signal)."""


class VaultKeyStore(KeyStore):
    """Per-subject transit keys on a Vault or OpenBao server."""

    def __init__(
        self,
        url: str,
        token: str,
        mount: str = "transit",
        *,
        timeout_s: float = 10.0,
        cache_size: int = 10_000,
        cache_ttl_s: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        if not url or not token:
            raise ConfigError(
                "The Vault KeyStore needs a server URL and a token: set HUB_VAULT_URL and "
                "HUB_VAULT_TOKEN (for the local OpenBao: infra/openbao.sh start)."
            )
        self.url = url
        self.mount = mount
        self._token = token
        self._timeout = timeout_s
        self._verify = verify
        self._local = threading.local()
        self._cache = KeyCache(cache_size, cache_ttl_s)
        self._created = CreatedKeys()  # created_here

    # -- plumbing -----------------------------------------------------------------------------
    def _client(self) -> hvac.Client:
        """One hvac client per thread (a requests Session is not meant to be shared)."""
        client: hvac.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = hvac.Client(
                url=self.url, token=self._token, timeout=self._timeout, verify=self._verify
            )
            self._local.client = client
        return client

    def _fail(self, exc: Exception, doing: str) -> NoReturn:
        """Translate an hvac / requests error into the hub's tree."""
        if isinstance(exc, requests.exceptions.RequestException | hvac_errors.VaultDown):
            raise KeyStoreUnavailable(
                f"The Vault server at {self.url} did not answer while {doing}: {exc}. Is it "
                "running (infra/openbao.sh status) and HUB_VAULT_URL right?"
            ) from exc
        if isinstance(exc, hvac_errors.Forbidden | hvac_errors.Unauthorized):
            raise KeyStoreError(
                f"The Vault server at {self.url} refused the token while {doing}: {exc}. Give "
                f"HUB_VAULT_TOKEN a policy allowing {self.mount}/keys/hub-* and "
                f"{self.mount}/hmac/hub-*."
            ) from exc
        if isinstance(exc, hvac_errors.InternalServerError | hvac_errors.RateLimitExceeded):
            raise KeyStoreUnavailable(f"The Vault server failed while {doing}: {exc}.") from exc
        raise KeyStoreError(f"Vault refused {doing}: {exc}.") from exc

    def _transit(self) -> Any:
        return self._client().secrets.transit

    def _read_key(self, name: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = self._transit().read_key(name, mount_point=self.mount)["data"]
            return data
        except hvac_errors.InvalidPath:
            return None
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"reading transit key {name}")

    def _derive(self, subject_id: str, version: int | None) -> tuple[int, DataKey]:
        """The subject's data key of ``version`` (newest if None), derived by the server."""
        name = f"hub-subject-{_digest(subject_id)}"
        data = base64.b64encode(_DERIVE_LABEL + subject_id.encode()).decode()
        try:
            out = self._transit().generate_hmac(
                name,
                data,
                key_version=version,
                algorithm="sha2-256",
                mount_point=self.mount,
            )
        except hvac_errors.InvalidRequest as exc:
            text = str(exc)
            if "not found" in text:
                raise _NoKey(name) from exc
            if "version" in text:
                raise DecryptionFailed(
                    f"The ciphertext names key version {version}, which data subject "
                    f"{subject_id!r} does not have: it was changed or comes from another server."
                ) from exc
            self._fail(exc, f"deriving the data key of {name}")
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"deriving the data key of {name}")
        token = str(out["data"]["hmac"])  # "vault:v<N>:<base64>"
        try:
            _, tag, b64 = token.split(":", 2)
            got_version = int(tag.removeprefix("v"))
            raw = base64.b64decode(b64)
        except ValueError as exc:
            raise KeyStoreError(f"Vault answered an unexpected HMAC {token[:20]!r}.") from exc
        if len(raw) != 32:
            raise KeyStoreError(f"Vault answered a {len(raw)}-byte HMAC, not 32 bytes.")
        return got_version, DataKey(raw)

    def _tombstoned(self, digest: str) -> bool:
        return self._read_key(f"hub-erased-{digest}") is not None

    def _destroyed_error(self, subject_id: str) -> KeyDestroyed:
        return KeyDestroyed(
            f"The key of data subject {subject_id!r} was destroyed (erased): its data cannot be "
            "read, and no new data can be encrypted for it."
        )

    def _note_scoped(self, key_id: str) -> None:
        """A marker key ``hub-tenant-<subject digest>-<tenant hex>`` per scoped key made or
        destroyed, so that ``key_tenants`` lists the tenants of a subject (names carry digests
        and tenant names, never subject ids)."""
        pair = parse_scoped(key_id)
        if pair is None:
            return
        tenant, subject_id = pair
        name = f"hub-tenant-{_digest(subject_id)}-{tenant.encode().hex()}"
        try:
            self._transit().create_key(name, key_type="aes256-gcm96", mount_point=self.mount)
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"creating the tenant marker {name}")

    def key_tenants(self, subject_id: str) -> frozenset[str]:
        """The tenants of the subject's markers, listed from its own prefix (``_listed``):
        a ``tenant.all`` erasure used to list every transit key of the mount, every tenant's
        markers (their names carry tenant names) included, once per erased subject."""
        prefix = f"hub-tenant-{_digest(check_subject(subject_id))}-"
        out = set()
        for n in self._listed(prefix):
            try:
                out.add(bytes.fromhex(n[len(prefix) :]).decode())
            except ValueError:
                continue
        return frozenset(out)

    def _listed(self, prefix: str) -> list[str]:
        """Names of the mount's transit keys that start with ``prefix``, listed from ``prefix``
        on in pages of ``_PAGE`` (OpenBao's paginated LIST: ``after``, ``limit``; the server
        returns names in order), so the server answers the prefix's names and at most one page
        of others (the one that ends the range), whatever the mount holds. A server that
        ignores the parameters (HashiCorp Vault has no paginated lists) answers every name in
        one page; that is recognised (more than a page, or a name not after ``after``) and
        filtered here, as before: the only way Vault lists transit keys."""
        out: list[str] = []
        after = prefix
        while True:
            try:
                listed = self._client().adapter.request(
                    "LIST", f"/v1/{self.mount}/keys", params={"after": after, "limit": _PAGE}
                )
            except hvac_errors.InvalidPath:
                return out
            except _BACKEND_ERRORS as exc:
                self._fail(exc, f"listing the transit keys of {self.mount} from {prefix}")
            names = [str(n) for n in ((listed or {}).get("data") or {}).get("keys") or []]
            if len(names) > _PAGE or any(n <= after for n in names):  # not paginated
                return sorted({*out, *(n for n in names if n.startswith(prefix))})
            for n in names:
                if not n.startswith(prefix):
                    return out
                out.append(n)
            if len(names) < _PAGE:
                return out
            after = names[-1]

    def _create(self, subject_id: str) -> None:
        """Create the subject's key unless it is tombstoned (race-safe with ``destroy``)."""
        self._note_scoped(subject_id)
        digest = _digest(subject_id)
        name = f"hub-subject-{digest}"
        # 1. create (an upsert: a racing creator's key is kept);
        try:
            self._transit().create_key(name, key_type="aes256-gcm96", mount_point=self.mount)
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"creating transit key {name}")
        # 2. then look for a tombstone: a destroy that wrote it before our check is honoured by
        #    deleting what we created; one that writes it later deletes the key itself.
        if self._tombstoned(digest):
            self._delete(name)
            raise self._destroyed_error(subject_id)

    def _delete(self, name: str) -> None:
        try:
            self._transit().update_key_configuration(
                name, deletion_allowed=True, mount_point=self.mount
            )
            self._transit().delete_key(name, mount_point=self.mount)
        except hvac_errors.InvalidRequest as exc:
            if "no existing key" in str(exc) or "not found" in str(exc):
                return  # already gone: destroy is idempotent
            self._fail(exc, f"deleting transit key {name}")
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"deleting transit key {name}")

    def _newest(self, subject_id: str) -> tuple[int, AESGCM | DataKey]:
        hit = self._cache.newest(subject_id)
        if hit is not None:
            return hit
        check_key_id(subject_id)
        try:
            version, aead = self._derive(subject_id, None)
        except _NoKey:
            if self._tombstoned(_digest(subject_id)):
                raise self._destroyed_error(subject_id) from None
            self._create(subject_id)
            try:
                version, aead = self._derive(subject_id, None)
            except _NoKey:
                raise self._destroyed_error(subject_id) from None  # destroyed meanwhile
            self._created.add(subject_id)  # an upsert: a racing creator's key counts too
        self._cache.put(subject_id, version, aead, newest=True)
        return version, aead

    # -- the port -----------------------------------------------------------------------------
    def ensure_key(self, subject_id: str) -> KeyRef:
        version, _ = self._newest(subject_id)
        return KeyRef(subject_id, version)

    def encrypt(self, subject_id: str, plaintext: bytes, aad: bytes) -> bytes:
        version, aead = self._newest(subject_id)
        return seal(FORMAT_TRANSIT, version, aead, subject_id, plaintext, aad)

    def sealer(self, subject_id: str) -> Callable[[bytes, bytes], bytes]:
        version, aead = self._newest(subject_id)
        return _aead.sealer(FORMAT_TRANSIT, version, aead, subject_id)

    def seal_many(
        self, subject_ids: Sequence[str], plaintexts: Sequence[bytes], aads: Sequence[bytes]
    ) -> list[bytes]:
        return _aead.seal_many(
            FORMAT_TRANSIT, self._newest, subject_ids, plaintexts, aads, self._cache.newest_many
        )

    def seal_keyed(
        self,
        subject_ids: list[str],
        key_of: list[int],
        plaintexts: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:
        return _aead.seal_keyed(
            FORMAT_TRANSIT,
            self._newest,
            subject_ids,
            key_of,
            plaintexts,
            aads,
            self._cache.newest_many,
        )

    def decrypt(self, subject_id: str, ciphertext: bytes, aad: bytes) -> bytes:
        version = parse_header(FORMAT_TRANSIT, ciphertext, "transit-derived")
        aead = self._cache.get(subject_id, version)
        if aead is None:
            check_key_id(subject_id)
            if version < 1:
                raise DecryptionFailed(f"The ciphertext names key version {version}; none is < 1.")
            try:
                _, aead = self._derive(subject_id, version)
            except _NoKey:
                # A ciphertext exists, so its key once did: a missing key is a destroyed one
                # (``KeyUnknown`` when never made here: TenantKeys then tries the legacy key).
                if self._tombstoned(_digest(subject_id)):
                    raise self._destroyed_error(subject_id) from None
                raise KeyUnknown(
                    f"Data subject {subject_id!r} has no key on {self.url}: its data cannot be "
                    "read (erased, or encrypted by another server)."
                ) from None
            self._cache.put(subject_id, version, aead, newest=False)
        return open_sealed(aead, subject_id, ciphertext, aad)

    def rotate(self, subject_id: str) -> KeyRef:
        self._newest(subject_id)  # creates the key, or raises KeyDestroyed
        name = f"hub-subject-{_digest(subject_id)}"
        try:
            self._transit().rotate_key(name, mount_point=self.mount)
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"rotating transit key {name}")
        self._cache.purge(subject_id)
        version, _ = self._newest(subject_id)
        return KeyRef(subject_id, version)

    def destroy(self, subject_id: str) -> None:
        digest = _digest(check_key_id(subject_id))
        self._note_scoped(subject_id)
        tomb = f"hub-erased-{digest}"
        # 1. tombstone first, so no creator can bring the subject back;
        try:
            self._transit().create_key(tomb, key_type="aes256-gcm96", mount_point=self.mount)
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"writing the erasure tombstone {tomb}")
        # 2. delete every version of the subject's transit key on the server;
        self._delete(f"hub-subject-{digest}")
        # 3. forget the derived keys this process holds.
        self._cache.purge(subject_id)

    def erased(self, subject_id: str) -> bool:
        return self._read_key(f"hub-erased-{_digest(check_key_id(subject_id))}") is not None

    def created_here(self, subject_ids: Iterable[str]) -> set[str]:
        return self._created.among(subject_ids)

    def forget_created(self, subject_ids: Iterable[str]) -> None:
        self._created.forget(subject_ids)

    def exists(self, subject_id: str) -> bool:
        return self._read_key(f"hub-subject-{_digest(check_key_id(subject_id))}") is not None

    def key_versions(self) -> dict[str, int]:
        """Every hub key in this mount by name with its newest version: ``hub-subject-*`` data
        subject keys, and ``hub-erased-*`` erasure tombstones (version 0: only their presence
        matters). Names carry digests, never subject ids. What a backup records, since the keys
        themselves never leave Vault (one mount per hub: other hubs' keys would be listed)."""
        try:
            listed = self._transit().list_keys(mount_point=self.mount)
        except hvac_errors.InvalidPath:
            return {}  # no key at all (or no such mount)
        except _BACKEND_ERRORS as exc:
            self._fail(exc, f"listing the transit keys of {self.mount}")
        names = [
            str(n)
            for n in (listed or {}).get("data", {}).get("keys", [])
            if str(n).startswith(("hub-subject-", "hub-erased-"))
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:  # one round trip per key
            found = list(pool.map(self._read_key, names))
        return {
            name: 0 if name.startswith("hub-erased-") else int(data["latest_version"])
            for name, data in zip(names, found, strict=True)
            if data is not None
        }

    def close(self) -> None:
        client: hvac.Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.adapter.close()
