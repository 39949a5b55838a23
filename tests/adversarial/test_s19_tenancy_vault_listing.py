"""A ``tenant.all`` erasure on Vault/OpenBao lists only the erased subject's markers (s19).

``VaultKeyStore.key_tenants`` (which tenants hold a scoped key of a subject: the eraser destroys
each) listed EVERY transit key of the mount, once per erased subject: every tenant's marker
names, which carry the tenant's name (``hub-tenant-<subject digest>-<tenant hex>``), and every
subject key name, read by the hub and by whatever logs the server's answers, with a cost that
grew with the whole mount. It now lists from the subject's own prefix in pages (OpenBao's
paginated LIST); key names are unchanged, so keys made before are found the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hvac.adapters
import pytest

from adapters.vault_keystore import VaultKeyStore, _digest
from core.ports.keystore import TenantKeys
from tests.contract.test_keystore_openbao import TOKEN, openbao_url

AAD = b"aad"


@pytest.fixture(scope="module")
def openbao() -> str:
    return openbao_url()


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every key name the server answers a LIST with, during the test."""
    names: list[str] = []
    original = hvac.adapters.RawAdapter.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = original(self, method, url, *args, **kwargs)
        if method.upper() == "LIST" and getattr(response, "status_code", 0) == 200:
            names.extend(response.json()["data"]["keys"])
        return response

    monkeypatch.setattr(hvac.adapters.RawAdapter, "request", request)
    yield names


@pytest.mark.integration
def test_a_subjects_tenants_are_listed_from_its_own_prefix(
    openbao: str, answered: list[str]
) -> None:
    ks = VaultKeyStore(openbao, TOKEN)
    try:
        run = uuid.uuid4().hex[:8]
        erased = f"ACC-erase-{run}"
        for tenant in ("acme", "globex"):
            TenantKeys(ks, tenant).encrypt(erased, b"x", AAD)
        # other tenants' subjects, more than a page of them
        others = [f"ACC-{run}-{i}" for i in range(40)]
        for i, s in enumerate(others):
            TenantKeys(ks, ("initech", "umbrella")[i % 2]).encrypt(s, b"x", AAD)
        answered.clear()
        assert ks.key_tenants(erased) == frozenset({"acme", "globex"})
        prefix = f"hub-tenant-{_digest(erased)}-"
        foreign = [n for n in answered if not n.startswith(prefix)]
        # at most the one page that ends the range; before: every key of the mount, the 80
        # keys and markers of the other subjects above among them ('initech' and 'umbrella'
        # in hex in the markers' names)
        assert len(foreign) <= 16, (len(foreign), foreign[:5])
        marked = [n for n in foreign if n.endswith((b"initech".hex(), b"umbrella".hex()))]
        assert len(marked) <= 16, len(marked)
        # a subject of many tenants (more than a page) is listed whole
        crowd = f"ACC-crowd-{run}"
        tenants = {f"t{i:02d}" for i in range(37)}
        for t in tenants:
            TenantKeys(ks, t).encrypt(crowd, b"x", AAD)
        assert ks.key_tenants(crowd) == frozenset(tenants)
        assert ks.key_tenants(f"ACC-none-{run}") == frozenset()
    finally:
        ks.close()
