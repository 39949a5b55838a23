"""Which of a batch's (tenant, entity) pairs name a data subject that tenant erased.

An erasure (``governance.erasure``) destroys the subject's key; the ML side's derived rows
keyed by the subject (feature points and versions, training-set rows, new predictions) must go
with it: the feed (``ml.feed``) and training sets (``ml.trainingset``) leave such a pair out of
what they fold, and the scorer (``ml.scoring``) does not score its events. Keys are per tenant,
so the same entity id in another tenant is another person and is kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.ports.keystore import KeyStore

# (tenant, entity) pairs -> those whose subject the tenant erased
Erased = Callable[[Iterable[tuple[str, str]]], set[tuple[str, str]]]


def none_erased(pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """No key store (a hub without PII): nothing was ever erased."""
    return set()


class ErasedIn:
    """``Erased`` answered by ``keystore``: one ``erased_among`` question per tenant of the
    batch, none at all while the store has never destroyed a key (``any``)."""

    def __init__(self, keystore: KeyStore | None) -> None:
        self._keystore = keystore

    def any(self) -> bool:
        """False only while no key was ever destroyed: a caller that must read something to
        name a pair's tenant (``ml.flink_features``' loader) skips the read then."""
        return self._keystore is not None and self._keystore.any_erased()

    def __call__(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        by_tenant: dict[str, set[str]] = {}
        for tenant, entity in pairs:
            by_tenant.setdefault(tenant, set()).add(entity)
        store = self._keystore
        if store is None or not by_tenant or not store.any_erased():
            return set()
        return {
            (tenant, entity)
            for tenant, entities in by_tenant.items()
            for entity in store.for_tenant(tenant).erased_among(entities)
        }


NONE_ERASED = ErasedIn(None)  # no key store (a hub without PII): nothing was ever erased


def erased_in(keystore: KeyStore | None) -> ErasedIn:
    """``Erased`` answered by ``keystore`` (``ErasedIn``)."""
    return ErasedIn(keystore)
