"""Cost of the keyring's anchor (``governance.keyring_anchor``): new keys, and each open.

Run from a checkout (old or new tree on sys.path first):
    python benchmarks/keyring_anchor.py ROOT [KEYS] [OPENS]
Prints CPU seconds (process time) and wall seconds of making KEYS keys one by one (each its own
committed transaction; in the new tree the anchor is written after each), then of OPENS opens
of the keyring holding them (the new tree: the open plus ``KeyringAnchor.hold``). The old tree
has no anchor: the same steps without it. Alternate old and new runs in one shell loop.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1])

from adapters.local_keystore import LocalKeyStore

try:
    from governance.keyring_anchor import KeyringAnchor
except ImportError:  # the old tree
    KeyringAnchor = None  # type: ignore[assignment,misc]

MASTER = bytes(range(32))


def _open(path: Path) -> LocalKeyStore:
    ks = LocalKeyStore(path, MASTER)
    if KeyringAnchor is not None:
        KeyringAnchor(path.with_name("keyring.anchor"), b"k" * 32, path).hold(ks)
    return ks


def main() -> None:
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    opens = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        path = Path(tmp) / "keyring.sqlite"
        ks = _open(path)
        c, w = time.process_time(), time.perf_counter()
        for i in range(keys):
            ks.ensure_key(f"ACC-{i:06d}")
        make = (time.process_time() - c, time.perf_counter() - w)
        ks.close()
        c, w = time.process_time(), time.perf_counter()
        for _ in range(opens):
            _open(path).close()
        opened = (time.process_time() - c, time.perf_counter() - w)
    tree = "new" if KeyringAnchor is not None else "old"
    print(
        f"{tree} keys={keys}: per new key {make[0] / keys * 1e3:.3f} ms CPU, "
        f"{make[1] / keys * 1e3:.3f} ms wall; per open {opened[0] / opens * 1e3:.2f} ms CPU, "
        f"{opened[1] / opens * 1e3:.2f} ms wall"
    )


if __name__ == "__main__":
    main()
