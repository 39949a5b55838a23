"""The KeyStore contract against a real OpenBao server (Vault's API) through hvac.

The server is the dev-mode one ``infra/openbao.sh`` runs (127.0.0.1:18200 unless ``HUB_BAO_PORT``
says otherwise, root token ``HUB_BAO_TOKEN``, default ``hub-dev-root``). The session fixture
starts it when it is not running and leaves it running afterwards (``make infra-openbao-down``
stops it). When it cannot start, the tests are skipped with the reason, except under
``CI=true``, where that fails the session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from adapters.vault_keystore import VaultKeyStore, _digest
from core.ports.keystore import KeyStore, KeyStoreError, KeyStoreUnavailable
from tests.contract.keystore_contract import AAD, KeyStoreContract, Reopen, subject

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "openbao.sh"


def openbao_url() -> str:
    """Start the local OpenBao if needed; its URL. Skips (or fails under CI)."""
    port = os.environ.get("HUB_BAO_PORT", "18200")
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600
        )
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, output = False, str(exc)
    if not ok:
        reason = (
            "OPENBAO NOT AVAILABLE: 'infra/openbao.sh start' failed, so the Vault KeyStore "
            f"contract did not run.\n{output[-3000:]}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return f"http://127.0.0.1:{port}"


TOKEN = os.environ.get("HUB_BAO_TOKEN", "hub-dev-root")


@pytest.fixture(scope="session")
def openbao() -> str:
    return openbao_url()


@pytest.mark.integration
class TestVaultKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, openbao: str) -> Iterator[KeyStore]:
        self._opened: list[KeyStore] = []
        ks = VaultKeyStore(openbao, TOKEN)
        self._opened.append(ks)
        yield ks
        for opened in self._opened:
            opened.close()

    @pytest.fixture
    def reopen(self, openbao: str) -> Reopen:
        def reopen(ks: KeyStore) -> KeyStore:
            ks.close()
            fresh = VaultKeyStore(openbao, TOKEN)
            self._opened.append(fresh)
            return fresh

        return reopen

    @pytest.fixture
    def peer(self, openbao: str) -> Iterator[KeyStore]:
        ks = VaultKeyStore(openbao, TOKEN, cache_ttl_s=0)
        yield ks
        ks.close()


@pytest.mark.integration
def test_destroy_deletes_the_transit_key_on_the_server(openbao: str) -> None:
    ks = VaultKeyStore(openbao, TOKEN)
    s = subject()
    ks.encrypt(s, b"x", AAD)
    ks.rotate(s)
    name = f"hub-subject-{_digest(s)}"
    transit = hvac.Client(url=openbao, token=TOKEN).secrets.transit
    assert transit.read_key(name)["data"]["latest_version"] == 2
    assert s not in str(transit.list_keys()["data"]["keys"])  # subject ids are not key names
    ks.destroy(s)
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name)
    assert name not in transit.list_keys()["data"]["keys"]


@pytest.mark.integration
def test_errors_are_translated(openbao: str) -> None:
    with pytest.raises(KeyStoreError, match="refused the token"):
        VaultKeyStore(openbao, "not-a-token").encrypt(subject(), b"x", AAD)
    with pytest.raises(KeyStoreUnavailable, match="did not answer"):
        VaultKeyStore("http://127.0.0.1:9", TOKEN, timeout_s=2).encrypt(subject(), b"x", AAD)
