"""Session 25, red team (docs/benchmarks/s25-redteam-attacker25.md): ``--out`` over a planted link.

``write_private`` (every ``--out`` / ``--export`` of the CLI: evidence packs, reports, query
results, ledger findings) opened the path with ``O_TRUNC`` and no ``O_NOFOLLOW``. A local
account that can write to the folder an operator exports into (a shared, group-writable
``packs/`` folder; the default file name of an evidence pack is predictable) plants
``pack.zip`` as a symbolic link (or a hard link) to a file of the operator's (a key file, the
hub's own files in its data folder): the export truncated the link's target, wrote the pack
into it and set it 0600. Now the file is written to a new name made with ``O_EXCL`` beside it and
renamed over the path: a link there is replaced, its target never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.ports.keyfiles import write_private
from hub.cli import main
from tests.cli_keys import admin_key_file

ENV = {"HUB_POLICY_ENGINE": "roletable", "HUB_PROJECTION_AUTOSTART": "false"}


def _plant(out: Path, victim: Path, how: str) -> None:
    if how == "symlink":
        out.symlink_to(victim)
    else:
        os.link(victim, out)


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_write_private_never_writes_through_a_link(tmp_path: Path, how: str) -> None:
    victim = tmp_path / "ledger.key"
    victim.write_bytes(b"the operator's secret\n")
    os.chmod(victim, 0o640)
    out = tmp_path / "shared" / "pack.zip"
    out.parent.mkdir()
    _plant(out, victim, how)
    write_private(out, b"PK new pack")
    assert victim.read_bytes() == b"the operator's secret\n"
    assert victim.stat().st_mode & 0o777 == 0o640
    assert not out.is_symlink() and out.read_bytes() == b"PK new pack"
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["pack.zip"]  # no temporary left


def test_evidence_export_over_a_planted_symlink_leaves_its_target(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = admin_key_file(data)
    victim = tmp_path / "keep.txt"
    victim.write_bytes(b"not a pack\n")
    out = tmp_path / "pack.zip"
    out.symlink_to(victim)
    base = ["--data-dir", str(data), "--key-file", str(key)]
    args = ["evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01"]
    r = CliRunner().invoke(main, [*base, *args, "--out", str(out)], env=ENV)
    assert r.exit_code == 0, r.output
    assert victim.read_bytes() == b"not a pack\n"
    assert not out.is_symlink() and out.read_bytes()[:2] == b"PK"
