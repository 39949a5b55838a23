"""Red team (session 15), secrets at rest and in flight, what the hub can do about them:

- ``--key KEY_ID:SECRET`` on the command line is readable by other local users (``ps``): the
  person at a terminal is told to use ``--key-file`` or ``HUB_API_KEY_FILE`` instead.
- A data folder made before the hub made it 0700 (or widened since) keeps its mode: every
  start logs a warning naming the folder, its mode and the fix.
"""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings


# The hub's --key, and a command's own --key (a second person's, e.g. ``principals approve``;
# session 22: it was not warned about).
@pytest.mark.parametrize(
    "args",
    [
        ["--key", "k1:not-a-real-secret", "keys", "list"],
        ["principals", "approve", "he_0000", "--key", "k1:not-a-real-secret"],
    ],
)
def test_a_key_on_the_command_line_is_warned_about_at_a_terminal(
    tmp_path: Path, args: list[str]
) -> None:
    main, sub = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "--data-dir",
                str(tmp_path / "d"),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=sub,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        os.close(sub)
    told = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        told += chunk
    os.close(main)
    assert proc.returncode != 0  # the key does not exist: refused as before
    assert b"--key KEY_ID:SECRET on the command line shows the secret" in told, told


def test_a_wide_data_folder_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "old"
    data.mkdir()
    os.chmod(data, 0o755)
    with caplog.at_level(logging.WARNING, logger="hub.bootstrap"):
        bootstrap(load_settings(environ={}, data_dir=data)).close()
    (rec,) = [r for r in caplog.records if r.getMessage() == "data folder readable by other users"]
    assert rec.__dict__["mode"] == "755" and rec.__dict__["data_dir"] == str(data)
    caplog.clear()
    os.chmod(data, 0o700)
    with caplog.at_level(logging.WARNING, logger="hub.bootstrap"):
        bootstrap(load_settings(environ={}, data_dir=data)).close()
    assert not [r for r in caplog.records if "readable by other" in r.getMessage()]
