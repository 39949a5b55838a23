"""The Dockerfile: hadolint finds nothing, and the image is what the issue asks for."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ops.conftest import ROOT, run, tool

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    # The linter is really on: an unpinned base image and a root user are findings.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    done = run(tool("hadolint"), str(bad))
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest tag
    assert "DL3002" in done.stdout  # last USER is root


def test_multi_stage_non_root_pinned_and_locked() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"(?m)^FROM (\S+) AS (\w+)", text)
    assert [name for _, name in stages] == ["build", "runtime"]
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "pin the base"
    assert "requirements/lock.txt" in text and "-r requirements/lock.txt" in text
    users = re.findall(r"(?m)^USER (\S+)", text)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    for kept_out in (".venv", ".hub", ".infra", ".git", "tests"):
        assert kept_out in ignored


def test_image_command_is_the_one_ci_runs() -> None:
    # CMD is `hub serve --host 0.0.0.0 --port 8080`; the hub's own CLI accepts exactly that.
    cmd = re.search(r"(?m)^CMD \[(.*)\]", DOCKERFILE.read_text())
    assert cmd
    args = [a.strip().strip('"') for a in cmd.group(1).split(",")]
    assert args[0] == "serve"
    done = run(str(ROOT / ".venv" / "bin" / "hub"), *args, "--help")
    assert done.returncode == 0, done.stderr
