"""Session 24 (redteam-auditor24): the outside witness gone, and `hub ledger verify` silent.

The outside witness (``ledger.witness_log``) is what catches an older genuine copy of the data
folder put back. Whoever can also write the witness's folder (by default ``<data>-witness``,
beside the data folder) deletes its file, or the hub's configuration points
``HUB_LEDGER_WITNESS_DIR`` somewhere new, or turns the witness off (``HUB_LEDGER_WITNESS=false``).
Before: the rolled-back folder started, a new witness file began at the rolled-back size, and
`hub ledger verify` printed a plain OK, with nothing telling the auditor that the rollback
check had nothing to check against (so the ledger's lost entries were lost without a word).
Now verify says so, on stdout and in the ``ledger.verify`` entry it records: a witness that
holds no checkpoint of a ledger with checkpoints, one that begins above the ledger's first
checkpoint, and no witness at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.adversarial.test_s19_witness_rollback import grow
from tests.service.test_ledger import cli, make_hub


@pytest.fixture
def rolled_back(tmp_path: Path) -> tuple[Path, int]:
    """A folder grown, copied, grown again; the copy put back and the witness file deleted:
    (data, the size of the ledger that was lost)."""
    data = tmp_path / "data"
    grow(data, 20, 0)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(data, snapshot)
    lost = grow(data, 20, 100)
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    for f in (tmp_path / "data-witness").glob("ledger-*.witness"):
        f.unlink()
    return data, lost


def _recorded_warnings(data: Path) -> list[str]:
    """The warnings of the last ``ledger.verify`` entry (CC7 evidence)."""
    h = make_hub(data, checkpoint_every_leaves=8)
    try:
        end = h.log.end_offsets("hub.audit").get(0, 0)
        found = [
            r["value"]
            for r in h.reader.read("hub.audit", 0, 0, end + 1)
            if r["value"]["action"] == "ledger.verify"
        ]
    finally:
        h.close()
    assert found, "no ledger.verify entry names the witness warnings"
    details = json.loads(found[-1]["details"])
    return list(details.get("witness_warnings") or [])


def test_a_deleted_witness_file_is_named_by_verify(rolled_back: tuple[Path, int]) -> None:
    data, _lost = rolled_back
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err  # nothing in the folder can tell: every file is genuine
    # before: "OK ledger: ..." and not a word about the witness
    assert "warning: the outside witness" in out, out
    # the open re-witnesses the newest checkpoint (its copy's retry): the file begins there,
    # above the ledger's first checkpoint; or it still holds none
    named = ("holds no checkpoint of this ledger", "never witnessed outside the data folder")
    assert any(n in out for n in named) and "rollback" in out, out
    assert any(n in w for w in _recorded_warnings(data) for n in named)


def test_a_witness_begun_again_after_a_rollback_is_named_by_verify(
    rolled_back: tuple[Path, int],
) -> None:
    data, _lost = rolled_back
    grow(data, 5, 500)  # the hub starts over the old copy: a new witness file begins here
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err
    assert "warning: the outside witness" in out, out
    assert "begins at checkpoint" in out and "never witnessed" in out, out


def test_verify_with_the_witness_off_says_the_rollback_check_is_off(
    rolled_back: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _lost = rolled_back
    monkeypatch.setenv("HUB_LEDGER_WITNESS", "false")
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 0, err
    assert "warning: the outside witness is not checked" in out, out


def test_an_honest_hub_verifies_without_a_witness_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    grow(data, 20, 0)
    grow(data, 20, 100)
    for args in (("--full",), ()):
        code, out, err = cli(data, "ledger", "verify", *args)
        assert code == 0, err
        assert out.startswith("OK ledger") and "witness" not in out, out
