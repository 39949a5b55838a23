"""SIGKILL loses no acknowledged policy decision: a child hub answers allows from threads
(``decide``, ``decide_many``) and from an event loop (``decide_async``, ``decide_many_async``)
and prints each decision id once answered; after ``kill -9`` the reopened hub holds every
printed id on ``hub.decisions``, and each ``decide_many`` call's records stand together, in
request order."""

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
    import asyncio, sys, threading
    from pathlib import Path
    from core.ports.policy import Principal
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    hub = bootstrap(load_settings(environ={}, data_dir=Path(sys.argv[1])))
    policy = hub.policy
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    out = threading.Lock()
    def say(kind, ds):
        assert all(d.allow for d in ds), ds
        with out:
            print(kind, *(d.decision_id for d in ds), flush=True)
    def one(k):
        for i in range(10**9):
            say("one", [policy.decide(ann, "event.read", f"/v1/topics/t{k}/events")])
    def many(k):
        for i in range(10**9):
            req = [(ann, "event.read", f"/v1/topics/m{k}-{j}/events", None) for j in range(7)]
            say("many", policy.decide_many(req))
    async def loop_callers():
        async def single(k):
            while True:
                resource = f"/v1/topics/a{k}/events"
                say("one", [await policy.decide_async(ann, "event.read", resource)])
        async def several(k):
            while True:
                req = [(ann, "event.read", f"/v1/topics/b{k}-{j}/events", None) for j in range(5)]
                say("many", await policy.decide_many_async(req))
        await asyncio.gather(*(single(k) for k in range(4)), *(several(k) for k in range(2)))
    for k in range(4):
        threading.Thread(target=one, args=(k,), daemon=True).start()
    for k in range(2):
        threading.Thread(target=many, args=(k,), daemon=True).start()
    asyncio.run(loop_callers())
"""


def test_acknowledged_decisions_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(data)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[list[str]] = []
    kinds: set[str] = set()
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, *ids = line.split()
        kinds.add(kind)
        acked.append(ids)
        if len(acked) >= 300 and kinds == {"one", "many"}:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    assert len(acked) >= 300, proc.stderr.read()
    hub = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        stored = [d["decision_id"] for d in decisions(hub)]
    finally:
        hub.close()
    where = {decision_id: k for k, decision_id in enumerate(stored)}
    missing = [i for ids in acked for i in ids if i not in where]
    assert missing == [], f"{len(missing)} acknowledged decisions lost, e.g. {missing[:3]}"
    for ids in acked:  # one call's records together, in order
        first = where[ids[0]]
        assert stored[first : first + len(ids)] == ids
