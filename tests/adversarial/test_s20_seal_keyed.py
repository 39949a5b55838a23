"""``KeyStore.seal_keyed`` (session 20): ``TenantKeys.seal_many`` hands the store each distinct
key id once with a per-value index, instead of one key id per value that the adapter then
re-indexed. The stored bytes must not change: on random batches (repeated, odd and shared
subjects, two tenants, both key store formats' code path, native and Python), with the OS's
nonces pinned, the new path gives byte for byte what the former one (``seal_many`` of the
expanded scoped ids) gives; a bad subject id, an erased subject or an index out of range is
refused with nothing sealed."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import _aead
from adapters.local_keystore import LocalKeyStore
from core.errors import InvalidInput
from core.ports.keystore import KeyDestroyed, KeyStore, TenantKeys, make_aad

POOL = ["A1", "A2", "é", "𝄞" * 9, "x" * 1024, "acme", " ", "A1 ", "B7", "globex"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalKeyStore]:
    ks = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    yield ks
    ks.close()


def _former(keys: TenantKeys, subjects: list[str], plain: list[bytes], aads: list[bytes]):
    """The path before session 20: one scoped key id per value, re-indexed by the adapter."""
    return keys.inner.seal_many([keys.key_id(s) for s in subjects], plain, aads)


def _pinned(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(os, "urandom", lambda n: rng.randbytes(n))


def _batch(rng: random.Random, tenant: str) -> tuple[list[str], list[bytes], list[bytes]]:
    subjects: list[str] = []
    plain: list[bytes] = []
    aads: list[bytes] = []
    for field in ("counterparty_name", "counterparty_iban")[: rng.randrange(1, 3)]:
        for _ in range(rng.randrange(0, 60)):
            s = rng.choice(POOL)
            subjects.append(s)
            plain.append(rng.randbytes(rng.randrange(0, 40)))
            aads.append(make_aad("payments", field, s, tenant))
    return subjects, plain, aads


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_same_bytes_as_the_former_path(
    store: LocalKeyStore, monkeypatch: pytest.MonkeyPatch, native: bool, seed: int
) -> None:
    if not native:
        monkeypatch.setattr(_aead, "_seal_batch_bound", None)
        monkeypatch.setattr(_aead, "_seal_batch", None)
    rng = random.Random(seed)
    for tenant in ("acme", "globex", "acme"):
        keys = store.for_tenant(tenant)
        for s in POOL:  # keys made first: a new key draws from the pinned OS randomness too
            keys.ensure_key(s)
        for round_ in range(5):
            subjects, plain, aads = _batch(rng, tenant)
            _pinned(monkeypatch, seed * 100 + round_)
            new = keys.seal_many(subjects, plain, aads)
            _pinned(monkeypatch, seed * 100 + round_)
            old = _former(keys, subjects, plain, aads)
            assert new == old
            assert len(new) == len(subjects)
            for s, p, a, c in zip(subjects, plain, aads, new, strict=True):
                assert keys.decrypt(s, c, a) == p


def test_the_port_default_gives_the_same_bytes(
    store: LocalKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store without its own ``seal_keyed`` (the port's default expands to ``seal_many``)."""
    rng = random.Random(7)
    keys = store.for_tenant("acme")
    subjects, plain, aads = _batch(rng, "acme")
    for s in subjects:
        keys.ensure_key(s)
    ids = list(dict.fromkeys(keys.key_id(s) for s in subjects))
    key_of = [ids.index(keys.key_id(s)) for s in subjects]
    _pinned(monkeypatch, 1)
    via_default = KeyStore.seal_keyed(store, ids, key_of, plain, aads)
    _pinned(monkeypatch, 1)
    assert via_default == store.seal_keyed(ids, key_of, plain, aads)
    with pytest.raises(ValueError, match="key index is outside"):
        KeyStore.seal_keyed(store, ids, [*key_of[:-1], -1], plain, aads)


@pytest.mark.parametrize("native", [True, False])
def test_an_index_out_of_range_is_refused(
    store: LocalKeyStore, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    if not native:
        monkeypatch.setattr(_aead, "_seal_batch_bound", None)
        monkeypatch.setattr(_aead, "_seal_batch", None)
    ids = [store.for_tenant("acme").key_id("A1"), store.for_tenant("acme").key_id("A2")]
    for bad in ([0, 2], [-1, 0], [0, -2]):
        with pytest.raises(ValueError, match="key index is outside the 2 subjects"):
            store.seal_keyed(ids, bad, [b"p", b"q"], [b"a", b"b"])


def test_bad_or_erased_subject_seals_nothing(store: LocalKeyStore) -> None:
    keys = store.for_tenant("acme")
    keys.ensure_key("gone")
    keys.destroy("gone")
    with pytest.raises(KeyDestroyed):
        keys.seal_many(["A1", "gone", "A1"], [b"p", b"q", b"r"], [b"a", b"a", b"a"])
    with pytest.raises(InvalidInput):
        keys.seal_many(["A1", "a\x00b"], [b"p", b"q"], [b"a", b"a"])
    with pytest.raises(ValueError, match="as many subjects and AADs"):
        keys.seal_many(["A1", "A2"], [b"p"], [b"a", b"a"])
