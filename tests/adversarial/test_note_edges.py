"""Signed notes and checkpoints an attacker shapes: the verifier (``audit.note``, used by ``hub
ledger verify``, the witness and ``hub-verify``) fails closed with a clear ``AuditError``.

- A second signature line by the trusted key that does not verify, after a good one: golang's
  ``note.Open`` verifies every signature by a known key before dropping repeats; a verifier
  that skipped the repeat accepted a note carrying a forged signature by the pinned key (and
  two byte-different notes for one checkpoint, which a byte-compare with a witness copy reads
  as a fork or a rewrite).
- A tree size or time of thousands of digits: Python's ``int()`` refuses more than 4300 digits
  with a bare ``ValueError``, which ``hub-verify bundle`` (a pack built with its own key, so no
  key is needed) let escape as a traceback instead of ``INVALID``; a size past 2^64 - 1 is no
  C2SP tree size either."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest

from audit.errors import AuditError, InvalidSignatureError, MalformedCheckpointError
from audit.note import format_checkpoint, generate_key, open_checkpoint, open_note, sign_note
from audit.verify import main as hub_verify

KEY = generate_key("hub.example/log")
ROOT_B64 = base64.b64encode(b"\x00" * 32).decode()


def _with_second_signature(note: bytes, sig: bytes) -> bytes:
    line = note.decode().rstrip("\n").rsplit("\n", 1)[1]
    name, b64 = line[2:].split(" ")
    key_id = base64.b64decode(b64)[:4]
    return note + f"— {name} {base64.b64encode(key_id + sig).decode()}\n".encode()


def test_a_forged_second_signature_by_the_trusted_key_is_refused() -> None:
    note = sign_note(format_checkpoint("hub.example/log", 5, b"\x00" * 32), KEY)
    open_note(note, [KEY.verifier])
    forged = _with_second_signature(note, bytes(64))
    with pytest.raises(InvalidSignatureError, match="does not verify"):
        open_note(forged, [KEY.verifier])


def test_the_same_good_signature_twice_still_opens() -> None:
    """A repeated identical signature verifies both times: dropped as a repeat, not refused."""
    note = sign_note(format_checkpoint("hub.example/log", 5, b"\x00" * 32), KEY)
    sig_line = note.decode().rstrip("\n").rsplit("\n", 1)[1] + "\n"
    got = open_note(note + sig_line.encode(), [KEY.verifier])
    assert len(got.verified) == 1


@pytest.mark.parametrize(
    "size", ["9" * 5000, str(1 << 64), "1" + "0" * 30], ids=["5000-digits", "2^64", "10^30"]
)
def test_a_tree_size_past_uint64_is_a_malformed_checkpoint(size: str) -> None:
    note = sign_note(f"hub.example/log\n{size}\n{ROOT_B64}\n", KEY)
    with pytest.raises(MalformedCheckpointError, match="tree size"):
        open_checkpoint(note, [KEY.verifier])


def test_a_time_of_thousands_of_digits_is_a_malformed_checkpoint() -> None:
    note = sign_note(f"hub.example/log\n5\n{ROOT_B64}\ntime {'1' * 5000}\n", KEY)
    with pytest.raises(MalformedCheckpointError, match="time"):
        open_checkpoint(note, [KEY.verifier])


def test_the_largest_uint64_size_still_parses() -> None:
    size = (1 << 64) - 1
    cp, _ = open_checkpoint(
        sign_note(f"hub.example/log\n{size}\n{ROOT_B64}\n", KEY), [KEY.verifier]
    )
    assert cp.size == size


def test_hub_verify_bundle_with_a_huge_size_is_invalid_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pack built with its own key (integrity-only mode needs no hub key) whose checkpoint
    has a 5000-digit size: exit 1 with the reason, not an uncaught ValueError."""
    from audit import bundle
    from audit import leaf as leaf_format

    size = "9" * 5000
    manifest = {
        "format": bundle.FORMAT,
        "leaf_format": leaf_format.VERSION,
        "origin": "hub.example/log",
        "public_key": KEY.verifier.encode(),
        "checkpoints": [1],
        "entries": 0,
        "controls": {},
        "files": {},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(bundle.MANIFEST, json.dumps(manifest))
        zf.writestr(bundle.PUBLIC_KEY, KEY.verifier.encode() + "\n")
        zf.writestr(
            bundle.checkpoint_name(1), sign_note(f"hub.example/log\n{size}\n{ROOT_B64}\n", KEY)
        )
    pack = tmp_path / "pack.zip"
    pack.write_bytes(buf.getvalue())
    assert hub_verify(["bundle", str(pack)]) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and "tree size" in err, err


def test_audit_error_is_the_base_of_the_checkpoint_errors() -> None:
    assert issubclass(MalformedCheckpointError, AuditError)
