"""Session 25, red team (docs/benchmarks/s25-redteam-attacker25.md): one publish stalls the API.

``POST /v1/topics/{topic}/events`` is an ``async`` route that called the publisher (encode,
seal, append, fsync, ledger) synchronously, on the event loop: while one publisher key's batch
was written, no other request of the process was served, any tenant's, not even ``/health``
(a load balancer then takes the instance out). A key sending large batches back to back held
the whole API. Now the batch is written in the thread pool, as ``/v1/ingest`` does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import QUOTE, basic, issue_key

SLOW_S = 3.0


def test_other_requests_are_served_while_a_batch_is_published(tmp_path: Path) -> None:
    hub = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        key = basic(issue_key(hub, "publisher", "gus", "globex"))
        real = hub.publisher.publish
        writing = threading.Event()

        def slow_publish(*a: Any, **kw: Any) -> Any:  # a large batch, a slow disk
            writing.set()
            time.sleep(SLOW_S)
            return real(*a, **kw)

        hub.publisher.publish = slow_publish  # type: ignore[method-assign]
        body = {"events": [{"value": dict(QUOTE)}]}
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            codes: list[int] = []
            t = threading.Thread(
                target=lambda: codes.append(
                    c.post("/v1/topics/quotes/events", json=body, headers=key).status_code
                )
            )
            t.start()
            assert writing.wait(60)
            started = time.monotonic()
            r = c.get("/health")
            waited = time.monotonic() - started
            writing_still = t.is_alive()
            t.join(60)
        assert r.status_code == 200 and codes == [201], (r.status_code, codes)
        assert writing_still and waited < SLOW_S / 2, waited
    finally:
        hub.close()


def test_other_requests_are_served_while_quarantine_is_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /v1/quarantine/replay`` (async) replayed on the event loop too: a steward's
    replay of many entries held the API the same way."""
    import ingest.quarantine

    real = ingest.quarantine.replay
    replaying = threading.Event()

    def slow_replay(*a: Any, **kw: Any) -> Any:  # many entries, a slow disk
        replaying.set()
        time.sleep(SLOW_S)
        return real(*a, **kw)

    monkeypatch.setattr(ingest.quarantine, "replay", slow_replay)
    hub = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        key = basic(issue_key(hub, "admin", "root"))
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            codes: list[int] = []
            t = threading.Thread(
                target=lambda: codes.append(
                    c.post("/v1/quarantine/replay", json={"offsets": []}, headers=key).status_code
                )
            )
            t.start()
            assert replaying.wait(60)
            started = time.monotonic()
            r = c.get("/health")
            waited = time.monotonic() - started
            still = t.is_alive()
            t.join(60)
        assert r.status_code == 200 and codes == [200], (r.status_code, codes)
        assert still and waited < SLOW_S / 2, waited
    finally:
        hub.close()
