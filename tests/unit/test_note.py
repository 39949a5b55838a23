"""audit.note: C2SP signed notes and tlog checkpoints, with golang.org/x/mod/sumdb/note vectors."""

from __future__ import annotations

import base64
import hashlib

import pytest

from audit.errors import (
    AmbiguousKeyError,
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedKeyError,
    MalformedNoteError,
    NoteError,
    UnknownKeyError,
)
from audit.note import (
    GENESIS_PREV,
    Checkpoint,
    SignerKey,
    checkpoint_hash,
    format_checkpoint,
    generate_key,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

# Vectors from golang.org/x/mod sumdb/note/note_test.go (TestNewVerifier, TestNewSigner, TestSign,
# TestOpen) and the package documentation example in sumdb/note/note.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb"
    "6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33W"
    "Wd1RvMc+QQ=\n"
)

# The example checkpoint of c2sp.org/tlog-checkpoint (its public key is not published, so only
# its syntax is checked here).
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


@pytest.fixture(scope="module")
def peter() -> SignerKey:
    return parse_signer_key(PETER_SKEY)


# --------------------------------------------------------------------------------------------
# Keys


def test_go_vector_keys(peter: SignerKey) -> None:
    assert peter.name == "PeterNeumann"
    assert peter.key_id == 0xC74F20A3
    assert peter.verifier.encode() == PETER_VKEY
    assert peter.encode() == PETER_SKEY
    assert parse_verifier_key(PETER_VKEY) == peter.verifier
    enoch = parse_verifier_key(ENOCH_VKEY)
    assert enoch.key_id == 0xAF0CFE78 == key_id("EnochRoot", enoch.public_key)
    assert "redacted" in repr(peter) and PETER_SKEY.rsplit("+", 1)[1] not in repr(peter)


def test_go_vector_verifier_key_manglings_rejected() -> None:
    # As TestNewVerifier: every proper substring and every single-byte increment MUST fail.
    b = PETER_VKEY
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(MalformedKeyError):
                    parse_verifier_key(b[i:j])
    for i in range(len(b)):
        mangled = b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :]
        with pytest.raises(MalformedKeyError):
            parse_verifier_key(mangled)
    # Wrong key length with adjusted id; unknown algorithm with adjusted id.
    with pytest.raises(MalformedKeyError):
        parse_verifier_key(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(MalformedKeyError):
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_go_vector_signer_key_manglings_rejected() -> None:
    b = PETER_SKEY
    for i in range(len(b)):
        mangled = b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :]
        with pytest.raises(MalformedKeyError):
            parse_signer_key(mangled)
    for cut in range(1, len(b)):
        with pytest.raises(MalformedKeyError):
            parse_signer_key(b[:cut])


def test_generate_key_round_trip() -> None:
    k = generate_key("example.com/hub")
    assert parse_signer_key(k.encode()).verifier == k.verifier
    assert parse_verifier_key(k.verifier.encode()) == k.verifier
    with pytest.raises(MalformedKeyError):
        generate_key("bad name")
    with pytest.raises(MalformedKeyError):
        generate_key("a+b")
    with pytest.raises(MalformedKeyError):
        generate_key("")


