"""The KeyStore contract (``core/ports/keystore.py``), run against every adapter.

Subclass ``KeyStoreContract`` once per adapter (as ``Test...``) and provide the fixtures:
``store`` (an adapter), ``reopen`` (a callable that closes a store and returns a new adapter over
the same storage) and ``peer`` (a second, independent adapter over the same storage with no key
cache, as another process would have). Every test uses fresh random subject ids, so the suite can
run against a shared server.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from core.errors import InvalidInput
from core.ports.keystore import (
    DecryptionFailed,
    KeyDestroyed,
    KeyStore,
    make_aad,
    make_aad_v1,
)

Reopen = Callable[[KeyStore], KeyStore]


def subject() -> str:
    return f"acct-{uuid.uuid4().hex[:16]}"


def version_of(ciphertext: bytes) -> int:
    """The key version an envelope names (bytes 1-4, big-endian)."""
    return int.from_bytes(ciphertext[1:5], "big")


AAD = make_aad("accounts", "customer_name", "s", "acme")


class KeyStoreContract:
    """Adapter-independent tests; not collected itself (its name does not start with Test)."""

    @pytest.fixture
    def store(self) -> Iterator[KeyStore]:
        raise NotImplementedError("the adapter's test class provides the store fixture")

    @pytest.fixture
    def reopen(self) -> Reopen:
        raise NotImplementedError("the adapter's test class provides the reopen fixture")

    @pytest.fixture
    def peer(self) -> Iterator[KeyStore]:
        raise NotImplementedError("the adapter's test class provides the peer fixture")

    # -- round trip ---------------------------------------------------------------------------
    @pytest.mark.parametrize("plaintext", [b"", b"Ada Lovelace", bytes(range(256)) * 40])
    def test_round_trip(self, store: KeyStore, plaintext: bytes) -> None:
        s = subject()
        ct = store.encrypt(s, plaintext, AAD)
        assert plaintext not in ct or not plaintext
        assert store.decrypt(s, ct, AAD) == plaintext

    def test_encryptions_differ_and_carry_the_key_version(self, store: KeyStore) -> None:
        s = subject()
        ref = store.ensure_key(s)
        a, b = store.encrypt(s, b"x", AAD), store.encrypt(s, b"x", AAD)
        assert a != b
        assert version_of(a) == version_of(b) == ref.version == 1

    def test_sealer_is_encrypt_bound_to_the_subject(self, store: KeyStore) -> None:
        """``sealer`` (the per-batch form of ``encrypt``): what it seals ``decrypt`` opens,
        under the AAD given to each call, with a fresh nonce every call; an erased subject is
        refused."""
        s, other = subject(), subject()
        store.ensure_key(other)
        seal = store.sealer(s)
        a1, a2 = make_aad("t", "name", s, "acme"), make_aad("t", "email", s, "acme")
        cts = [seal(b"Ada", a1), seal(b"Ada", a1), seal(b"ada@example.com", a2)]
        assert len(set(cts)) == 3 and len({ct[5:17] for ct in cts}) == 3  # nonces
        assert store.decrypt(s, cts[0], a1) == store.decrypt(s, cts[1], a1) == b"Ada"
        assert store.decrypt(s, cts[2], a2) == b"ada@example.com"
        assert store.decrypt(s, store.encrypt(s, b"x", a1), a1) == b"x"
        assert version_of(cts[0]) == version_of(store.encrypt(s, b"x", a1))
        for sub, aad in ((s, a2), (other, a1)):
            with pytest.raises(DecryptionFailed):
                store.decrypt(sub, cts[0], aad)
        store.destroy(s)
        with pytest.raises(KeyDestroyed):
            store.sealer(s)(b"late", a1)

    def test_seal_many_is_encrypt_per_value(self, store: KeyStore) -> None:
        """``seal_many`` (a column of values of many subjects): each value opens with
        ``decrypt`` under its own subject and AAD only, every nonce is fresh, the newest key
        version is named; an erased subject among them is refused."""
        s, t = subject(), subject()
        store.ensure_key(t)
        store.rotate(t)
        subjects = [s, t, s, t, s]
        aads = [make_aad("t", "name", x, "acme") for x in subjects]
        plain = [b"Ada", b"Ada", b"", b"x" * 300, b"Ada"]
        cts = store.seal_many(subjects, plain, aads)
        assert len({ct[5:17] for ct in cts}) == 5  # nonces
        assert [version_of(ct) for ct in cts] == [1, 2, 1, 2, 1]
        for x, p, a, ct in zip(subjects, plain, aads, cts, strict=True):
            assert store.decrypt(x, ct, a) == p
        with pytest.raises(DecryptionFailed):
            store.decrypt(t, cts[0], aads[0])
        store.destroy(s)
        with pytest.raises(KeyDestroyed):
            store.seal_many([t, s], [b"a", b"b"], aads[:2])

    def test_ensure_key_creates_once(self, store: KeyStore) -> None:
        s = subject()
        assert not store.exists(s)
        first = store.ensure_key(s)
        assert store.exists(s)
        assert store.ensure_key(s) == first
        assert first.subject_id == s

    def test_invalid_subject_is_refused(self, store: KeyStore) -> None:
        for bad in ("", "a\x00b"):
            with pytest.raises(InvalidInput):
                store.encrypt(bad, b"x", AAD)

    # -- authentication -----------------------------------------------------------------------
    def test_aad_mismatch_fails(self, store: KeyStore) -> None:
        s = subject()
        ct = store.encrypt(s, b"ada@example.com", make_aad("accounts", "email", s, "acme"))
        for other in (
            make_aad("accounts", "customer_name", s, "acme"),  # another field
            make_aad("payments", "email", s, "acme"),  # another topic
            make_aad("accounts", "email", s + "x", "acme"),  # another subject named in the AAD
            make_aad("accounts", "email", s, "globex"),  # another tenant's record
            make_aad_v1("accounts", "email", s),  # the legacy form without the tenant
            b"",
        ):
            with pytest.raises(DecryptionFailed):
                store.decrypt(s, ct, other)

    def test_changed_byte_fails(self, store: KeyStore) -> None:
        s = subject()
        ct = bytearray(store.encrypt(s, b"secret", AAD))
        for i in (0, 4, 10, len(ct) - 1):
            bad = bytearray(ct)
            bad[i] ^= 0x01
            with pytest.raises((DecryptionFailed, KeyDestroyed)):
                store.decrypt(s, bytes(bad), AAD)
        with pytest.raises(DecryptionFailed):
            store.decrypt(s, bytes(ct[:20]), AAD)

    def test_subjects_are_isolated(self, store: KeyStore) -> None:
        a, b = subject(), subject()
        store.ensure_key(b)
        ct = store.encrypt(a, b"Ada", AAD)
        with pytest.raises(DecryptionFailed):
            store.decrypt(b, ct, AAD)
        store.destroy(b)
        assert store.decrypt(a, ct, AAD) == b"Ada"

    # -- rotation -----------------------------------------------------------------------------
    def test_rotate_keeps_old_versions_and_encrypts_with_the_new(self, store: KeyStore) -> None:
        s = subject()
        old = store.encrypt(s, b"v1", AAD)
        ref = store.rotate(s)
        assert ref.version == 2
        new = store.encrypt(s, b"v2", AAD)
        assert (version_of(old), version_of(new)) == (1, 2)
        assert store.decrypt(s, old, AAD) == b"v1"
        assert store.decrypt(s, new, AAD) == b"v2"
        assert store.ensure_key(s).version == 2
        assert store.rotate(s).version == 3

    def test_a_version_the_subject_never_had_fails(self, store: KeyStore) -> None:
        s = subject()
        ct = bytearray(store.encrypt(s, b"x", AAD))
        ct[1:5] = (7).to_bytes(4, "big")
        with pytest.raises(DecryptionFailed):
            store.decrypt(s, bytes(ct), AAD)

    # -- destroy ------------------------------------------------------------------------------
    def test_destroy_makes_every_version_unreadable(self, store: KeyStore) -> None:
        s, keep = subject(), subject()
        cts = [store.encrypt(s, b"v1", AAD)]
        store.rotate(s)
        cts.append(store.encrypt(s, b"v2", AAD))
        kept = store.encrypt(keep, b"other", AAD)
        store.destroy(s)
        for ct in cts:
            with pytest.raises(KeyDestroyed):
                store.decrypt(s, ct, AAD)
        assert not store.exists(s)
        assert store.decrypt(keep, kept, AAD) == b"other"

    def test_destroyed_subject_stays_erased(self, store: KeyStore) -> None:
        s = subject()
        store.encrypt(s, b"x", AAD)
        store.destroy(s)
        with pytest.raises(KeyDestroyed):
            store.ensure_key(s)
        with pytest.raises(KeyDestroyed):
            store.encrypt(s, b"late event", AAD)
        with pytest.raises(KeyDestroyed):
            store.rotate(s)
        assert not store.exists(s)

    def test_destroy_is_idempotent(self, store: KeyStore) -> None:
        s = subject()
        ct = store.encrypt(s, b"x", AAD)
        store.destroy(s)
        store.destroy(s)
        with pytest.raises(KeyDestroyed):
            store.decrypt(s, ct, AAD)

    def test_destroying_a_never_seen_subject_erases_it(self, store: KeyStore) -> None:
        s = subject()
        store.destroy(s)
        assert not store.exists(s)
        with pytest.raises(KeyDestroyed):
            store.encrypt(s, b"x", AAD)

    def test_erased_tells_destroyed_from_never_seen(self, store: KeyStore, peer: KeyStore) -> None:
        live, unknown, gone = subject(), subject(), subject()
        store.ensure_key(live)
        store.destroy(gone)
        assert not store.erased(live) and not store.erased(unknown)
        assert not store.exists(unknown)  # asking did not create a key
        assert store.erased(gone) and peer.erased(gone)

    def test_erased_among_answers_what_erased_answers_for_a_batch(
        self, store: KeyStore, peer: KeyStore
    ) -> None:
        live, unknown, gone, gone2 = subject(), subject(), subject(), subject()
        assert store.erased_among([live, unknown]) == set()  # nothing erased at all yet
        store.ensure_key(live)
        store.destroy(gone)
        peer.destroy(gone2)  # another instance's erasure is seen at once
        asked = [live, unknown, gone, gone2, gone, "", "bad\x00id"]
        assert store.erased_among(asked) == {gone, gone2}
        assert store.erased_among([]) == set()
        assert {s for s in (live, unknown, gone, gone2) if store.erased(s)} == {gone, gone2}
        assert not store.exists(unknown)  # asking did not create a key

    def test_any_erased_is_true_from_the_first_destroy_on(
        self, store: KeyStore, peer: KeyStore
    ) -> None:
        # the ingest path skips erased_among of a batch when any_erased says False: it may say
        # True too often (the port's default), never False after a destroy, here or elsewhere
        live, gone = subject(), subject()
        store.ensure_key(live)
        if not store.any_erased():
            assert store.erased_among([live, gone]) == set()
        peer.destroy(gone)  # another instance's erasure is seen at once
        assert store.any_erased() and store.for_tenant("t1").any_erased()
        assert store.erased_among([live, gone]) == {gone}

    def test_known_among_answers_exists_or_erased(self, store: KeyStore, peer: KeyStore) -> None:
        live, unknown, gone = subject(), subject(), subject()
        peer.ensure_key(live)  # another instance's key and erasure count too
        peer.destroy(gone)
        assert store.known_among([live, unknown, gone, "", "bad\x00id"]) == {live, gone}
        assert not store.exists(unknown)  # asking did not create a key

    def test_live_among_answers_exists_for_a_batch(self, store: KeyStore, peer: KeyStore) -> None:
        # every open asks it of each erased subject (governance.erasure_index)
        live, rotated, unknown, gone = subject(), subject(), subject(), subject()
        peer.ensure_key(live)  # another instance's key counts too
        store.ensure_key(rotated)
        store.rotate(rotated)  # two versions: named once
        store.ensure_key(gone)
        peer.destroy(gone)
        asked = [live, rotated, unknown, gone, live, "", "bad\x00id"]
        assert store.live_among(asked) == {live, rotated}
        assert store.live_among([]) == set()
        assert not store.exists(unknown)  # asking did not create a key

    def test_created_here_names_the_keys_this_instance_made_until_forgotten(
        self, store: KeyStore, peer: KeyStore
    ) -> None:
        # SubjectTenants believes a subject with a key but no record is new only when its key
        # was made here since its last naming (adapters.subject_tenants)
        made, sealed, older, other = subject(), subject(), subject(), subject()
        peer.ensure_key(older)  # made elsewhere: seen here as an older key
        store.ensure_key(older)
        store.ensure_key(made)
        store.seal_many([sealed], [b"x"], [AAD])
        peer.ensure_key(other)
        assert store.created_here([made, sealed, older, other]) == {made, sealed}
        assert peer.created_here([made, sealed, older, other]) == {older, other}
        store.forget_created([made])
        assert store.created_here([made, sealed]) == {sealed}
        store.forget_created([sealed, other])
        assert store.created_here([made, sealed, older, other]) == set()

    def test_destroy_reaches_another_instance(self, store: KeyStore, peer: KeyStore) -> None:
        s = subject()
        ct = store.encrypt(s, b"x", AAD)
        assert peer.decrypt(s, ct, AAD) == b"x"
        store.destroy(s)
        with pytest.raises(KeyDestroyed):
            peer.decrypt(s, ct, AAD)
        with pytest.raises(KeyDestroyed):
            peer.encrypt(s, b"y", AAD)

    # -- persistence --------------------------------------------------------------------------
    def test_keys_survive_a_reopen(self, store: KeyStore, reopen: Reopen) -> None:
        s, gone = subject(), subject()
        v1 = store.encrypt(s, b"v1", AAD)
        store.rotate(s)
        v2 = store.encrypt(s, b"v2", AAD)
        dead = store.encrypt(gone, b"x", AAD)
        store.destroy(gone)
        fresh = reopen(store)
        assert fresh.decrypt(s, v1, AAD) == b"v1"
        assert fresh.decrypt(s, v2, AAD) == b"v2"
        assert fresh.ensure_key(s).version == 2
        with pytest.raises(KeyDestroyed):
            fresh.decrypt(gone, dead, AAD)
        with pytest.raises(KeyDestroyed):
            fresh.encrypt(gone, b"x", AAD)

    # -- concurrency --------------------------------------------------------------------------
    def test_concurrent_first_use_makes_one_key(self, store: KeyStore, peer: KeyStore) -> None:
        s = subject()
        results: list[bytes] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(ks: KeyStore, i: int) -> None:
            try:
                barrier.wait()
                results.append(ks.encrypt(s, f"value {i}".encode(), AAD))
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(store if i % 2 else peer, i)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert {version_of(ct) for ct in results} == {1}
        assert sorted(store.decrypt(s, ct, AAD) for ct in results) == sorted(
            f"value {i}".encode() for i in range(8)
        )

    def test_threads_encrypt_and_decrypt_many_subjects(self, store: KeyStore) -> None:
        subjects = [subject() for _ in range(12)]
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    s = subjects[(n + i) % len(subjects)]
                    aad = make_aad("accounts", "email", s, "acme")
                    pt = f"{n}-{i}".encode()
                    assert store.decrypt(s, store.encrypt(s, pt, aad), aad) == pt
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]

    # -- tenant views (s18: keys per tenant and data subject) ----------------------------------
    def test_tenant_views_hold_separate_keys_and_list_their_tenants(self, store: KeyStore) -> None:
        s = subject()
        acme, globex = store.for_tenant("acme"), store.for_tenant("globex")
        sealed = acme.encrypt(s, b"acme's", AAD)
        globex.encrypt(s, b"globex's", AAD)
        assert acme.decrypt(s, sealed, AAD) == b"acme's"
        with pytest.raises(DecryptionFailed):  # globex's key does not open acme's value
            globex.decrypt(s, sealed, AAD)
        assert store.key_tenants(s) in (None, frozenset({"acme", "globex"}))
        acme.destroy(s)
        with pytest.raises(KeyDestroyed):
            acme.decrypt(s, sealed, AAD)
        assert acme.erased(s) and not globex.erased(s) and globex.exists(s)
        assert not store.exists(s) and not store.erased(s)  # no hub-wide key was ever made

    def test_a_hub_wide_key_of_before_opens_through_a_view_until_destroyed(
        self, store: KeyStore
    ) -> None:
        s = subject()
        old = store.encrypt(s, b"old", AAD)  # sealed under the hub-wide key, as before s18
        acme = store.for_tenant("acme")
        assert acme.decrypt(s, old, AAD) == b"old"  # no scoped key yet: the legacy key
        new = acme.encrypt(s, b"new", AAD)
        assert acme.decrypt(s, old, AAD) == b"old" and acme.decrypt(s, new, AAD) == b"new"
        with pytest.raises(DecryptionFailed):  # a changed byte is an error, not an erasure
            acme.decrypt(s, old[:-1] + bytes([old[-1] ^ 1]), AAD)
        store.destroy(s)
        assert acme.erased(s)  # no legacy record: the legacy erasure counts for every tenant
        assert acme.decrypt(s, new, AAD) == b"new"  # the tenant's own key is not the legacy one
        acme.destroy(s)
        for value in (old, new):
            with pytest.raises(KeyDestroyed):
                acme.decrypt(s, value, AAD)

    def test_a_view_refuses_an_id_posing_as_another_tenants_key(self, store: KeyStore) -> None:
        s = subject()
        store.for_tenant("globex").encrypt(s, b"globex's", AAD)
        with pytest.raises(InvalidInput):
            store.for_tenant("acme").encrypt(f"\x00globex\x00{s}", b"x", AAD)
        with pytest.raises(InvalidInput):
            store.for_tenant("acme").destroy(f"\x00globex\x00{s}")
