"""Whole-folder rollback against the OUTSIDE witness (``ledger.witness_log``).

Before: the ledger's witness lived only in ``<data>/witness``, so copying back an older genuine
data folder, or rolling the ledger back and deleting the witness copies above it, passed
``hub ledger verify`` and the hub signed new checkpoints over it. The outside witness
(``<data>-witness`` by default, never inside the data folder) keeps every signed checkpoint:
a ledger smaller than, or not extending, the newest one it holds is refused at start-up and by
verify, naming both sizes and roots. A restore of an older backup is acknowledged there (a
``rollback`` record signed with the ledger key) and passes: tests/adversarial/
test_s19_witness_restore.py.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest

from audit.note import generate_key, sign_note
from core.errors import ConfigError
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
from ledger.witness_log import WitnessLog, log_path, rollback_text
from tests.service.test_ledger import cli, make_hub, publish


def witnessed(data: Path) -> int:
    """The newest size the outside witness of ``data`` holds."""
    from adapters.local_signer import LocalKeyFileSigner

    settings = load_settings(environ={}, data_dir=data)
    key = LocalKeyFileSigner(settings.ledger_key_path, settings.ledger_origin).verifier()
    w = WitnessLog(log_path(settings.outside_witness_dir, key), [key], settings.ledger_origin)
    head = w.head()
    assert head is not None
    return head.size


def grow(data: Path, n: int, start: int, **overrides: object) -> int:
    h = make_hub(data, checkpoint_every_leaves=8, **overrides)
    try:
        publish(h, n, start=start)
        h.ledger.sync(force_checkpoint=True)
        return h.ledger.store.tree_size()
    finally:
        h.close()


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, Path, int, int]:
    """A hub's folder copied at size ``old``, then grown to ``new``: (data, old copy, old, new)."""
    data = tmp_path / "data"
    grow(data, 20, 0)
    assert cli(data, "ledger", "verify")[0] == 0
    old = witnessed(data)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(data, snapshot)
    grow(data, 20, 100)
    code, _out, err = cli(data, "ledger", "verify")
    assert code == 0, err
    new = witnessed(data)
    assert new > old
    assert (tmp_path / "data-witness").is_dir()  # beside the data folder, not in it
    return data, snapshot, old, new


def refused(data: Path, *words: str) -> str:
    code, out, err = cli(data, "ledger", "verify")
    assert code != 0, (out, err)
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    with pytest.raises(LedgerIntegrityError) as info:
        make_hub(data, checkpoint_every_leaves=8).close()
    for w in words:
        assert w in str(info.value), (w, info.value)
    return err


def test_an_older_genuine_folder_copied_back_is_refused(
    history: tuple[Path, Path, int, int],
) -> None:
    data, snapshot, old, new = history
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)  # log, ledger, in-folder witness, verified note: all older
    refused(data, f"holds {old} entries", f"size {new}", "rolled back")


def test_the_ledger_rolled_back_and_the_newer_witness_copies_deleted_is_refused(
    history: tuple[Path, Path, int, int],
) -> None:
    data, snapshot, old, new = history
    (data / "ledger.sqlite").unlink()
    shutil.copy2(snapshot / "ledger.sqlite", data / "ledger.sqlite")
    for p in (data / "witness").rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(data / "witness")
    shutil.copytree(snapshot / "witness", data / "witness")
    (data / "ledger-verified.note").unlink(missing_ok=True)
    refused(data, f"holds {old} entries", f"size {new}")


def test_a_spliced_ledger_past_the_witnessed_size_is_refused(
    history: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    """The older folder grown elsewhere (its own outside witness) past the witnessed size: same
    key, larger ledger, but another history: the root at the witnessed size differs."""
    data, snapshot, _old, new = history
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    grow(data, 40, 500, ledger_witness_dir=tmp_path / "elsewhere")
    err = refused(data, f"at size {new}", "not an extension", "spliced")
    spliced = int(re.search(r"the ledger of (\d+) entries", err).group(1))  # type: ignore[union-attr]
    assert spliced > new  # larger than the witnessed ledger, and still refused


def test_a_rollback_record_the_attacker_signs_is_refused(
    history: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    """Acknowledging a rollback takes the ledger key: a record signed by another key (the
    attacker's, same origin) makes the witness file a finding, not an acknowledgement."""
    data, snapshot, old, new = history
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    (wfile,) = (tmp_path / "data-witness").glob("ledger-*.witness")
    origin = load_settings(environ={}, data_dir=data).ledger_origin
    forged = sign_note(
        rollback_text(origin, new, b"\0" * 32, old, b"\0" * 32, 0, "restore"),
        generate_key(origin),
    )
    with wfile.open("ab") as f:
        f.write(b"rollback " + base64.b64encode(forged) + b"\n")
    refused(data, "does not verify", "edited")


def test_the_witness_folder_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inside the data folder"):
        make_hub(tmp_path / "data", ledger_witness_dir=tmp_path / "data" / "w").close()


def test_a_new_data_folder_beside_an_old_witness_just_starts(tmp_path: Path) -> None:
    """``rm -rf data; make run``: a new folder has a new key, so a new witness file."""
    data = tmp_path / "data"
    grow(data, 10, 0)
    shutil.rmtree(data)
    grow(data, 5, 0)
    assert cli(data, "ledger", "verify")[0] == 0
    assert len(list((tmp_path / "data-witness").glob("ledger-*.witness"))) == 2
