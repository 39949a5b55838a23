"""The native batch seal that binds the AADs itself (hub_native.seal_batch_bound,
native/src/aead_bound.rs) gives the reference's bytes (``bind_subject`` per value, then
``_aead._seal_many_py``) on random batches given the same nonces, including subjects with
multi-byte UTF-8; every value opens with ``AESGCM.decrypt`` under ``bind_subject``'s AAD; unusual
input (a subject without UTF-8, a non-str subject, lengths that disagree...) is left to the
reference (``None``), and ``seal_many`` gives the same bytes with it, with ``seal_batch`` only,
and with the Python reference only."""

from __future__ import annotations

import os
import random

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters import _aead
from adapters._aead import NONCE_LEN, DataKey
from core.ports.keystore import bind_subject
from tests.unit.native_module import native_module

native = native_module()
NAMES = ["alice", "bob", "zoë", "中文-7", "\U0001f600", "", "x" * 300]


def _batch(
    rng: random.Random, n: int, k: int
) -> tuple[list[bytes], list[bytes], list[str], list[int], list[bytes], list[bytes], bytes]:
    raws = [rng.randbytes(32) for _ in range(k)]
    headers = [
        bytes([rng.choice((1, 2))]) + rng.randrange(1 << 32).to_bytes(4, "big") for _ in range(k)
    ]
    subjects = [rng.choice(NAMES) + str(j) for j in range(k)]
    key_of = [rng.randrange(k) for _ in range(n)]
    plain = [rng.randbytes(rng.choice((0, 1, 15, 16, 17, rng.randrange(0, 300)))) for _ in range(n)]
    aads = [rng.randbytes(rng.randrange(0, 90)) for _ in range(n)]
    return raws, headers, subjects, key_of, plain, aads, rng.randbytes(NONCE_LEN * n)


@pytest.mark.parametrize("seed", range(20))
def test_same_bytes_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    raws, headers, subjects, key_of, plain, aads, nonces = _batch(
        rng, rng.randrange(0, 400), rng.randrange(1, 6)
    )
    keys = [(h, DataKey(r)) for h, r in zip(headers, raws, strict=True)]
    full = [bind_subject(subjects[k], headers[k], a) for k, a in zip(key_of, aads, strict=True)]
    fast = native.seal_batch_bound(raws, headers, subjects, key_of, plain, aads, nonces)
    assert fast == _aead._seal_many_py(keys, key_of, plain, full, nonces)
    for i, sealed in enumerate(fast):
        assert sealed[5:17] == nonces[12 * i : 12 * i + 12]
        assert AESGCM(raws[key_of[i]]).decrypt(sealed[5:17], sealed[17:], full[i]) == plain[i]


def test_unusual_input_is_left_to_the_reference() -> None:
    rng = random.Random(7)
    raws, headers, subjects, key_of, plain, aads, nonces = _batch(rng, 5, 2)
    seal = native.seal_batch_bound
    assert seal(raws, headers, subjects, key_of, plain, aads, nonces) is not None
    assert seal(raws, headers, ["a\ud800", subjects[1]], key_of, plain, aads, nonces) is None
    assert seal(raws, headers, [b"a", subjects[1]], key_of, plain, aads, nonces) is None
    assert seal(raws, headers, subjects[:1], key_of, plain, aads, nonces) is None
    assert seal([raws[0][:16], raws[1]], headers, subjects, key_of, plain, aads, nonces) is None
    assert seal(raws, headers, subjects, key_of, plain, [*aads[:4], "aad"], nonces) is None
    assert seal(raws, headers, subjects, [*key_of[:4], 2], plain, aads, nonces) is None
    assert seal(raws, headers, subjects, key_of, plain, aads, nonces[:-1]) is None
    assert seal(raws, headers, subjects, key_of[:4], plain, aads, nonces) is None


def test_seal_many_same_bytes_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {s: os.urandom(32) for s in ("alice", "zoë", "bob")}
    subjects = ["alice", "zoë", "alice", "bob", "zoë", "alice"]
    plain = [os.urandom(i * 7) for i in range(6)]
    aads = (b"a", b"b", b"a", b"c", b"b", b"")  # a tuple: seal_many takes any sequence
    nonces = os.urandom(NONCE_LEN * 6)
    monkeypatch.setattr(os, "urandom", lambda n: nonces[:n])

    def run() -> list[bytes]:
        return _aead.seal_many(1, lambda s: (3, DataKey(raw[s])), subjects, plain, aads)

    bound = run()
    monkeypatch.setattr(_aead, "_seal_batch_bound", None)
    assert run() == bound
    monkeypatch.setattr(_aead, "_seal_batch", None)
    assert run() == bound
    header = bytes([1]) + (3).to_bytes(4, "big")
    for i, s in enumerate(subjects):  # seal()'s envelope and bound AAD
        nonce = nonces[12 * i : 12 * i + 12]
        want = AESGCM(raw[s]).encrypt(nonce, plain[i], bind_subject(s, header, aads[i]))
        assert bound[i] == header + nonce + want


def test_lone_surrogate_subject_raises_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        _aead.seal_many(1, lambda s: (3, DataKey(bytes(32))), ["a\ud800"], [b"x"], [b"a"])


@pytest.mark.parametrize("seed", range(5))
def test_v2_tenant_aads_same_bytes_and_bound_to_their_tenant(seed: int) -> None:
    """What publishing hands the native seal since the tenant is bound (``make_aad`` v2: topic,
    field, subject, tenant): the same bytes as the reference, and each value opens under its
    own tenant's AAD only (not another tenant's, not the tenant-less v1)."""
    from core.ports.keystore import make_aad, make_aad_v1

    rng = random.Random(100 + seed)
    raws, headers, subjects, key_of, plain, _, nonces = _batch(rng, 200, 4)
    tenants = ["acme", "globex", "zoë-gmbh", "中文"]
    owner = [rng.choice(tenants) for _ in key_of]
    fields = [rng.choice(("email", "customer_name")) for _ in key_of]
    aads = [
        make_aad("accounts", f, subjects[k], t)
        for k, f, t in zip(key_of, fields, owner, strict=True)
    ]
    keys = [(h, DataKey(r)) for h, r in zip(headers, raws, strict=True)]
    full = [bind_subject(subjects[k], headers[k], a) for k, a in zip(key_of, aads, strict=True)]
    fast = native.seal_batch_bound(raws, headers, subjects, key_of, plain, aads, nonces)
    assert fast == _aead._seal_many_py(keys, key_of, plain, full, nonces)
    for i, sealed in enumerate(fast):
        aead, s, h = AESGCM(raws[key_of[i]]), subjects[key_of[i]], headers[key_of[i]]
        assert aead.decrypt(sealed[5:17], sealed[17:], full[i]) == plain[i]
        field = fields[i]
        other = next(t for t in tenants if t != owner[i])
        for wrong in (make_aad("accounts", field, s, other), make_aad_v1("accounts", field, s)):
            with pytest.raises(InvalidTag):
                aead.decrypt(sealed[5:17], sealed[17:], bind_subject(s, h, wrong))
