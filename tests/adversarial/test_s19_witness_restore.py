"""A restore to an older backup is a legitimate rollback: ``hub backup restore`` acknowledges it
in the outside witness (a ``rollback`` record, from the witnessed size and root to the restored
ones, signed with the ledger key) and on the ledger (``backup.restore`` names
``rolled_back_from``), so the restored hub opens and verifies, and says so. The same older
ledger put in place without the restore (a silent rollback) is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial.test_backup_attacks import copy_site, restore, run, site

__all__ = ["copy_site", "site"]  # the fixtures, re-used


def as_admin(site: dict[str, Any], data: Path, *args: str) -> Any:
    return run("--data-dir", str(data), "--key", site["keys"]["admin"], *args)


def test_an_older_backup_restored_is_an_acknowledged_rollback(
    copy_site: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = copy_site
    live_witness = Path(site["root"]) / "hub-witness"  # the live hub's, beside its folder
    assert list(live_witness.glob("ledger-*.witness"))
    witness = tmp_path / "witness"
    shutil.copytree(live_witness, witness)  # the site is shared: the test changes a copy
    monkeypatch.setenv("HUB_LEDGER_WITNESS_DIR", str(witness))

    # a silent rollback first: the first backup restored elsewhere (not in the live folder's
    # place: its own witness beside it, the live one untouched), then put where the live hub's
    # witness watches
    before = sorted(p.read_bytes() for p in witness.iterdir())
    r = restore(site, tmp_path / "elsewhere", site["first"])
    assert r.exit_code == 0, r.output
    assert sorted(p.read_bytes() for p in witness.iterdir()) == before
    assert list((tmp_path / "elsewhere-witness").glob("ledger-*.witness"))
    r = as_admin(site, tmp_path / "elsewhere", "ledger", "verify")
    assert r.exit_code != 0, r.output
    assert "rolled back" in r.stderr and "Traceback" not in r.output

    # the restore in the live folder's place (its data dir, lost) acknowledges it
    target = tmp_path / "restored"
    r = as_admin(site, target, "backup", "restore", site["first"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rolled_back_from"] > out["ledger"]["size_in_backup"]
    assert "holds a newer ledger" in r.stderr and str(witness) in r.stderr
    lines = next(witness.glob("ledger-*.witness")).read_text().splitlines()
    assert [line.split()[0] for line in lines[-2:]] == ["rollback", "checkpoint"]

    r = as_admin(site, target, "ledger", "verify", "--full")
    assert r.exit_code == 0, r.output
    assert f"acknowledged rollback (outside witness): from {out['rolled_back_from']} to" in r.stdout
    assert f"backup {site['first']}" in r.stdout

    h = bootstrap(load_settings(data_dir=target))  # opens: the rollback is acknowledged
    try:
        (restored,) = [
            rec.value
            for rec in h.log.scan("hub.audit", 0)
            if b"backup.restore" in rec.value and b"rolled_back_from" in rec.value
        ]
    finally:
        h.close()
    assert str(out["rolled_back_from"]).encode() in restored  # on the ledger, too

    # and the acknowledgement is for that restore only: the older folder copied back again is not
    shutil.rmtree(target)
    shutil.copytree(tmp_path / "elsewhere", target)
    r = as_admin(site, target, "ledger", "verify")
    assert r.exit_code != 0, r.output
    assert "rolled back" in r.stderr or "not an extension" in r.stderr


def test_a_restore_with_nothing_newer_witnessed_records_no_rollback(
    copy_site: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LEDGER_WITNESS_DIR", str(tmp_path / "fresh-witness"))
    target = tmp_path / "restored"
    r = as_admin(copy_site, target, "backup", "restore", copy_site["second"])
    assert r.exit_code == 0, r.output
    assert "rolled_back_from" not in json.loads(r.stdout)
    (wfile,) = (tmp_path / "fresh-witness").glob("ledger-*.witness")
    assert [line.split()[0] for line in wfile.read_text().splitlines()] == ["checkpoint"]
    r = as_admin(copy_site, target, "ledger", "verify")
    assert r.exit_code == 0, r.output
    assert "acknowledged rollback" not in r.stdout
    assert not list(tmp_path.glob(".restored*"))  # the staged hub's witness removed too
