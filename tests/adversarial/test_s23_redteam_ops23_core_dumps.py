"""A crashed hub process leaves no core file holding its keys (session 23).

A hub process holds every secret of the hub in memory: the key ring's master key and the data
keys it unwrapped (a subject's key is the only thing an erasure destroys), the event log's MAC
key, the API key pepper, the ledger's signing key, the plaintext of the PII it sealed or opened.
Nothing stopped the kernel from writing all of it to a core file when the process crashes (a
fault in the native extension or a library, an abort, ``kill -ABRT``/``-SEGV``/``-QUIT``): a
service manager or a container often allows core files (Docker starts processes with an
unlimited ``ulimit -c``), and the file lands in the working folder, or with a core handler
(systemd-coredump, apport) in a system folder kept for weeks, copied into crash reports and host
backups. There the keys outlive the data folder's 0700, the KEK's separation and every
erasure (a subject erased since is readable again with the data key the core holds).

Every process that builds a hub (``bootstrap``) now makes itself non-dumpable
(``PR_SET_DUMPABLE`` 0: no core file through any handler, and other processes of the same user
can no longer read its memory or its environment through /proc) and sets its core file size
limit to 0 (inherited by the children it starts: the Rego and Parquet children).
``HUB_CORE_DUMPS=true`` turns both off, to debug a crash on a machine that holds no real keys.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, resource, signal, sys
from pathlib import Path
# as a service manager or a container may start it: core files allowed, of any size
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened

env = {"HUB_PROJECTION_AUTOSTART": "false", **dict(a.split("=", 1) for a in sys.argv[2:])}
h = bootstrap(load_settings(environ=env, data_dir=Path(sys.argv[1])))
event = account_opened("ACC-1", name="Erin Example", opened_at="2026-11-25T10:00:00Z")
h.publisher.publish("accounts", [event], producer="t")  # a subject's data key unwrapped
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGABRT)  # a crash
"""


def core_files_written() -> bool:
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    return not pattern.startswith("|") and "/" not in pattern


def crash(tmp_path: Path, *env: str) -> list[Path]:
    """Run a hub process in ``tmp_path``/run that crashes; the core files it left there."""
    run = tmp_path / "run"
    run.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "hub"), *env],
        cwd=run,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "ready" in out.stdout, out.stderr[-3000:]
    assert out.returncode == -signal.SIGABRT, (out.returncode, out.stderr[-3000:])
    return [p for p in run.iterdir() if p.name.startswith("core")]


def key_material(data: Path) -> list[tuple[str, bytes]]:
    """The secret files' contents (as stored: the text or bytes a process reads into memory)."""
    return [
        (str(p.relative_to(data)), p.read_bytes().strip())
        for p in sorted((data / "keys").rglob("*"))
        if p.is_file() and not p.name.endswith(".pub")
    ]


@pytest.mark.skipif(not core_files_written(), reason="core files go to a handler here")
def test_a_crashed_hub_process_leaves_no_core_file(tmp_path: Path) -> None:
    cores = crash(tmp_path)
    leaked = []
    for core in cores:
        dump = core.read_bytes()
        leaked += [name for name, secret in key_material(tmp_path / "hub") if secret in dump]
        leaked += ["the subject's name"] if b"Erin Example" in dump else []
    assert not cores, f"core file(s) {[c.name for c in cores]} left, holding {leaked}"


@pytest.mark.skipif(not core_files_written(), reason="core files go to a handler here")
def test_core_dumps_can_be_turned_back_on_to_debug(tmp_path: Path) -> None:
    assert crash(tmp_path, "HUB_CORE_DUMPS=true")
