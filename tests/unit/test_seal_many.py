"""``KeyStore.seal_many``: the batch seal gives ``encrypt``'s envelope exactly.

Given the nonces it drew, every ciphertext is byte for byte what the one-value ``_aead.seal``
gives with that nonce (AES-256-GCM, the same header and bound AAD); the nonces are all
different; each value decrypts with ``KeyStore.decrypt`` under its own subject and AAD only; a
destroyed subject raises before anything is sealed; the port's default (one ``sealer`` per
subject) agrees."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from adapters import _aead
from adapters.local_keystore import FORMAT_LOCAL, LocalKeyStore
from core.ports.keystore import DecryptionFailed, KeyDestroyed, KeyStore, bind_subject


@pytest.fixture
def keystore(tmp_path: Path) -> Any:
    ks = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    yield ks
    ks.close()


def _batch(rng: random.Random, n: int) -> tuple[list[str], list[bytes], list[bytes]]:
    subjects = [f"s{rng.randrange(7)}" for _ in range(n)]
    plain = [rng.randbytes(rng.choice([0, 1, 15, 16, 17, 300])) for _ in range(n)]
    aads = [rng.choice([b"", b"t|name", b"t|iban"]) for _ in range(n)]
    return subjects, plain, aads


@pytest.mark.parametrize("seed", range(4))
def test_same_bytes_as_seal_given_the_same_nonces(keystore: LocalKeyStore, seed: int) -> None:
    rng = random.Random(seed)
    subjects, plain, aads = _batch(rng, rng.randrange(1, 200))
    keystore.rotate("s3")  # a subject at version 2: the header names it
    sealed = keystore.seal_many(subjects, plain, aads)
    assert len(sealed) == len(plain)
    nonces = [c[5:17] for c in sealed]
    assert len(set(nonces)) == len(nonces)
    for s, p, a, c in zip(subjects, plain, aads, sealed, strict=True):
        version, aead = keystore._newest(s)
        header = bytes([FORMAT_LOCAL]) + version.to_bytes(4, "big")
        nonce = c[5:17]
        assert c == header + nonce + aead.encrypt(nonce, p, bind_subject(s, header, a))
        assert keystore.decrypt(s, c, a) == p


def test_reference_seal_with_a_given_nonce(
    keystore: LocalKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One value, the OS's nonce pinned: ``seal_many`` gives the reference ``_aead.seal``'s
    bytes."""
    version, aead = keystore._newest("s1")
    nonce = bytes(range(12))
    monkeypatch.setattr(os, "urandom", lambda n: nonce[:n])
    one = _aead.seal(FORMAT_LOCAL, version, aead, "s1", b"abc", b"t|name")
    many = _aead.seal_many(FORMAT_LOCAL, keystore._newest, ["s1"], [b"abc"], [b"t|name"])
    assert many == [one]
    assert one[5:17] == nonce


def test_a_ciphertext_only_opens_for_its_subject_and_aad(keystore: LocalKeyStore) -> None:
    sealed = keystore.seal_many(["a", "b"], [b"x", b"y"], [b"t|name", b"t|name"])
    with pytest.raises(DecryptionFailed):
        keystore.decrypt("b", sealed[0], b"t|name")
    with pytest.raises(DecryptionFailed):
        keystore.decrypt("a", sealed[0], b"t|iban")


def test_destroyed_subject_raises_and_seals_nothing(keystore: LocalKeyStore) -> None:
    keystore.ensure_key("gone")
    keystore.destroy("gone")
    with pytest.raises(KeyDestroyed):
        keystore.seal_many(["ok", "gone"], [b"x", b"y"], [b"", b""])


def test_the_port_default_agrees(keystore: LocalKeyStore) -> None:
    rng = random.Random(9)
    subjects, plain, aads = _batch(rng, 50)
    sealed = KeyStore.seal_many(keystore, subjects, plain, aads)  # the default: one sealer each
    for s, p, a, c in zip(subjects, plain, aads, sealed, strict=True):
        assert keystore.decrypt(s, c, a) == p
    assert keystore.seal_many([], [], []) == []
    with pytest.raises(ValueError, match="as many subjects"):
        keystore.seal_many(["a"], [b"x", b"y"], [b""])


def test_warm_subjects_come_from_one_cache_lookup(
    keystore: LocalKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``KeyCache.newest_many`` answers the warm subjects of a batch (``_newest`` is asked only
    for the cold ones), with the version ``rotate`` made newest; a subject destroyed after it
    was warm is purged from the cache, so the batch still raises with nothing sealed."""
    keystore.seal_many(["a", "b"], [b"x", b"y"], [b"", b""])  # a and b warm
    keystore.rotate("b")
    asked: list[str] = []
    newest = keystore._newest

    def counting(subject: str) -> Any:
        asked.append(subject)
        return newest(subject)

    monkeypatch.setattr(keystore, "_newest", counting)
    sealed = keystore.seal_many(["a", "b", "c", "a"], [b"1", b"2", b"3", b"4"], [b""] * 4)
    assert asked == ["c"]
    assert [c[1:5] for c in sealed] == [(1).to_bytes(4, "big"), (2).to_bytes(4, "big")] + [
        (1).to_bytes(4, "big")
    ] * 2
    assert [keystore.decrypt(s, c, b"") for s, c in zip("abca", sealed, strict=True)] == [
        b"1",
        b"2",
        b"3",
        b"4",
    ]
    keystore.destroy("a")
    with pytest.raises(KeyDestroyed):
        keystore.seal_many(["b", "a"], [b"x", b"y"], [b"", b""])


def test_newest_many_is_newest_of_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm, cold, expired, evicted and purged subjects: ``newest_many`` holds exactly the
    subjects ``newest`` answers, with the same (version, key)."""
    clock = [100.0]
    monkeypatch.setattr(_aead.time, "monotonic", lambda: clock[0])
    cache = _aead.KeyCache(size=3, ttl=10.0)
    keys = {s: _aead.DataKey(os.urandom(32)) for s in "abcde"}
    cache.put("a", 1, keys["a"], newest=True)
    clock[0] = 105.0
    cache.put("b", 2, keys["b"], newest=True)
    cache.put("c", 1, keys["c"], newest=False)  # a key, not known to be the newest
    cache.put("d", 4, keys["d"], newest=True)  # evicts a (size 3)
    cache.put("e", 1, keys["e"], newest=True)  # evicts b
    cache.put("b", 3, keys["b"], newest=True)  # evicts c
    cache.purge("e")
    for now in (105.0, 114.9, 115.1):  # d and b expire at 115
        clock[0] = now
        many = cache.newest_many(["a", "b", "c", "d", "e", "z"])
        one = {s: hit for s in "abcdez" if (hit := cache.newest(s)) is not None}
        assert many == one
    clock[0] = 105.0
    assert cache.newest_many("bd") == {"b": (3, keys["b"]), "d": (4, keys["d"])}
