"""Infra per checkout: two checkouts on one machine get their own state folder and ports, run the
same component side by side, and stopping one leaves the other; a failed start leaves nothing
running. (OPA is the component: light, and already needed by the contract tests.)"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.infra import require
from tests.ops.conftest import ROOT

pytestmark = pytest.mark.timeout(900)


def _clean_env() -> dict[str, str]:
    """The environment without any HUB_INFRA_* or HUB_*_PORT: what a fresh shell has."""
    return {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("HUB_INFRA_") or (k.startswith("HUB_") and k.endswith("_PORT")))
    }


def _checkout(where: Path) -> Path:
    (where / "governance").mkdir(parents=True)
    shutil.copytree(ROOT / "infra", where / "infra")
    shutil.copytree(ROOT / "governance" / "policies", where / "governance" / "policies")
    return where


def _env_of(checkout: Path) -> dict[str, str]:
    done = subprocess.run(
        ["bash", str(checkout / "infra" / "env.sh")],
        capture_output=True, text=True, env=_clean_env(), timeout=30, check=True,
    )  # fmt: skip
    return dict(shlex.split(line)[-1].split("=", 1) for line in done.stdout.splitlines())


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _opa(checkout: Path, command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "infra" / "opa.sh"), command],
        capture_output=True, text=True, env={**_clean_env(), **extra}, timeout=300,
    )  # fmt: skip


def _two_checkouts(tmp_path: Path) -> tuple[Path, Path]:
    """Two checkouts whose derived port blocks differ and whose OPA ports are free here."""
    found: list[Path] = []
    for i in range(40):
        c = _checkout(tmp_path / f"checkout-{i}")
        env = _env_of(c)
        if _free(int(env["HUB_OPA_PORT"])) and all(
            _env_of(f)["HUB_INFRA_SLOT"] != env["HUB_INFRA_SLOT"] for f in found
        ):
            found.append(c)
        if len(found) == 2:
            return found[0], found[1]
    pytest.skip("no two free port blocks found among 40 checkout paths")


def test_env_is_per_checkout_and_explicit_settings_win(tmp_path: Path) -> None:
    a, b = _checkout(tmp_path / "a"), _checkout(tmp_path / "b")
    ea, eb = _env_of(a), _env_of(b)
    assert ea["HUB_INFRA_DIR"] == str((a / ".infra").resolve())
    assert eb["HUB_INFRA_DIR"] == str((b / ".infra").resolve())
    slot = int(ea["HUB_INFRA_SLOT"])
    assert ea["HUB_KAFKA_PORT"] == str(10000 + 100 * slot + 92)
    assert ea["HUB_KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{ea['HUB_KAFKA_PORT']}"
    # CI and developers who set their own keep them.
    done = subprocess.run(
        ["bash", str(a / "infra" / "env.sh")],
        capture_output=True, text=True, timeout=30, check=True,
        env={**_clean_env(), "HUB_KAFKA_PORT": "21092", "HUB_INFRA_DIR": "/tmp/elsewhere"},
    )  # fmt: skip
    assert "export HUB_KAFKA_PORT=21092" in done.stdout
    assert "export HUB_INFRA_DIR=/tmp/elsewhere" in done.stdout
    bad = subprocess.run(
        ["bash", str(a / "infra" / "env.sh")],
        capture_output=True, text=True, timeout=30, env={**_clean_env(), "HUB_INFRA_SLOT": "x"},
    )  # fmt: skip
    assert bad.returncode == 2 and "HUB_INFRA_SLOT=x" in bad.stderr


def test_two_checkouts_run_side_by_side(tmp_path: Path) -> None:
    require("opa", "the two-checkout test")  # builds the opa binary once, if needed
    a, b = _two_checkouts(tmp_path)
    ports = [int(_env_of(c)["HUB_OPA_PORT"]) for c in (a, b)]
    try:
        for c in (a, b):
            done = _opa(c, "start")
            assert done.returncode == 0, done.stderr
        for c, port in zip((a, b), ports, strict=True):
            assert (c / ".infra" / "opa" / "opa.pid").exists()
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        assert _opa(a, "stop").returncode == 0
        assert _opa(a, "status").returncode != 0
        assert _opa(b, "status").returncode == 0, "stopping one checkout stopped the other"
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/health", timeout=5).status_code == 200
    finally:
        _opa(a, "stop")
        _opa(b, "stop")
    assert all(_free(p) for p in ports)


def test_a_failed_start_leaves_nothing_running(tmp_path: Path) -> None:
    require("opa", "the failed-start test")
    (c, _) = _two_checkouts(tmp_path)
    port = int(_env_of(c)["HUB_OPA_PORT"])
    done = _opa(c, "start", HUB_OPA_START_TIMEOUT="0")  # gives up before the server answers
    assert done.returncode != 0
    assert "stopping it" in done.stderr
    assert not (c / ".infra" / "opa" / "opa.pid").exists()
    assert (c / ".infra" / "opa" / "opa.log").exists()  # kept for the post-mortem
    mine = subprocess.run(
        ["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=10
    )
    assert mine.stdout.strip() == "", f"left running: {mine.stdout}"


def test_two_starts_at_once_in_one_checkout_leave_one_server_that_stop_finds(
    tmp_path: Path,
) -> None:
    # Two test sessions of one checkout may start a component at the same moment. Before the
    # start lock (infra/lib.sh one_start_at_a_time) the second OPA could not bind, its failed
    # start removed the pid file, and the first server ran on, unseen by status and stop.
    require("opa", "the concurrent-start test")
    (c, _) = _two_checkouts(tmp_path)
    port = int(_env_of(c)["HUB_OPA_PORT"])
    cmd = ["bash", str(c / "infra" / "opa.sh"), "start"]
    try:
        procs = [
            subprocess.Popen(cmd, env=_clean_env(), stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errs
        assert _opa(c, "status").returncode == 0, errs
    finally:
        _opa(c, "stop")
    assert _free(port), "a server outlived `opa.sh stop`"
