"""``_aead.seal_many`` with the bound AADs built natively (``seal_batch_bound``) against the
previous path (``bind_subject`` per distinct (subject, aad) in Python, then ``seal_batch``),
same process, alternating rounds. The batch is kafka_publish_stages' shape: 2,000 payments, two
PII fields each (4,000 values of ~20 bytes), 500 distinct subjects, AADs of (topic, field,
subject). Reported: CPU microseconds per sealed value and the new/old ratio per round.
Run: ``.venv/bin/python -m benchmarks.seal_many_ab [ROUNDS]``.
"""

from __future__ import annotations

import os
import sys
import time

from adapters import _aead
from adapters._aead import DataKey


def main(rounds: int = 5) -> None:
    keys = {f"A{i}": (1, DataKey(os.urandom(32))) for i in range(500)}
    subjects, plain, aads = [], [], []
    for i in range(2000):
        for field in ("counterparty_name", "counterparty_iban"):
            s = f"A{i % 500}"
            subjects.append(s)
            plain.append(f"Person {i % 1000} DE8937040044".encode())
            aads.append(f"payments\x1f{field}\x1f{s}".encode())
    n, reps = len(plain), 20
    bound = _aead._seal_batch_bound
    for r in range(rounds):
        got = {}
        for name, fn in (("old", None), ("new", bound)):
            _aead._seal_batch_bound = fn
            c0 = time.process_time()
            for _ in range(reps):
                _aead.seal_many(1, keys.__getitem__, subjects, plain, aads)
            got[name] = (time.process_time() - c0) / (n * reps) * 1e6
        _aead._seal_batch_bound = bound
        print(
            f"round {r}: old {got['old']:.3f} us/value, new {got['new']:.3f} us/value,"
            f" ratio {got['new'] / got['old']:.3f}"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
