"""The scoring worker (``hub ml score NAME --follow``): it waits, not ready, until a champion is
promoted; then scores every event exactly once as it arrives; its /health and /ready answer a
probe on a port of its own; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.ml_setup import ml_of
from hub.workers import WorkerHealth, follow_scoring
from tests.cli_keys import admin_args
from tests.service.test_ml import ALICE, BOB, T, _hub, _open, _pay, _register_small_model

pytestmark = pytest.mark.timeout(600)
PORT = 22084  # this test's health port (127.0.0.1)


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:  # not listening (yet)
        return 0, {}


def _until(check: Any, seconds: float = 120.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not reached within {seconds} s: {check()!r}")


def _seed(data: Path) -> None:
    hub = _hub(data)
    try:
        _open(hub, "A", "BASIC", "LOW", T - timedelta(days=30))
        for i in range(5):
            _pay(hub, f"P-{i}", "A", f"{100 + i}.00", T + timedelta(minutes=i))
    finally:
        hub.close()


def test_the_worker_waits_for_a_champion_then_scores_each_event_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed(data)
    hub = _hub(data)
    stop = threading.Event()
    health = WorkerHealth("ml.scoring.payment_risk", stale_s=30)
    health.serve("127.0.0.1", PORT)
    ml = ml_of(hub)
    worker = threading.Thread(
        target=follow_scoring,
        args=(lambda: ml.consumer("payment_risk"), hub.log, stop, health),
        kwargs={"poll_s": 0.1, "retry_s": 0.2},
    )
    worker.start()
    try:
        # Alive but not ready: no model yet, and it says so.
        status, body = _until(
            lambda: (lambda r: r if r[1]["error"] != "not started" else None)(_get(PORT, "/ready"))
        )
        assert status == 503 and "no model 'payment_risk'" in body["error"], body
        assert _get(PORT, "/health")[0] == 200
        assert ml.predictions("payment_risk") == []

        version = _register_small_model(hub)
        change = ml.changes.propose_champion(ALICE, "payment_risk", version, "first")
        ml.changes.approve(BOB, change.change_id)
        _until(lambda: len(ml.predictions("payment_risk")) == 5)
        _until(lambda: _get(PORT, "/ready")[0] == 200)
        assert _get(PORT, "/ready")[1]["lag"] == 0

        _pay(hub, "P-late", "A", "9900.00", T + timedelta(hours=1))  # arrives while it follows
        _until(lambda: len(ml.predictions("payment_risk")) == 6)
        time.sleep(1.0)  # more rounds go by: nothing is scored twice
        subjects = [p["subject"] for p in ml.predictions("payment_risk")]
        assert sorted(subjects) == sorted({*(f"P-{i}" for i in range(5)), "P-late"})
        assert _get(PORT, "/nope")[0] == 404
    finally:
        stop.set()
        worker.join(60)
        health.close()
        hub.close()
    assert not worker.is_alive()


def test_the_cli_worker_answers_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed(data)
    hub = _hub(data)
    try:
        version = _register_small_model(hub)
        change = ml_of(hub).changes.propose_champion(ALICE, "payment_risk", version, "first")
        ml_of(hub).changes.approve(BOB, change.change_id)
    finally:
        hub.close()
    hub_bin = str(Path(sys.executable).parent / "hub")
    args = [*admin_args(data), "ml", "score", "payment_risk"]
    from click.testing import CliRunner

    from hub.cli import main

    bad = CliRunner().invoke(main, [*args, "--health-port", "1"])  # refused before any work
    assert bad.exit_code != 0 and "--health-port needs --follow" in bad.stderr
    proc = subprocess.Popen(
        [hub_bin, *args, "--follow", "--poll", "0.2", "--health-port", str(PORT + 1)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HUB_PROJECTION_AUTOSTART": "false"},
    )
    try:
        _until(lambda: proc.poll() is None and _get(PORT + 1, "/ready")[0] == 200, 180)
        status, body = _get(PORT + 1, "/health")
        assert status == 200 and body["worker"] == "ml.scoring.payment_risk"
        assert body["processed"] >= 5 and body["lag"] == 0
    except Exception:
        proc.kill()
        print(proc.communicate()[1])
        raise
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "payment_risk: stopped after" in out
    hub = _hub(data)
    try:
        assert len(ml_of(hub).predictions("payment_risk")) == 5
    finally:
        hub.close()
