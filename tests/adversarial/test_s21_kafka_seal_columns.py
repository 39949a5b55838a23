"""``seal_column_values`` (the publish path's PII columns, one ``seal_keyed`` call with the
distinct subjects taken once) gives byte for byte what the former form gave: ``seal_many`` of the
concatenated owners, values and per-value AADs, split back into columns. Random columns with
different owner subsets, repeated and odd subjects, two tenants, cold and warm AAD cache, the
native and the Python seal; the OS nonces pinned so both sides draw the same ones. A reserved
subject is refused by both with nothing sealed; an erased one raises ``KeyDestroyed`` on both."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import adapters._aead as aead
from adapters.local_keystore import LocalKeyStore
from adapters.sqlite_log import SqliteEventLog
from core.metrics import Metrics
from core.pii import UNATTRIBUTED
from core.ports.keystore import KeyDestroyed, TenantKeys
from ingest.publish import Publisher, seal_column_values
from registry.service import SchemaRegistry

Cols = list[tuple[str, list[str], list[bytes]]]
SUBJECTS = ["A0", "A1", "é", "𝄞" * 30, " ", "x" * 1024, "a", "Person 7", "B"]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Publisher, LocalKeyStore]]:
    log = SqliteEventLog(":memory:")
    keystore = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    yield Publisher(log, SchemaRegistry(log), 65536, Metrics(), keystore), keystore
    keystore.close()
    log.close()


def _pinned(monkeypatch: pytest.MonkeyPatch, seed: int) -> Callable[[], None]:
    """Pin ``os.urandom`` as the seal sees it; the returned call restarts the stream."""
    state: dict[str, random.Random] = {}

    def reset() -> None:
        state["rng"] = random.Random(seed)

    reset()
    monkeypatch.setattr(os, "urandom", lambda n: state["rng"].randbytes(n))
    return reset


def _columns(rng: random.Random, n: int) -> Cols:
    subjects = rng.sample(SUBJECTS, rng.randrange(1, len(SUBJECTS)))
    rows = [rng.choice(subjects) for _ in range(n)]
    cols: Cols = []
    for name in rng.sample(["name", "iban", "phone"], rng.randrange(1, 4)):
        keep = [i for i in range(n) if rng.random() < 0.7]  # a column's values: some rows only
        owners = [rows[i] for i in keep]
        values = [rng.randbytes(rng.randrange(40)) for _ in keep]
        cols.append((name, owners, values))
    return cols


def _former(pub: Publisher, keys: TenantKeys, tenant: str, cols: Cols) -> list[list[bytes]]:
    """The former ``seal_columns``: every value's subject and AAD concatenated, one
    ``seal_many``."""
    subjects: list[str] = []
    plaintexts: list[bytes] = []
    aad_list: list[bytes] = []
    for name, owners, values in cols:
        aad_of = pub._aads_of("t.people", name, tenant, owners)
        subjects += owners
        plaintexts += values
        aad_list += map(aad_of.__getitem__, owners)
    sealed = keys.seal_many(subjects, plaintexts, aad_list)
    out, at = [], 0
    for _, owners, _ in cols:
        out.append(sealed[at : at + len(owners)])
        at += len(owners)
    return out


def _new(pub: Publisher, keys: TenantKeys, tenant: str, cols: Cols) -> list[list[bytes]]:
    return seal_column_values(
        keys, lambda name, distinct: pub._aads_of("t.people", name, tenant, distinct), cols
    )


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_column_seal_matches_the_former_form_byte_for_byte(
    setup: tuple[Publisher, LocalKeyStore],
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    native: bool,
) -> None:
    pub, keystore = setup
    if not native:
        monkeypatch.setattr(aead, "_seal_batch_bound", None)
        monkeypatch.setattr(aead, "_seal_batch", None)
    reset = _pinned(monkeypatch, seed)
    rng = random.Random(seed)
    for _ in range(12):
        tenant = rng.choice(["acme", "globex"])
        keys = keystore.for_tenant(tenant)
        cols = _columns(rng, rng.randrange(0, 60))
        if rng.random() < 0.3:
            pub._aads = {}  # cold AAD cache now and then
        distinct = list(dict.fromkeys(s for _, owners, _ in cols for s in owners))
        keys.seal_many(distinct, [b""] * len(distinct), [b""] * len(distinct))  # keys made
        reset()
        new = _new(pub, keys, tenant, cols)
        reset()
        old = _former(pub, keys, tenant, cols)
        assert new == old
        assert [len(c) for c in new] == [len(owners) for _, owners, _ in cols]
        for (name, owners, values), sealed in zip(cols, new, strict=True):
            aad_of = pub._aads_of("t.people", name, tenant, owners)
            for s, v, c in zip(owners, values, sealed, strict=True):
                assert keys.decrypt(s, c, aad_of[s]) == v


def test_reserved_and_erased_subjects_are_refused_as_before(
    setup: tuple[Publisher, LocalKeyStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, keystore = setup
    keys = keystore.for_tenant("acme")
    sealed: list[Any] = []
    real = keys.inner.seal_keyed

    def spy(*args: Any) -> list[bytes]:
        sealed.append(args)
        return real(*args)

    monkeypatch.setattr(keys.inner, "seal_keyed", spy)
    reserved = UNATTRIBUTED + "x"
    cols: Cols = [("name", ["A0", "A1"], [b"a", b"b"]), ("iban", ["A1", reserved], [b"c", b"d"])]
    for run in (_new, _former):
        with pytest.raises(TypeError, match="reserved data subject"):
            run(pub, keys, "acme", cols)
    assert sealed == []
    keys.destroy("A1")
    for run in (_new, _former):
        with pytest.raises(KeyDestroyed):
            run(pub, keys, "acme", cols[:1])
