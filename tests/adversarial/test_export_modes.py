"""What a command writes with ``--out`` / ``--export`` is its owner's alone, whatever the umask.

Red team (session 15): under the usual umask 022, ``hub query --out``, ``hub evidence export``
and ``hub ledger find --export`` wrote 0644 files: query results over personal-data views and
evidence packs (every key, every decision) readable by every local user, while the data folder
they came from is 0700. A file that already existed with a wide mode kept it.
"""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from core.ports.keyfiles import write_private
from hub.cli import main
from tests.cli_keys import admin_key_file

ENV = {"HUB_POLICY_ENGINE": "roletable", "HUB_PROJECTION_AUTOSTART": "false"}


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_write_private_narrows_an_existing_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        f = tmp_path / "out.csv"
        f.write_text("old, longer content than the new one\n")
        os.chmod(f, 0o644)
        write_private(f, b"new\n")
        assert _mode(f) == 0o600
        assert f.read_bytes() == b"new\n"
    finally:
        os.umask(old)


def test_query_and_evidence_exports_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = admin_key_file(data)
    base = ["--data-dir", str(data), "--key-file", str(key)]
    old = os.umask(0o022)
    try:
        res = tmp_path / "r.csv"
        res.write_text("")
        os.chmod(res, 0o666)  # a file a colleague left open: it must not stay readable
        sql = "SELECT count(*) AS n FROM payment_status"
        r = CliRunner().invoke(
            main, [*base, "query", sql, "--out", str(res), "--store", "transactional"], env=ENV
        )
        assert r.exit_code == 0, r.output
        assert _mode(res) == 0o600 and res.read_bytes()
        pack = tmp_path / "pack.zip"
        args = ["evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01"]
        r = CliRunner().invoke(main, [*base, *args, "--out", str(pack)], env=ENV)
        assert r.exit_code == 0, r.output
        assert _mode(pack) == 0o600 and pack.read_bytes()[:2] == b"PK"
    finally:
        os.umask(old)
