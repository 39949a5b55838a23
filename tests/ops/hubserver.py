"""A real `hub serve` process for the operations tests (the command the images run)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ops.conftest import ROOT

HUB = ROOT / ".venv" / "bin" / "hub"


@dataclass
class Served:
    url: str
    port: int
    admin_key: str
    admin_key_file: Path
    token_file: Path
    output: Path  # stdout and stderr of the process (its whole log)
    data_dir: Path


def port() -> int:
    return int(os.environ.get("HUB_INFRA_HUB_PORT", "18080"))


@contextmanager
def serve(
    tmp: Path, *, demo: bool = False, extra_env: dict[str, str] | None = None
) -> Iterator[Served]:
    data, key_file, token = tmp / "data", tmp / "admin.key", tmp / "metrics.token"
    token.write_text(secrets.token_hex(32))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
        "HUB_METRICS_TOKEN_FILE": str(token),
        "HUB_CHECKPOINT_EVERY_MS": "1000",
        **(extra_env or {}),
    }
    if demo:
        for args in (
            ["--data-dir", str(data), "init", "--key-file", str(key_file)],
            ["--data-dir", str(data), "--key-file", str(key_file), "demo", "load"],
        ):
            done = subprocess.run(
                [str(HUB), *args], capture_output=True, text=True, env=env, timeout=300
            )
            assert done.returncode == 0, done.stdout + done.stderr
    p = port()
    output = tmp / "serve.log"
    command = [str(HUB), "--data-dir", str(data), "serve", "--port", str(p)]
    command += ["--admin-key-file", str(key_file)]
    with output.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{p}"
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine: minutes, not seconds
        while True:
            assert proc.poll() is None, output.read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (
                "hub serve did not answer /health in 300 s:\n" + output.read_text()[-3000:]
            )
            time.sleep(0.3)
        yield Served(url, p, key_file.read_text().strip(), key_file, token, output, data)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
