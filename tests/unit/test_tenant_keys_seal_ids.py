"""``TenantKeys.seal_many`` names each subject's key through the view's memory (``key_id``,
session 20) instead of ``scoped_subject`` per distinct subject: on random batches, over and over
on the same view (cold and warm memory, a memory dropped when full), the store below is asked
for exactly ``scoped_subject(tenant, s)`` of every value, and a bad subject id is refused with
the same error, nothing sealed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.local_keystore import LocalKeyStore
from core.errors import InvalidInput
from core.ports.keystore import TenantKeys, scoped_subject


class _Recording(LocalKeyStore):
    """The real store, remembering the key id of every value each ``seal_keyed`` was given
    (``TenantKeys.seal_many`` hands the store its distinct key ids once, session 20)."""

    asked: list[list[str]]

    def seal_keyed(
        self,
        subject_ids: list[str],
        key_of: list[int],
        plaintexts: Sequence[bytes],
        aads: Sequence[bytes],
    ) -> list[bytes]:
        self.asked.append([subject_ids[k] for k in key_of])
        return super().seal_keyed(subject_ids, key_of, plaintexts, aads)


@pytest.mark.parametrize("held", [3, 65_536])  # the memory dropped while in use, or never
def test_seal_many_asks_for_the_scoped_key_ids(
    tmp_path: Path, held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TenantKeys, "_IDS_HELD", held)
    store = _Recording(tmp_path / "keyring.sqlite", b"k" * 32)
    store.asked = []
    rng = random.Random(held)
    pool = ["A1", "é", "𝄞" * 9, "x" * 1024, "acme", " ", "A1 "]
    for tenant in ("acme", "globex", "acme"):
        keys = store.for_tenant(tenant)
        for _ in range(8):
            subjects = [rng.choice(pool) for _ in range(rng.randrange(1, 40))]
            sealed = keys.seal_many(subjects, [b"p"] * len(subjects), [b"a"] * len(subjects))
            assert len(sealed) == len(subjects)
            assert store.asked.pop() == [scoped_subject(tenant, s) for s in subjects]
    for bad in ("", "a\x00b", "y" * 1025):
        with pytest.raises(InvalidInput) as want:
            scoped_subject("acme", bad)
        with pytest.raises(InvalidInput) as got:
            store.for_tenant("acme").seal_many(["A1", bad], [b"p", b"q"], [b"a", b"a"])
        assert str(got.value) == str(want.value)
        assert store.asked == []
    store.close()
