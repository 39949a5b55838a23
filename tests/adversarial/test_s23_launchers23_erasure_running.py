"""An erasure still running in another process is not completed a second time (session 23).

An erasure's intent file (``governance.erasure_intents``) exists from before its key destroy
until it is recorded, so it is there while the erasure RUNS too. A second process opening the
same data folder meanwhile (a ``hub`` CLI command, another replica, a restart of ``hub serve``
beside a long ``hub erase``) found the intent with its keys destroyed, took it for an
interrupted erasure and completed it: it recorded the erasure on the ledger, and then the
running one recorded it again: two ``subject.erase`` entries for one erasure.

The eraser now holds a lock on its intent while it runs; an open completes only intents it
can lock (their erasure is no longer running). Here a child process pauses inside its erasure
right after the key destroy while this process opens the folder: nothing is completed or
recorded by the open, and once the child finishes there is exactly one entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SUBJECT, OTHER = "ACC-R1", "ACC-R2"
ENV = {"HUB_PROJECTION_AUTOSTART": "false"}
CHILD = [sys.executable, "-m", "tests.adversarial._erasure_child"]


def erasures(h: Hub, subject: str) -> list[str]:
    return [
        str(e["actor"])
        for e in h.ledger.entries(action="subject.erase", resource=f"subject:{subject}")
    ]


def test_an_open_during_a_running_erasure_does_not_complete_it_again(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    child = subprocess.Popen(
        [*CHILD, str(data), "pause", "DSR-99", "officer-2", SUBJECT, "Rae Run", OTHER, "Kai Kept"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        assert line.strip() == "paused", child.stderr.read() if child.stderr else ""
        intents = data / "erasures-pending"
        assert len(list(intents.glob("*.json"))) == 1
        h = bootstrap(load_settings(environ=ENV, data_dir=data))  # completes what is left
        try:
            assert erasures(h, SUBJECT) == [], "the open completed a running erasure"
            assert len(list(intents.glob("*.json"))) == 1, "the open took a running erasure"
        finally:
            h.close()
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0 and "recorded" in out, err[-3000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not list(intents.glob("*.json"))
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        assert erasures(h, SUBJECT) == ["officer-2"], "one erasure, recorded once"
    finally:
        h.close()
