"""The CLI needs a credential for every command: tests act as the data folder's first admin,
created with ``hub init`` on first use (as ``make run`` does)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings


def admin_key_file(data: Path | str) -> Path:
    """``<data>/admin.key``, created by ``hub init`` the first time."""
    path = Path(data) / "admin.key"
    if not path.exists():
        r = CliRunner().invoke(main, ["--data-dir", str(data), "init", "--key-file", str(path)])
        if r.exit_code == 1 and "already_initialised" in r.stderr:
            # The test made an admin key itself: issue one more for the CLI, as an admin would.
            h = bootstrap(load_settings(environ={}, data_dir=Path(data)))
            try:
                path.write_text(h.keys.create(["admin"], owner="admin").token + "\n")
            finally:
                h.close()
        else:
            assert r.exit_code == 0, r.output
    return path


def admin_args(data: Path | str) -> list[str]:
    """``--data-dir DATA --key-file DATA/admin.key``: global options acting as the admin."""
    return ["--data-dir", str(data), "--key-file", str(admin_key_file(data))]


def own_key(data: Path | str, token: str) -> str:
    """``token``'s owner rotates it with ``hub keys rotate``, acting with that key: the new key
    is the owner's own, whose secret its issuer never saw (the two-person rule counts only such
    a key as a second person's when the issuer proposed)."""
    token = token.strip()
    args = ["--data-dir", str(data), "--key", token, "keys", "rotate", token.split(":")[0]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return r.stdout.strip().splitlines()[-1]
