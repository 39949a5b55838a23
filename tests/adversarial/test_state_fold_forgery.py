"""State re-encoded in the log file. Services fold their state (API keys, policies, schemas,
config) from ``hub.*`` and ``_schemas`` topics with plain reads, which check the batch CRC but
not the log's MAC chain: whoever could write ``log.sqlite`` re-encoded the batch that issued
their analyst key with the role ``auditor`` and a fresh CRC, and the next start folded the
forged role (the default verify does not read old log batches). A fold now checks each batch
it reads against the log's MAC chain and refuses a forged one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite_log.batch import decode_batch, encode_batch
from core.errors import HubError
from hub.bootstrap import bootstrap
from hub.settings import load_settings


def _open(data: Path):  # type: ignore[no-untyped-def]
    return bootstrap(load_settings(environ={}, data_dir=data))


def test_a_reencoded_key_issue_is_not_folded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = _open(data)
    try:
        key_id = h.keys.create(["analyst"], principal="mallory").key_id
    finally:
        h.close()
    with sqlite3.connect(data / "log.sqlite") as conn:
        (tid,) = conn.execute("SELECT id FROM topics WHERE name = 'hub.principals'").fetchone()
        rows = conn.execute("SELECT id, data FROM batches WHERE topic_id = ?", (tid,)).fetchall()
        forged = 0
        for bid, blob in rows:
            _n, ts, keys, values, headers = decode_batch(blob)
            values = list(values)
            for i, v in enumerate(values):
                if v is not None and key_id.encode() in v and b"analyst" in v:
                    values[i] = v.replace(b"analyst", b"auditor")
                    forged += 1
            if forged:
                new = encode_batch(list(keys), values, [tuple(x) for x in headers], list(ts))
                conn.execute("UPDATE batches SET data = ? WHERE id = ?", (new, bid))
                break
    assert forged == 1
    with pytest.raises(HubError, match=r"hub\.principals"):
        h = _open(data)
        try:
            roles = h.keys.get(key_id).roles
            pytest.fail(f"the forged key was folded with roles {sorted(roles)}")
        finally:
            h.close()
