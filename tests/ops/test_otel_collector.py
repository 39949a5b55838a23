"""Traces leave a real `hub serve` over OTLP/HTTP (HUB_OTEL_EXPORTER=otlp) and reach a real
OpenTelemetry Collector started by infra/otelcol.sh (core distribution built with ocb from the Go
module proxy), which prints them: the request, publish and log.append spans of one publish, in
the caller's trace."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.ops.conftest import ROOT, run
from tests.ops.hubserver import serve

SCRIPT = ROOT / "infra" / "otelcol.sh"
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _collector() -> None:
    if run("bash", str(SCRIPT), "path").returncode != 0:
        reason = (
            "OPENTELEMETRY COLLECTOR NOT BUILT: run 'bash infra/otelcol.sh build' (or 'make "
            "otelcol'; make ci-deps-late builds it); the OTLP export test did not run."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _logs() -> str:
    """The collector's whole log (``logs`` shows the last ``LINES`` lines, 200 by default)."""
    env = {**os.environ, "LINES": "1000000"}
    done = subprocess.run(
        ["bash", str(SCRIPT), "logs"], capture_output=True, text=True, env=env, timeout=60
    )
    return done.stdout


def test_a_publish_reaches_the_collector_as_one_trace(tmp_path: Path) -> None:
    _collector()
    was_running = run("bash", str(SCRIPT), "status").returncode == 0
    if not was_running:
        done = run("bash", str(SCRIPT), "start", timeout=120)
        assert done.returncode == 0, done.stderr
    try:
        env = dict(line.split("=", 1) for line in run("bash", str(SCRIPT), "env").stdout.split())
        assert env["HUB_OTEL_EXPORTER"] == "otlp"
        with serve(tmp_path, extra_env=env) as hub:
            auth = base64.b64encode(hub.admin_key.encode()).decode()
            event = {
                "payment_id": "P1",
                "account_id": "A1",
                "amount": "1.00",
                "currency": "EUR",
                "counterparty_name": "x",
                "counterparty_iban": "y",
                "counterparty_country": "DE",
                "initiated_at": "2026-11-24T10:00:00Z",
            }
            r = httpx.post(
                f"{hub.url}/v1/topics/payments/events",
                json={"events": [{"value": event, "event_type": "hub.payments.PaymentInitiated"}]},
                headers={
                    "Authorization": f"Basic {auth}",
                    "traceparent": f"00-{TRACE}-b7ad6b7169203331-01",
                },
                timeout=30,
            )
            assert r.status_code == 201, r.text
            # The server's span ends after its response is sent and leaves in the next batch:
            # wait for every expected span, not the first one seen.
            wanted = ("HTTP POST /v1/topics/{topic}/events", "publish payments", "log.append")
            deadline = time.monotonic() + 60
            logs = ""
            while time.monotonic() < deadline:
                logs = _logs()
                if TRACE in logs and all(name in logs for name in wanted):
                    break
                time.sleep(0.5)
        assert TRACE in logs, logs[-3000:]
        for name in wanted:
            assert name in logs, f"span {name!r} not received:\n{logs[-3000:]}"
        assert "hub.log.first_offset" in logs and "service.name: Str(hub)" in logs
    finally:
        if not was_running:
            run("bash", str(SCRIPT), "stop")


def test_the_collector_refuses_to_start_on_a_taken_port(tmp_path: Path) -> None:
    _collector()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        env = {**os.environ, "HUB_OTEL_PORT": str(taken), "HUB_INFRA_DIR": str(tmp_path)}
        done = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=60
        )
    assert done.returncode != 0 and "HUB_OTEL_PORT" in done.stderr
