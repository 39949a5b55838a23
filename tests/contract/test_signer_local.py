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
