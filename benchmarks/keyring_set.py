"""CPU cost of the local keyring's row summary: open (full check), new keys, destroys.

Run from a checkout (old or new tree on sys.path first):
    python benchmarks/keyring_set.py [ROOT] [KEYS]
Prints CPU seconds (process time) of: making KEYS keys one by one, opening the keyring with
KEYS keys, and 20 destroys.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

from adapters.local_keystore import LocalKeyStore

MASTER = bytes(range(32))


def main() -> None:
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyring.sqlite"
        ks = LocalKeyStore(path, MASTER)
        t = time.process_time()
        for i in range(keys):
            ks.ensure_key(f"ACC-{i:06d}")
        make = time.process_time() - t
        ks.close()
        t = time.process_time()
        ks = LocalKeyStore(path, MASTER)
        opened = time.process_time() - t
        t = time.process_time()
        for i in range(20):
            ks.destroy(f"ACC-{i:06d}")
        destroy = time.process_time() - t
        ks.close()
    print(f"make {keys} keys {make:.3f}s  open {opened * 1000:.1f}ms  20 destroys {destroy:.3f}s")


if __name__ == "__main__":
    main()
