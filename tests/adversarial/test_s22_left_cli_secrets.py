"""Session 22 (trust leftovers, 2): ``hub enrol`` took its one-time token (and the approver's
second half) as command-line arguments, where every local user reads them (``ps``,
``/proc/<pid>/cmdline``) while the command runs and the shell keeps them in its history (a token
whose redemption failed stays redeemable). Now the token comes from stdin, ``--token-file`` or
``HUB_ENROL_TOKEN``, the second half from ``--second-file`` or ``HUB_ENROL_SECOND``, and a
token or second half given as an argument is refused (exit 2) before anything is redeemed.

Real CLI runs: the installed ``hub`` entry point in a subprocess, on a real data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

HUB = str(Path(sys.executable).with_name("hub"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_API_KEY", "HUB_ENROL_"))}
    return env | extra


def hub(data: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HUB, "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=300,
    )


def _token(data: Path, tmp: Path, role: str, owner: str) -> str:
    admin = tmp / "admin.key"
    if not admin.exists():
        r = hub(data, "init", "--key-file", str(admin))
        assert r.returncode == 0, r.stderr
    r = hub(data, "--key-file", str(admin), "keys", "create", "--role", role, "--owner", owner)
    assert r.returncode == 0 and "hub enrol" in r.stderr, r.stderr
    return r.stdout.strip()


def test_enrol_refuses_a_token_on_its_command_line_and_takes_it_from_stdin_file_or_env(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # All three issued while nobody could approve yet (bootstrap): each token is whole.
    token, token2, token3 = (_token(data, tmp_path, "security_admin", o) for o in ("b", "c", "d"))
    # The argument form: refused, named, nothing redeemed (the token still works afterwards).
    r = hub(data, "enrol", token)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "command line" in r.stderr and "--token-file" in r.stderr and "stdin" in r.stderr
    assert token not in r.stdout + r.stderr  # the refusal does not echo it either
    r = hub(data, "enrol", "--token", token)  # the environment variable's option, spelled out
    assert r.returncode == 2 and "command line" in r.stderr, r.stderr
    # stdin
    r = hub(data, "enrol", stdin=token + "\n")
    assert r.returncode == 0, r.stderr
    key_id, _, secret = r.stdout.strip().partition(":")
    assert key_id.startswith("hk_") and secret
    # a file, and the environment
    (tmp_path / "t2").write_text(token2 + "\n")
    r = hub(data, "enrol", "--token-file", str(tmp_path / "t2"))
    assert r.returncode == 0 and r.stdout.startswith("hk_"), r.stderr
    r = hub(data, "enrol", HUB_ENROL_TOKEN=token3)
    assert r.returncode == 0 and r.stdout.startswith("hk_"), r.stderr
    # Nothing given at all (stdin empty): a clear error, not a traceback.
    r = hub(data, "enrol")
    assert r.returncode == 2 and "enrolment token" in r.stderr, r.stderr


def test_enrol_refuses_the_second_half_on_its_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = _token(data, tmp_path, "security_admin", "erin")
    r = hub(data, "enrol", "--second", "abc.def", stdin=token)
    assert r.returncode == 2 and "--second-file" in r.stderr, r.stderr
    assert "abc.def" not in r.stderr
