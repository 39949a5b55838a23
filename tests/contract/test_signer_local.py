"""The Signer contract against the key-file signer (``adapters/local_signer.py``), plus what
only it has: the key file's mode and name checks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.local_signer import LocalKeyFileSigner
from core.errors import ConfigError
from core.ports.signer import Signer
from tests.contract.signer_contract import NAME, Reopen, SignerContract


class TestLocalKeyFileSigner(SignerContract):
    @pytest.fixture
    def signer(self, tmp_path: Path) -> Signer:
        return LocalKeyFileSigner(tmp_path / "keys" / "ledger.key", NAME)

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        return lambda _old: LocalKeyFileSigner(tmp_path / "keys" / "ledger.key", NAME)


def test_the_key_file_is_private_and_the_public_half_published(tmp_path: Path) -> None:
    signer = LocalKeyFileSigner(tmp_path / "ledger.key", NAME)
    assert stat.S_IMODE((tmp_path / "ledger.key").stat().st_mode) == 0o600
    assert (tmp_path / "ledger.pub").read_text().strip() == signer.verifier_key()
    assert "PRIVATE" not in repr(signer)


def test_a_key_of_another_name_is_refused(tmp_path: Path) -> None:
    LocalKeyFileSigner(tmp_path / "ledger.key", NAME)
    with pytest.raises(ConfigError, match="HUB_LEDGER_ORIGIN"):
        LocalKeyFileSigner(tmp_path / "ledger.key", "other.example/ledger")


def test_a_rotated_key_file_signs_with_the_new_key_once_reopened(tmp_path: Path) -> None:
    """The signer reads its key file when built and keeps the loaded key: a replaced file
    (rotation) signs with the new key from the next signer built over it, and the running one
    keeps signing with the key its verifier key names."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit.note import generate_key

    old = LocalKeyFileSigner(tmp_path / "ledger.key", NAME)
    (tmp_path / "ledger.key").write_text(generate_key(NAME).encode() + "\n")
    new = LocalKeyFileSigner(tmp_path / "ledger.key", NAME)
    assert new.public_key != old.public_key
    Ed25519PublicKey.from_public_bytes(new.public_key).verify(new.sign(b"m"), b"m")
    Ed25519PublicKey.from_public_bytes(old.public_key).verify(old.sign(b"m"), b"m")
    assert (tmp_path / "ledger.pub").read_text().strip() == new.verifier_key()
