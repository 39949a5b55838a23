"""``hub keys create`` on a disk full for the ledger (session 23, trust leftovers).

Session 22's exhaustion red team (docs/benchmarks/s22-redteam-exhaust22.md, "Open", low): when
the disk had no room for the command's close-time ledger sync, ``hub keys create`` printed the
new key and exited 1 ``storage_full``, although the key had been created and worked: an operator
(or a script) believing the exit status threw away a live key, or issued a second one. Now the
outcome is truthful: the key is printed, the command exits 0 with a warning that the ledger sync
is pending, the key authenticates, and once there is room the next sync covers the issuance and
``hub ledger verify`` passes. The ledger store is made full the way SQLite reports a full disk
(``PRAGMA max_page_count`` at its size, as ``test_s22_rtex_disk_full`` does, after a ``VACUUM``
so that no page has room left).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import hub.bootstrap
from hub.cli import main
from hub.settings import load_settings


def _fill(conn: sqlite3.Connection) -> None:
    """``conn``'s database may not grow: packed (``VACUUM``: no room left in its pages) and
    held at its size, SQLite answers ``SQLITE_FULL`` to a write as on a full disk."""
    conn.execute("VACUUM")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _cli(data: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--data-dir", str(data), *args], catch_exceptions=False)


def test_a_key_created_while_the_ledger_cannot_sync_is_reported_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d"
    admin = tmp_path / "admin.key"
    r = _cli(data, "init", "--key-file", str(admin))
    assert r.exit_code == 0, r.output
    real = hub.bootstrap.bootstrap

    def ledger_full(*args: Any, **kwargs: Any) -> Any:
        h = real(*args, **kwargs)
        conn = h.ledger.store._conn  # type: ignore[attr-defined]
        assert isinstance(conn, sqlite3.Connection)
        _fill(conn)  # the disk is full for the ledger
        return h

    monkeypatch.setattr(hub.bootstrap, "bootstrap", ledger_full)
    r = _cli(data, "--key-file", str(admin), "keys", "create", "--role", "analyst", "--owner", "al")
    token = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
    assert ":" in token, r.output
    assert r.exit_code == 0, r.output
    assert "storage_full" in r.stderr and "pending" in r.stderr, r.stderr
    monkeypatch.setattr(hub.bootstrap, "bootstrap", real)
    # the key printed is the key in effect
    key_id, _, secret = token.partition(":")
    h = real(load_settings(data_dir=data))
    try:
        principal = h.keys.verify(key_id, secret)
        assert principal.id == "al" and "analyst" in principal.roles
    finally:
        h.close()
    # room again: a sync covers the issuance and the ledger verifies
    r = _cli(data, "--key-file", str(admin), "ledger", "sync")
    assert r.exit_code == 0, r.output
    r = _cli(data, "--key-file", str(admin), "ledger", "verify")
    assert r.exit_code == 0, r.output
