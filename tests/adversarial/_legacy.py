"""Publishing as the hub did before data-subject keys were per (tenant, subject) (s18): one
hub-wide key per subject id, and the record of which tenants named it (``SubjectTenants``).
For the tests of what such a store still decides: erasure of its legacy keys."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from hub.bootstrap import Hub
from tests.service.accounts import account_opened


@contextmanager
def as_before(h: Hub) -> Iterator[None]:
    """Within: every tenant's view of the key store is the store itself (hub-wide keys, as the
    same seals and AADs were made before), and publishing names subjects in the record."""
    keystore: Any = h.keystore
    keystore.for_tenant = lambda tenant: keystore  # the instance's, over the class's
    h.publisher.subject_tenants = h.subject_tenants
    try:
        yield
    finally:
        del keystore.for_tenant
        h.publisher.subject_tenants = None


def publish_before(h: Hub, tenant: str, accounts: Iterable[str]) -> None:
    """One ``AccountOpened`` per id for ``tenant``, sealed and named as before."""
    with as_before(h):
        h.publisher.publish(
            "accounts", [account_opened(a) for a in accounts], f"{tenant}-app", tenant=tenant
        )
