"""`hub ledger verify --public-key` against a data folder whose signing key is not the hub's.

Before session 19 the option meant "also accept this key": the folder's own key file was always
trusted. So an auditor holding the hub's published key got OK from a folder that someone
without any key had made sign a new history: the key file removed or replaced (or the whole
folder swapped for another hub's), the ledger and its witness removed, the hub rebuilding and
re-signing the ledger under the new key on its next start (a rebuild under the old key is
refused since: test_s19_rtb_ledger_removed). Now the given keys are the only ones trusted,
a signer key outside them fails at once, and the OK line names the key that signed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from audit.note import generate_key
from tests.service.test_ledger import cli, make_hub, publish


def a_hub(data: Path, n: int = 30) -> None:
    h = make_hub(data, checkpoint_every_leaves=16, ledger_store="tiles")
    try:
        publish(h, n)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()


@pytest.fixture
def hub_and_key(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    a_hub(data)
    published = tmp_path / "auditor" / "ledger.pub"  # the auditor's own copy
    published.parent.mkdir()
    shutil.copy(data / "keys" / "ledger.pub", published)
    return data, published


def test_the_hubs_folder_verifies_with_its_published_key(hub_and_key: tuple[Path, Path]) -> None:
    data, published = hub_and_key
    name, key_id = published.read_text().split("+")[:2]
    for args in (("--full",), ()):  # full, then incremental from the remembered checkpoint
        code, out, err = cli(data, "ledger", "verify", "--public-key", str(published), *args)
        assert code == 0, err
        assert out.startswith("OK ledger"), out
        assert f"signed by {name}+{key_id} (the key given with --public-key)" in out


def test_a_new_key_and_a_rebuilt_ledger_fail_the_pinned_verify(
    hub_and_key: tuple[Path, Path],
) -> None:
    data, published = hub_and_key
    assert cli(data, "ledger", "verify")[0] == 0  # (the CLI's admin key made while it can be)
    (data / "keys" / "ledger.key").unlink()  # a new key is made on the next start
    for p in data.iterdir():  # the ledger goes; the hub rebuilds it from the log, re-signed
        if p.name.startswith("ledger") and p.is_file():
            p.unlink()
    shutil.rmtree(data / "witness")
    # s19 red team c: the hub no longer takes a removed key for its first start, so the
    # rebuild is refused before any verify (test_s19_rtc_ledger_key_removed); pinned or not,
    # nothing verifies.
    code, out, err = cli(data, "ledger", "sync")
    assert code != 0 and "is missing" in err, out
    code, out, err = cli(data, "ledger", "verify", "--full", "--public-key", str(published))
    assert code != 0, out
    code, out, _err = cli(data, "ledger", "verify", "--full")
    assert code != 0, out  # before: OK with the folder's own (new) key


def test_another_hubs_folder_fails_the_pinned_verify(
    hub_and_key: tuple[Path, Path], tmp_path: Path
) -> None:
    _data, published = hub_and_key
    other = tmp_path / "other"
    a_hub(other, 12)
    code, out, err = cli(other, "ledger", "verify", "--public-key", str(published))
    assert code == 1, out
    assert "is not the key given with --public-key" in err, err


def test_the_remembered_checkpoint_is_checked_with_the_given_key(
    hub_and_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """The incremental run starts from the remembered checkpoint; a key given for it is the
    hub's key, checked against that checkpoint's note too (a rotated key: give both)."""
    data, published = hub_and_key
    assert cli(data, "ledger", "verify")[0] == 0  # remembers a checkpoint
    old = tmp_path / "old.pub"
    old.write_text(generate_key("hub.local/ledger").verifier.encode() + "\n")
    code, _out, err = cli(
        data, "ledger", "verify", "--public-key", str(old), "--public-key", str(published)
    )
    assert code == 0, err  # either key may sign: a rotation's old and new key


def test_a_key_file_that_is_no_verifier_key_is_named(
    hub_and_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """Before: a MalformedKeyError traceback (also for the private key file passed by mistake,
    whose secret the message must not echo)."""
    data, _published = hub_and_key
    bad = tmp_path / "bad.pub"
    secret = (data / "keys" / "ledger.key").read_text().strip()
    for text in ("garbage\n", secret + "\n"):
        bad.write_text(text)
        code, out, err = cli(data, "ledger", "verify", "--public-key", str(bad))
        assert code != 0, out
        assert "invalid_public_key" in err and str(bad) in err, err
        # PRIVATE+KEY+<name>+<id>+<base64>: the base64 may hold "+" itself, so split from the left
        assert secret.split("+", 4)[4] not in err, err
