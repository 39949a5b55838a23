"""The CLI needs a credential for every command: tests act as the data folder's first admin,
created with ``hub init`` on first use (as ``make run`` does)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hub.cli import main


def admin_key_file(data: Path | str) -> Path:
    """``<data>/admin.key``, created by ``hub init`` the first time."""
    path = Path(data) / "admin.key"
    if not path.exists():
        r = CliRunner().invoke(main, ["--data-dir", str(data), "init", "--key-file", str(path)])
        assert r.exit_code == 0, r.output
    return path


def admin_args(data: Path | str) -> list[str]:
    """``--data-dir DATA --key-file DATA/admin.key``: global options acting as the admin."""
    return ["--data-dir", str(data), "--key-file", str(admin_key_file(data))]
