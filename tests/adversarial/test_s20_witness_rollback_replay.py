"""A genuine ``rollback`` record of the outside witness replayed. Someone who can append to the
witness file but not rewrite it (an append-only file or volume, what an operator puts the witness
on against the data folder's writer) copies back the folder as it was just after an
acknowledged restore, then appends that restore's ``rollback`` record again (a line signed with
the ledger key, copied from earlier in the file).

Before: the head was the last rollback's ``to`` size, so the copied-back folder matched it and
start-up and `hub ledger verify` answered OK: every checkpoint signed since the restore was
rolled back silently. A rollback acknowledges the head in force when it was made (its ``from``
is that head's size and root); a record whose ``from`` is not the head before it is a finding."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.test_backup_attacks import copy_site, site
from tests.adversarial.test_s19_witness_restore import as_admin

__all__ = ["copy_site", "site"]  # the fixtures, re-used


def test_a_replayed_rollback_record_does_not_acknowledge_a_new_rollback(
    copy_site: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = copy_site
    witness = tmp_path / "witness"
    shutil.copytree(Path(site["root"]) / "hub-witness", witness)
    monkeypatch.setenv("HUB_LEDGER_WITNESS_DIR", str(witness))
    target = tmp_path / "restored"
    r = as_admin(site, target, "backup", "restore", site["first"])  # acknowledged rollback
    assert r.exit_code == 0, r.output
    (wfile,) = witness.glob("ledger-*.witness")
    (rollback,) = [line for line in wfile.read_bytes().splitlines() if line.startswith(b"rollback")]
    shutil.copytree(target, tmp_path / "just-restored")
    for _ in range(2):  # the restored hub goes on: each run signs and witnesses a checkpoint
        r = as_admin(site, target, "ledger", "verify")
        assert r.exit_code == 0, r.output

    shutil.rmtree(target)
    shutil.copytree(tmp_path / "just-restored", target)  # the checkpoints since: gone
    with wfile.open("ab") as f:
        f.write(rollback + b"\n")  # appended only: an append-only file allows it
    for full in ((), ("--full",)):
        r = as_admin(site, target, "ledger", "verify", *full)
        assert r.exit_code != 0, r.output  # before: OK
        assert "Traceback" not in r.output
        assert "rollback" in r.stderr and "replayed" in r.stderr, r.stderr
