"""Helpers of the operations tests: the validators installed by ``infra/tools.sh``.

``tool(name)`` is the path of an installed tool; when it is missing the test is skipped with a
loud reason naming the install command, and under ``CI=true`` it fails instead (``.ci/run``
installs every tool first, so a missing one there is a broken install step).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.infra import in_ci

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "infra" / "tools.sh"


def tool(name: str) -> str:
    done = subprocess.run(
        ["bash", str(TOOLS), "path", name], capture_output=True, text=True, timeout=60
    )
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip().splitlines()[-1]
    reason = (
        f"{name.upper()} NOT INSTALLED: run 'bash infra/tools.sh install {name}' "
        f"(or 'make ops-tools'); the checks that need it did not run."
    )
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def run(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)
