"""Incremental verify CPU, the code before this branch's witness change (old) and after (new),
alternated in one process on a tile store with many checkpoints."""

import importlib.util
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
import ledger.verify as new
from tests.service.test_ledger import make_hub, publish

spec = importlib.util.spec_from_file_location("verify_old", sys.argv[2])
old = importlib.util.module_from_spec(spec)
sys.modules["verify_old"] = old
spec.loader.exec_module(old)
data = Path(sys.argv[1])  # usage: DATA_DIR OLD_VERIFY_PY (git show 53c7962:ledger/verify.py)
h = make_hub(data, checkpoint_every_leaves=8, ledger_store="tiles")
if not h.ledger.store.checkpoints():
    for i in range(10):
        publish(h, 2000, start=i * 2000)
        h.ledger.sync(force_checkpoint=True)
print("checkpoints", len(h.ledger.store.checkpoints()), "leaves", h.ledger.store.tree_size())
rep = new.verify_ledger(h.ledger)
assert rep.ok, rep.first
cp = h.ledger.store.latest_checkpoint()
since = new.save_verified(h.ledger, data / "state.note", rep, cp, time.time_ns() // 10**6, None)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


for rnd in range(4):
    for name, mod in (("old", old), ("new", new)):
        s = mod.Verified.parse(since.text())
        c0 = cpu()
        r = mod.verify_ledger(h.ledger, since=s)
        c = cpu() - c0
        assert r.ok, r.first
        print(rnd, name, f"{c * 1000:.1f} ms CPU", "load", os.getloadavg()[0])
h.close()
