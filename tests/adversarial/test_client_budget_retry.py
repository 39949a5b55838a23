"""The hub's own HTTP client (the Airflow DAGs' ``hub_api.call``) and the in-flight body budget.

Finding: a 503 ``body_budget_full`` (``HUB_MAX_REQUEST_BYTES_IN_FLIGHT``, ``hub.api.bodylimit``)
failed the DAG's task at once, although the answer says "come back after Retry-After" and nothing
of the request ran. ``call`` now sends it again after Retry-After, a bounded number of times;
only that 503 (another may follow work done). Against a real hub over HTTP: another client holds
the budget with a body it has not finished sending, then lets go.

``hub publish`` does not speak HTTP (it ingests in-process), so it has no such answer to retry;
the console's scripts retry the same way (``hub.console.static.console.js``, ``sendWithinBudget``).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from tests.service.test_ingest_concurrent import stored_ids, trade

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "airflow" / "dags"))
import hub_api

BUDGET = 4096  # HUB_MAX_REQUEST_BYTES_IN_FLIGHT: the holder's 4000 bytes leave no room


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Hub, int, str]]:
    import uvicorn

    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_MAX_REQUEST_BYTES_IN_FLIGHT": str(BUDGET),
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    open_accounts(hub, ["ACC-1"])
    token = hub.keys.create(["admin"], principal="root").token
    (tmp_path / "key").write_text(token + "\n")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(hub), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setenv("HUB_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HUB_API_KEY_FILE", str(tmp_path / "key"))
    try:
        yield hub, port, token
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        hub.close()


def _hold_budget(port: int, token: str) -> socket.socket:
    """A publish that declares 4000 bytes and sends 10: admitted, it holds them until it ends."""
    import base64

    auth = base64.b64encode(token.encode()).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(
        b"POST /v1/topics/trades/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Basic " + auth.encode() + b"\r\nContent-Length: 4000\r\n\r\n"
        b'{"events":'
    )
    time.sleep(0.3)  # its head read: the budget is taken
    return s


def _publish() -> Any:
    return hub_api.call(
        "POST",
        "/v1/topics/trades/events",
        body={"events": [{"value": trade(1)}, {"value": trade(2)}]},
    )


def test_a_refused_body_is_sent_again_after_retry_after_and_stored_once(
    served: tuple[Hub, int, str],
) -> None:
    hub, port, token = served
    holder = _hold_budget(port, token)
    threading.Timer(0.5, holder.close).start()  # the other client lets go
    started = time.monotonic()
    answer = _publish()
    waited = time.monotonic() - started
    assert waited >= 1.0, waited  # the hub's Retry-After: 1
    assert answer["count"] == 2, answer
    assert sorted(stored_ids(hub)) == ["T-1", "T-2"]  # once each
    refused = hub.metrics.http_bodies_refused._value.get()
    assert refused >= 1  # it was refused first, then accepted


def test_retries_are_bounded_and_the_error_says_nothing_ran(
    served: tuple[Hub, int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, port, token = served
    monkeypatch.setattr(hub_api, "BUDGET_ATTEMPTS", 2)
    holder = _hold_budget(port, token)
    try:
        with pytest.raises(hub_api.HubCallFailed, match="body_budget_full 2 times") as info:
            _publish()
        assert "nothing of the request ran" in str(info.value)
        assert hub.metrics.http_bodies_refused._value.get() == 2
        assert stored_ids(hub) == []
    finally:
        holder.close()


def test_another_503_is_not_sent_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A 503 that is not the body budget (a write that may have been stored) fails at once."""
    from http.server import BaseHTTPRequestHandler

    from tests.adversarial._api import serve_local

    seen: list[str] = []

    class Unavailable(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            seen.append(self.path)
            body = json.dumps({"error_code": 50301, "reason": "unavailable", "message": "m"})
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return None

    for port in serve_local(Unavailable):
        monkeypatch.setenv("HUB_URL", f"http://127.0.0.1:{port}")
        (tmp_path / "key").write_text("hk_x:secret\n")
        monkeypatch.setenv("HUB_API_KEY_FILE", str(tmp_path / "key"))
        with pytest.raises(hub_api.HubCallFailed, match="answered 503"):
            _publish()
    assert len(seen) == 1
