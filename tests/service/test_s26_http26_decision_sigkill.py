"""SIGKILL loses no acknowledged ingest request's decision, now that the decision is stored in
the request's batch transaction (session 26): a child hub answers ingest requests from four
threads (JSON, NDJSON, Arrow bodies, and bodies refused whole, whose allow is stored alone) and
prints each request's number once answered; after ``kill -9``, wherever it fell (between an
append and its answer included), the reopened hub holds a decision for every answered request,
naming it (``X-Hub-Purpose``), and the trades of every answered batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.registry_twins import decisions

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
    import base64, random, sys, threading
    from pathlib import Path
    from fastapi.testclient import TestClient
    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts
    from tests.service.test_ingest_http_columnar import json_body
    hub = bootstrap(load_settings(environ={}, data_dir=Path(sys.argv[1])))
    open_accounts(hub, ["A", *(f"ACC-{i}" for i in range(60))])
    token = hub.keys.create(["admin"], principal="root").token
    auth = "Basic " + base64.b64encode(token.encode()).decode()
    out = threading.Lock()
    counter = iter(range(10**9))
    def caller(client, w):
        rnd = random.Random(w)
        while True:
            with out:
                k = next(counter)
            if k % 7 == 3:
                body, media, want = b'{"events": [', "application/json", 422
            else:
                body = json_body(rnd.choice([1, 30]), rnd, 0.1, False, base=100 * k)
                media, want = "application/json", 200
            headers = {"Authorization": auth, "Content-Type": media, "X-Hub-Purpose": f"r{k}"}
            r = client.post("/v1/ingest/trades", content=body, headers=headers)
            assert r.status_code == want, r.text
            accepted = r.json()["accepted"] if want == 200 else 0
            with out:
                print(k, accepted, flush=True)
    with TestClient(create_app(hub)) as client:
        threads = [threading.Thread(target=caller, args=(client, w), daemon=True) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
"""


def test_answered_ingest_requests_keep_their_decisions_after_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(data)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answered: dict[str, int] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        k, accepted = line.split()
        answered[f"r{k}"] = int(accepted)
        if len(answered) >= 120:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    assert len(answered) >= 120, proc.stderr.read()
    hub = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        found = {d["purpose"]: d for d in decisions(hub) if d["action"] == "ingest.publish"}
        trades = sum(hub.log.end_offsets("trades").values())
    finally:
        hub.close()
    missing = [k for k in answered if k not in found]
    assert missing == [], f"{len(missing)} answered requests lost their decision: {missing[:5]}"
    assert all(found[k]["allow"] for k in answered)
    # Every answered batch's trades are stored (offsets also count transaction markers).
    assert trades >= sum(answered.values())
    assert sum(1 for k in answered if int(k[1:]) % 7 == 3) >= 10  # refused bodies among them
