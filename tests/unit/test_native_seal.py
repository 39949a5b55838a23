"""The native batch seal (hub_native.seal_batch, native/src/aead_seal.rs) gives the pure-Python
reference's bytes (``_aead._seal_many_py``: one ``AESGCM.encrypt`` per value) on random batches
given the same nonces, every value opens with ``AESGCM.decrypt``, and unusual input (a key that
is not 32 bytes, a non-bytes value, lengths that disagree, an index out of range) is left to the
reference (``None``)."""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters import _aead
from adapters._aead import NONCE_LEN, DataKey
from core.ports.keystore import bind_subject
from tests.unit.native_module import native_module

native = native_module()


def _batch(
    rng: random.Random, n: int, k: int
) -> tuple[list[bytes], list[bytes], list[int], list[bytes], list[bytes], bytes]:
    raws = [rng.randbytes(32) for _ in range(k)]
    headers = [
        bytes([rng.choice((1, 2))]) + rng.randrange(1 << 32).to_bytes(4, "big") for _ in range(k)
    ]
    key_of = [rng.randrange(k) for _ in range(n)]
    plain = [rng.randbytes(rng.choice((0, 1, 15, 16, 17, rng.randrange(0, 300)))) for _ in range(n)]
    aads = [rng.randbytes(rng.randrange(0, 90)) for _ in range(n)]
    return raws, headers, key_of, plain, aads, rng.randbytes(NONCE_LEN * n)


@pytest.mark.parametrize("seed", range(12))
def test_same_bytes_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    raws, headers, key_of, plain, aads, nonces = _batch(
        rng, rng.randrange(0, 400), rng.randrange(1, 6)
    )
    keys = [(h, DataKey(r)) for h, r in zip(headers, raws, strict=True)]
    fast = native.seal_batch(raws, headers, key_of, plain, aads, nonces)
    assert fast == _aead._seal_many_py(keys, key_of, plain, aads, nonces)
    for i, sealed in enumerate(fast):  # and each opens with the library's own AES-GCM
        head = headers[key_of[i]]
        assert sealed[:5] == head and sealed[5:17] == nonces[12 * i : 12 * i + 12]
        assert AESGCM(raws[key_of[i]]).decrypt(sealed[5:17], sealed[17:], aads[i]) == plain[i]


def test_unusual_input_is_left_to_the_reference() -> None:
    rng = random.Random(7)
    raws, headers, key_of, plain, aads, nonces = _batch(rng, 5, 2)
    seal = native.seal_batch
    assert seal(raws, headers, key_of, plain, aads, nonces) is not None
    assert seal([raws[0][:16], raws[1]], headers, key_of, plain, aads, nonces) is None
    assert seal(raws, headers, key_of, [*plain[:4], bytearray(b"x")], aads, nonces) is None
    assert seal(raws, headers, key_of, plain, [*aads[:4], "aad"], nonces) is None
    assert seal(raws, headers, [*key_of[:4], 2], plain, aads, nonces) is None
    assert seal(raws, headers, [*key_of[:4], -1], plain, aads, nonces) is None
    assert seal(raws, headers, key_of, plain, aads, nonces[:-1]) is None
    assert seal(raws, headers[:1], key_of, plain, aads, nonces) is None
    assert seal(raws, headers, key_of[:4], plain, aads, nonces) is None


def test_seal_many_takes_the_native_path_for_data_keys_and_the_reference_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same envelope either way: given the same nonces, ``seal_many`` over ``DataKey``s
    (native) and over plain ``AESGCM``s (reference) give the same bytes."""
    raw = {"alice": os.urandom(32), "bob": os.urandom(32)}
    subjects = ["alice", "bob", "alice", "alice", "bob"]
    plain = [os.urandom(i * 7) for i in range(5)]
    aads = [b"a", b"b", b"a", b"c", b"b"]
    nonces = os.urandom(NONCE_LEN * 5)
    monkeypatch.setattr(_aead.os, "urandom", lambda n: nonces[:n])
    fast = _aead.seal_many(1, lambda s: (3, DataKey(raw[s])), subjects, plain, aads)
    slow = _aead.seal_many(1, lambda s: (3, AESGCM(raw[s])), subjects, plain, aads)
    assert fast == slow
    header = bytes([1]) + (3).to_bytes(4, "big")
    for i, s in enumerate(subjects):  # seal()'s envelope and bound AAD
        full = bind_subject(s, header, aads[i])
        nonce = nonces[12 * i : 12 * i + 12]
        assert fast[i] == header + nonce + AESGCM(raw[s]).encrypt(nonce, plain[i], full)