def test_a_key_signs_as_a_freshly_loaded_one_every_time() -> None:
    """The loaded key is kept (not rebuilt from the seed per signature): Ed25519 is
    deterministic, so every signature is the one a freshly loaded key gives, and two keys of
    one seed and name are still equal and hash alike."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = generate_key("example.com/hub")
    for i in range(3):
        msg = f"checkpoint {i}\n".encode()
        assert k.sign(msg) == Ed25519PrivateKey.from_private_bytes(k.seed).sign(msg)
    again = parse_signer_key(k.encode())
    assert again == k and hash(again) == hash(k)
    assert generate_key("example.com/hub") != k


# --------------------------------------------------------------------------------------------
# Notes


def test_go_vector_sign(peter: SignerKey) -> None:
    assert sign_note(TEXT, peter) == (TEXT + "\n" + PETER_SIG).encode()
    with pytest.raises(MalformedNoteError):
        sign_note("abc", peter)


def test_go_vector_open() -> None:
    peter_v = parse_verifier_key(PETER_VKEY)
    enoch_v = parse_verifier_key(ENOCH_VKEY)
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()

    n = open_note(msg, [peter_v])
    assert n.text == TEXT
    assert [(s.name, s.key_id) for s in n.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in n.unverified] == [("EnochRoot", 0xAF0CFE78)]

    n = open_note(msg, [peter_v, enoch_v])
    assert [s.name for s in n.verified] == ["PeterNeumann", "EnochRoot"]
    assert n.unverified == ()

    with pytest.raises(UnknownKeyError):
        open_note(msg, [])
    with pytest.raises(AmbiguousKeyError):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch_v, peter_v, enoch_v])
    # An unused duplicate is harmless.
    open_note((TEXT + "\n" + PETER_SIG).encode(), [enoch_v, peter_v, enoch_v])
    with pytest.raises(MalformedNoteError):
        open_note((TEXT + "\n" + PETER_SIG * 101).encode(), [peter_v])
    with pytest.raises(InvalidSignatureError):
        open_note((TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]).encode(), [peter_v])
    # Duplicated verified and unverified signatures are dropped, not rejected.
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    n = open_note(
        (TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 3 + enoch_abcd).encode(),
        [peter_v],
    )
    assert len(n.verified) == 1
    assert len(n.unverified) == 2


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
        "qfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + "— PeterNeumann\n",
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # fewer than 5 signature bytes
        TEXT + "\n" + "— PeterNeumann not base64!\n",
        TEXT + "\n" + "- PeterNeumann x08g\n",  # hyphen, not em dash
    ],
)
def test_go_vector_malformed_notes(msg: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(msg.encode(), [parse_verifier_key(PETER_VKEY)])


def test_invalid_utf8_is_malformed() -> None:
    msg = b"\xff" + (TEXT + "\n" + PETER_SIG).encode()
    with pytest.raises(MalformedNoteError):
        open_note(msg, [parse_verifier_key(PETER_VKEY)])


def test_round_trip_and_tampering() -> None:
    k = generate_key("example.com/hub")
    other = generate_key("example.com/hub")  # same name, different key: different key id
    text = "line one\nline two\n"
    msg = sign_note(text, k)
    assert open_note(msg, [k.verifier]).text == text

    # Tampered body: one character changed.
    with pytest.raises(InvalidSignatureError):
        open_note(msg.replace(b"line two", b"line tw0"), [k.verifier])
    # Every bit of the signature bytes (after the key id) flipped in turn.
    head, b64 = msg.decode().rsplit(" ", 1)
    raw = base64.b64decode(b64)
    for bit in range(32, len(raw) * 8, 7):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        tampered = f"{head} {base64.b64encode(bytes(bad)).decode()}\n".encode()
        with pytest.raises(InvalidSignatureError):
            open_note(tampered, [k.verifier])
    # Key name changed on the signature line: no longer a trusted key.
    with pytest.raises(UnknownKeyError):
        open_note(msg.replace(b"example.com/hub ", b"example.com/hux "), [k.verifier])
    # Key id changed: also unknown.
    bad = bytearray(raw)
    bad[0] ^= 1
    with pytest.raises(UnknownKeyError):
        open_note(f"{head} {base64.b64encode(bytes(bad)).decode()}\n".encode(), [k.verifier])
    # Signed by another key with the same name: unknown, and its key id is reported.
    with pytest.raises(UnknownKeyError, match=f"{other.key_id:08x}"):
        open_note(sign_note(text, other), [k.verifier])
    # Signed by two keys: one trusted is enough, the other is reported as unverified.
    both = sign_note(text, k, other)
    n = open_note(both, [k.verifier])
    assert len(n.verified) == 1 and len(n.unverified) == 1


def test_all_errors_are_note_errors() -> None:
    for exc in (
        AmbiguousKeyError,
        InvalidSignatureError,
        MalformedCheckpointError,
        MalformedKeyError,
        MalformedNoteError,
        UnknownKeyError,
    ):
        assert issubclass(exc, NoteError)


# --------------------------------------------------------------------------------------------
# Checkpoints


def test_spec_example_checkpoint_parses() -> None:
    with pytest.raises(UnknownKeyError) as info:
        open_note(SPEC_CHECKPOINT.encode(), [])
    assert "example.com/behind-the-sofa" in str(info.value)
    text = SPEC_CHECKPOINT.split("\n\n")[0] + "\n"
    cp = parse_checkpoint(text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.prev_hash is None and cp.time_micros is None
    assert cp.text() == text


def test_checkpoint_round_trip_with_hub_extensions() -> None:
    k = generate_key("example.com/hub")
    root = hashlib.sha256(b"root").digest()
    genesis = sign_note(
        format_checkpoint(
            "example.com/hub",
            0,
            hashlib.sha256(b"").digest(),
            prev=GENESIS_PREV,
            time_micros=1_700_000_000_000_000,
        ),
        k,
    )
    text = format_checkpoint(
        "example.com/hub",
        42,
        root,
        prev=checkpoint_hash(genesis),
        time_micros=1_700_000_000_123_456,
    )
    assert text.splitlines()[3:] == [
        f"prev {base64.b64encode(checkpoint_hash(genesis)).decode()}",
        "time 1700000000123456",
    ]
    msg = sign_note(text, k)
    cp, note = open_checkpoint(msg, [k.verifier])
    assert cp == Checkpoint("example.com/hub", 42, root, tuple(text.splitlines()[3:]))
    assert cp.prev_hash == checkpoint_hash(genesis)
    assert cp.time_micros == 1_700_000_000_123_456
    assert note.verified[0].name == "example.com/hub"
    assert parse_checkpoint(cp.text()) == cp


def test_checkpoint_hash_ignores_signature_lines() -> None:
    k1, k2 = generate_key("log.example"), generate_key("witness.example")
    text = format_checkpoint("log.example", 3, bytes(32))
    want = hashlib.sha256(text.encode()).digest()
    assert checkpoint_hash(text.encode()) == want
    assert checkpoint_hash(sign_note(text, k1)) == want
    assert checkpoint_hash(sign_note(text, k1, k2)) == want  # a cosignature keeps the chain
    with pytest.raises(MalformedCheckpointError):
        checkpoint_hash(b"no newline")


@pytest.mark.parametrize(
    "text",
    [
        "origin\n10\n",  # no root
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
        "\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        "origin\n010\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1e3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n１２\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # non-ASCII digits
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2=\n",  # 31 bytes
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # no padding
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\next\n",  # empty extension
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nprev AAAA\n",  # bad prev
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\ntime 01\n",  # bad time
        "origin\n10\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\ntime -5\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(MalformedCheckpointError):
        parse_checkpoint(text)


def test_open_checkpoint_with_malformed_body_is_rejected() -> None:
    k = generate_key("log.example")
    msg = sign_note("log.example\nnot a number\nAAAA\n", k)
    with pytest.raises(MalformedCheckpointError):
        open_checkpoint(msg, [k.verifier])


def test_format_checkpoint_validates() -> None:
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint("", 1, bytes(32))
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint("o", -1, bytes(32))
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint("o", 1, bytes(31))
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint("o", 1, bytes(32), [""])
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint("o", 1, bytes(32), prev=bytes(5))
    assert parse_checkpoint(format_checkpoint("o", 0, bytes(32), ["x y"])).extensions == ("x y",)
