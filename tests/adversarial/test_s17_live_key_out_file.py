"""``hub keys rotate --out FILE`` and ``hub enrol TOKEN --out FILE`` write a live API key: only
its owner may ever read it, whatever was at ``FILE.tmp`` before.

``_write_key`` opened ``FILE.tmp`` with ``O_CREAT | O_TRUNC`` and mode 0600, then renamed it
over ``FILE``. Mode 0600 applies only to a file it creates: a ``FILE.tmp`` that already existed
(a colleague's, a copy, anything world-readable) kept its mode, and the key landed at ``FILE``
readable by every local user. A ``FILE.tmp`` that was a symbolic link was followed: the secret
was written into the link's target (any file the writer may write, e.g. one another user made
and reads), and stayed there after the rename replaced the link. Session 17's live-surface
review.
"""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args

ENV = {"HUB_POLICY_ENGINE": "roletable", "HUB_PROJECTION_AUTOSTART": "false"}


def _analyst_key_id(data: Path) -> str:
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        return h.keys.create(["analyst"], owner="bob").key_id
    finally:
        h.close()


def _rotate(data: Path, key_id: str, out: Path) -> None:
    r = CliRunner().invoke(main, [*admin_args(data), "keys", "rotate", key_id, "--out", str(out)])
    assert r.exit_code == 0, r.output


def test_a_world_readable_leftover_tmp_does_not_make_the_key_world_readable(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key_id = _analyst_key_id(data)
    out = tmp_path / "bob.key"
    leftover = tmp_path / "bob.key.tmp"
    leftover.write_text("")
    os.chmod(leftover, 0o666)
    old = os.umask(0o022)
    try:
        _rotate(data, key_id, out)
    finally:
        os.umask(old)
    assert out.read_text().startswith("hk_")
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_tmp_symlink_is_not_followed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key_id = _analyst_key_id(data)
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    trap = elsewhere / "collected"
    trap.write_text("")
    os.chmod(trap, 0o666)
    out = tmp_path / "bob.key"
    (tmp_path / "bob.key.tmp").symlink_to(trap)
    _rotate(data, key_id, out)
    assert trap.read_text() == "", "the key was written through the planted link"
    assert out.read_text().startswith("hk_") and not out.is_symlink()
    assert out.stat().st_mode & 0o777 == 0o600
