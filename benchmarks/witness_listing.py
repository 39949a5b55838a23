"""An incremental ``hub ledger verify``'s cost against the size of the witness folder, alternated
in one process on one tile-store ledger: the code before this branch (old: ``git show
<base>:ledger/verify.py``) on a flat folder (the only layout it knows), the new code on the same
flat folder (an old witness folder), and the new code on the folder layout it writes.

The folder is filled with N copies (1k, 10k, 100k) of the first checkpoint's note under sizes
below the remembered checkpoint: what a long history leaves (one copy per checkpoint, a second
under ``hub serve``), which an incremental run does not re-check (the full run does). Usage:
``python benchmarks/witness_listing.py DATA_DIR BASE_COMMIT 1000,10000,100000``."""

import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, os.getcwd())
import ledger.verify as new
from adapters.local_objectstore import LocalObjectStore
from ledger.witness import legacy_key, witness_key
from tests.service.test_ledger import make_hub, publish


def load(name: str, source: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(source, f"<{name}>", "exec"), mod.__dict__)
    return mod


def at_base(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{sys.argv[2]}:{path}"], check=True, capture_output=True, text=True
    ).stdout


# the old verify with the old witness module (flat keys), not today's
load("witness_old", at_base("ledger/witness.py"))
old = load(
    "verify_old",
    at_base("ledger/verify.py").replace("from ledger.witness import", "from witness_old import"),
)
data = Path(sys.argv[1])
counts = [int(n) for n in sys.argv[3].split(",")]
top = max(counts)
h = make_hub(data, checkpoint_every_leaves=top, ledger_store="tiles")
if not h.ledger.store.checkpoints():
    publish(h, top + 2000)
    h.ledger.sync(force_checkpoint=True)
rep = new.verify_ledger(h.ledger)
assert rep.ok, rep.first
cp = h.ledger.store.latest_checkpoint()
assert cp is not None and cp.size > top
since = new.save_verified(h.ledger, data / "state.note", rep, cp, time.time_ns() // 10**6, None)
assert since is not None
first = h.ledger.store.checkpoints()[0]
flat = data / "witness-flat"
folders = h.ledger.witness
assert isinstance(folders, LocalObjectStore)


def mirror() -> None:
    """The real copies (the hub writes the folder layout) also in the flat folder."""
    for cp in h.ledger.store.checkpoints():
        path = flat / legacy_key(cp.size)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(cp.note)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


have = 0
for n in counts:
    for size in range(have + 1, n + 1):  # written directly: the listing is what is measured
        for path in (flat / legacy_key(size), folders.root / witness_key(size)):
            if size != first.size and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(first.note)
    have = n
    # a few new entries and one new checkpoint: what an incremental run covers
    publish(h, 10, start=top + 2000 + n)
    h.ledger.sync(force_checkpoint=True)
    mirror()
    runs = (
        ("old code, flat", old, LocalObjectStore(flat)),
        ("new code, flat", new, LocalObjectStore(flat)),
        ("new code, folders", new, folders),
    )
    times: dict[str, list[float]] = {name: [] for name, _m, _w in runs}
    for _ in range(5):
        for name, mod, witness in runs:
            h.ledger.witness = witness
            s = mod.Verified.parse(since.text())
            c0 = cpu()
            r = mod.verify_ledger(h.ledger, since=s)
            times[name].append(cpu() - c0)
            assert r.ok, (name, r.first)
    med = {name: sorted(t)[2] for name, t in times.items()}
    base = med["old code, flat"]
    print(
        f"{n:>7} copies: "
        + "  ".join(f"{k} {v * 1000:6.1f} ms ({v / base:.3f}x)" for k, v in med.items())
        + f"  load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    h.ledger.witness = folders
h.close()
