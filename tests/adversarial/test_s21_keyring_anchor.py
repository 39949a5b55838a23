"""s21: a keyring put back whole to an older copy of itself is refused (its anchor).

s20 MAC'd the keyring's rows as a set (``adapters.keyring_set``), so an edit of some rows is
refused; but the whole file put back to an older copy (summary and rows agree) crypto-shredded
every key made since, with no record (their data read as "no key"). And an older copy's
pre-summary (v1) ``master_check`` row copied into the current file made the next open re-derive
the summary from the rows as they were, taking any row edit. Now the summary carries a
generation (one more per committed change) and the hub records the keyring's state in an
anchor outside the file (``<data>/keyring.anchor``, ``governance.keyring_anchor``), checked on
every open: a keyring older than its anchor, or another one at the same generation, is refused
naming what is missing; a v1 check beside a summary is refused as an edit."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.local_keystore import LocalKeyStore, subject_digest
from core.ports.keystore import KeyStoreError
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial.test_s20_keystore_set import MASTER, edit, make


def settings(data: Path):  # type: ignore[no-untyped-def]
    return load_settings(environ={}, data_dir=data)


def _keys(data: Path, *subjects: str) -> None:
    h = bootstrap(settings(data))
    try:
        for s in subjects:
            h.keystore.ensure_key(s)
    finally:
        h.close()


def test_an_older_keyring_put_back_whole_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _keys(data, "ACC-0001")
    keyring = settings(data).keyring_path
    shutil.copy2(keyring, tmp_path / "keyring.before")  # the older copy
    _keys(data, "ACC-0002", "ACC-0003")  # keys made since: their data needs them
    shutil.copy2(tmp_path / "keyring.before", keyring)
    for suffix in ("-wal", "-shm"):
        Path(str(keyring) + suffix).unlink(missing_ok=True)
    with pytest.raises(KeyStoreError, match="older than its anchor") as caught:  # before: opened
        bootstrap(settings(data))
    assert "2 data key(s)" in str(caught.value)  # names what is missing
    assert str(keyring) in str(caught.value)


def test_the_current_keyring_opens_again_and_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(3):
        _keys(data, f"ACC-{i:04d}")
    assert settings(data).keyring_anchor_path.exists()
    h = bootstrap(settings(data))
    try:
        assert h.keystore.exists("ACC-0002")
    finally:
        h.close()


def test_a_deleted_anchor_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _keys(data, "ACC-0001")
    settings(data).keyring_anchor_path.unlink()  # then any older keyring would pass
    with pytest.raises(KeyStoreError, match=r"anchor .* is missing"):
        bootstrap(settings(data))


def test_an_edited_anchor_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _keys(data, "ACC-0001")
    path = settings(data).keyring_anchor_path
    path.write_bytes(path.read_bytes().replace(b'"g":', b'"g":1'))
    with pytest.raises(KeyStoreError, match="fails its MAC"):
        bootstrap(settings(data))


def test_another_keyring_at_the_same_generation_is_refused(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _keys(one, "ACC-0001")
    _keys(two, "ACC-0009")
    master = settings(one).master_key_path
    shutil.copy2(settings(two).master_key_path, master)  # another folder's key ring and key
    shutil.copy2(settings(two).keyring_path, settings(one).keyring_path)
    with pytest.raises(KeyStoreError, match="not the keyring its anchor recorded"):
        bootstrap(settings(one))


def _v1_check() -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(MASTER).encrypt(nonce, b"hub.keystore.master-check.v1", b"hub.master")


def test_a_v1_master_check_copied_beside_a_summary_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "DELETE FROM data_keys WHERE subject = ?", subject_digest("ACC-0002"))
    edit(path, "UPDATE meta SET value = ? WHERE name = 'master_check'", _v1_check())
    with pytest.raises(KeyStoreError, match="edited outside the hub"):  # before: re-derived
        LocalKeyStore(path, MASTER)


def test_a_keyring_from_before_summaries_still_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sqlite"
    make(path)
    edit(path, "DELETE FROM meta WHERE name = 'set_summary'")
    edit(path, "UPDATE meta SET value = ? WHERE name = 'master_check'", _v1_check())
    ks = LocalKeyStore(path, MASTER)
    try:
        state = ks.state()
        assert state is not None and state.generation == 0
        ks.ensure_key("ACC-0100")
        state = ks.state()
        assert state is not None and state.generation == 1
    finally:
        ks.close()


def test_a_folder_from_before_the_anchor_opens_and_is_anchored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keyring = settings(data).keyring_path
    keyring.parent.mkdir(parents=True)
    make(keyring)  # then made as before summaries: a v1 check, no summary, no anchor
    edit(keyring, "DELETE FROM meta WHERE name = 'set_summary'")
    edit(keyring, "UPDATE meta SET value = ? WHERE name = 'master_check'", _v1_check())
    mk = settings(data).master_key_path
    mk.write_text(base64.b64encode(MASTER).decode() + "\n")
    mk.chmod(0o600)
    _keys(data, "ACC-0100")
    assert settings(data).keyring_anchor_path.exists()
    _keys(data)


def test_the_anchor_follows_a_running_process_within_its_interval(tmp_path: Path) -> None:
    import json
    import time

    from governance.keyring_anchor import WRITE_INTERVAL_S, KeyringAnchor

    path = tmp_path / "keyring.sqlite"
    anchor_path = tmp_path / "keyring.anchor"
    ks = LocalKeyStore(path, MASTER)
    try:
        KeyringAnchor(anchor_path, b"k" * 32, path).hold(ks)
        for i in range(5):  # inside one interval: one write now, the rest by the timer
            ks.ensure_key(f"ACC-{i:04d}")
        time.sleep(WRITE_INTERVAL_S + 0.5)
        state = ks.state()
        anchored = json.loads(anchor_path.read_bytes().split(b"\n", 1)[1])
        assert state is not None and anchored["g"] == state.generation == 5  # before close
    finally:
        ks.close()
