"""Interoperability: the hub's ledger read by a standard tlog-tiles client.

``tools/tlogverify`` is a small Go program on golang.org/x/mod/sumdb/note and .../sumdb/tlog
(the packages the Go checksum database's clients use), built by ``tools/tlogverify/build.sh``
into ~/.cache/hub/bin. Over real HTTP it verifies the hub's signed checkpoint with
``note.Open``, reads hash tiles through ``tlog.TileHashReader`` (which checks every tile against
the signed root), proves an entry read from its entry bundle with ``tlog.CheckRecord`` and, on
the second run after the ledger grew, proves the new checkpoint consistent with the first with
``tlog.CheckTree``. Without Go the test skips locally, and fails under CI=true.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from audit.note import generate_key
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic
from tests.infra import in_ci
from tests.service.test_ledger import make_hub, publish

REPO = Path(__file__).resolve().parents[2]


def _client_binary() -> Path:
    done = subprocess.run(
        ["bash", str(REPO / "tools" / "tlogverify" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        reason = (
            "GO TLOG CLIENT NOT AVAILABLE: tools/tlogverify/build.sh failed, so the tlog-tiles "
            f"interoperability test did not run.\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["sqlite", "tiles"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Hub, str]]:
    hub = make_hub(tmp_path / "data", ledger_store=request.param, projection_autostart=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("HUB_TEST_HTTP_PORT", "0"))))
    server = uvicorn.Server(
        uvicorn.Config(create_app(hub), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield hub, f"http://127.0.0.1:{sock.getsockname()[1]}/v1/ledger/tlog"
    server.should_exit = True
    thread.join(15)
    sock.close()
    hub.close()


def test_a_standard_tlog_tiles_client_verifies_the_hubs_ledger(
    served: tuple[Hub, str], tmp_path: Path
) -> None:
    binary = _client_binary()
    hub, url = served
    token = hub.keys.create(["compliance_officer"], principal="tlog-client").token
    env = {**os.environ, "HUB_TLOG_AUTH": basic(token)["Authorization"]}
    key = hub.ledger.public_key()
    state = tmp_path / "verified"

    def client(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "-url", url, "-key", key, "-state", str(state), *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    publish(hub, 700)
    first = hub.ledger.sync(force_checkpoint=True).size
    done = client("-index", "300")
    assert done.returncode == 0, done.stderr
    assert f"size={first} " in done.stdout and "entry=300" in done.stdout

    publish(hub, 300, start=700)
    second = hub.ledger.sync(force_checkpoint=True).size
    assert second > first
    done = client()  # the last entry (a partial tile and bundle), consistency with the first
    assert done.returncode == 0, done.stderr
    assert f"size={second} " in done.stdout and f"consistent with {first}" in done.stdout

    # a client holding a root the hub never signed is refused (a forked or rewritten log)
    state.write_text(f"{hub.ledger.config.origin}\n{first}\n{'A' * 43}=\n")
    done = client()
    assert done.returncode == 1 and "consistency" in done.stderr

    # a wrong key: the checkpoint's signature does not verify
    other = generate_key(hub.ledger.config.origin).verifier.encode()
    done = subprocess.run(
        [str(binary), "-url", url, "-key", other], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1 and "checkpoint signature" in done.stderr, done.stderr
