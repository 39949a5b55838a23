"""``tests/lanes.sh`` (``make test``): one lane lists every group, every test file of the suite
lands in exactly one group (the split groups' globs include in one and ignore in the other), and a
group that collects nothing (pytest's exit 5) or none of whose paths exist fails the run.

A stand-in Python prints the arguments pytest would get and exits with ``STUB_RC``, so the
script's own logic runs in well under a second, without pytest or any component. Which files a
group selects is worked out here as pytest does it (``--ignore`` a path or a folder above the
file, ``--ignore-glob`` fnmatch on the absolute path); a real ``--collect-only`` of both
adversarial groups gave 431 + 2,216 = 2,647 tests, the whole folder's."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ["unit", "contract", "service", "integration", "adversarial", "browser", "differential"]
FOLDERS += ["ha", "ops"]

STUB = """#!/bin/sh
shift 2  # -m pytest
echo "ARGS $*"
exit "${STUB_RC:-0}"
"""


def _run(tmp_path: Path, root: Path, rc: int = 0) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HUB_TEST_LANES": "1",
        "HUB_TEST_FSYNC": "1",  # no eatmydata in front of the stand-in
        "HUB_TEST_TIMINGS": str(tmp_path / "timings.log"),
        "HUB_TEST_LOGS": str(tmp_path / "logs"),  # never the user's kept logs
        "PY": str(stub),
        "STUB_RC": str(rc),
    }
    return subprocess.run(
        ["bash", str(root / "tests/lanes.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _selected(args: list[str]) -> set[Path]:
    """The test files pytest collects from ``args`` (paths, ``--ignore``, ``--ignore-glob``: a
    glob is matched against the absolute path, as pytest does)."""
    paths = [ROOT / a for a in args if not a.startswith("-")]
    ignored = [ROOT / a.split("=", 1)[1] for a in args if a.startswith("--ignore=")]
    globs = [str(ROOT / a.split("=", 1)[1]) for a in args if a.startswith("--ignore-glob=")]
    files: set[Path] = set()
    for path in paths:
        files |= set(path.rglob("test_*.py")) if path.is_dir() else {path}
    return {
        f
        for f in files
        if not any(f == i or i in f.parents for i in ignored)
        and not any(fnmatch.fnmatch(str(f), g) for g in globs)
    }


def _groups(out: str) -> list[list[str]]:
    return [line.split()[5:] for line in out.splitlines() if line.startswith("[a] ARGS ")]


def test_every_test_file_runs_in_exactly_one_group(tmp_path: Path) -> None:
    done = _run(tmp_path, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    groups = _groups(done.stdout)
    assert len(groups) == done.stdout.count("[a] pytest ") >= 11, done.stdout
    seen: dict[Path, list[int]] = {}
    for k, args in enumerate(groups):
        files = _selected(args)
        assert files, f"group {k} ({args}) selects no test file"
        for f in files:
            seen.setdefault(f, []).append(k)
    every = {f for folder in FOLDERS for f in (ROOT / "tests" / folder).rglob("test_*.py")}
    assert every == set(seen), sorted(str(f) for f in every ^ set(seen))
    twice = {str(f.relative_to(ROOT)): ks for f, ks in seen.items() if len(ks) > 1}
    assert not twice, twice


def test_a_group_that_collects_nothing_fails_the_run(tmp_path: Path) -> None:
    done = _run(tmp_path, ROOT, rc=5)
    assert done.returncode == 5, done.stdout
    assert "pytest collected no tests in tests/unit tests/contract" in done.stderr


def test_a_group_none_of_whose_paths_exist_fails_the_run(tmp_path: Path) -> None:
    """In a checkout without test folders every group is named and fails; the run exits 4."""
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests/lanes.sh", root / "tests/lanes.sh")
    done = _run(tmp_path, root)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "ARGS" not in done.stdout
    assert "none of tests/adversarial" in done.stderr
    assert done.stderr.count("exists; that is a failure") >= 11, done.stderr


@pytest.mark.parametrize("rc", [1, 2])
def test_a_failing_group_fails_the_run_and_the_others_still_run(tmp_path: Path, rc: int) -> None:
    done = _run(tmp_path, ROOT, rc=rc)
    assert done.returncode == rc, done.stdout
    assert done.stdout.count("[a] ARGS ") >= 11
    assert "digest of the failed groups" in done.stdout
