"""Session 21 (issue 13, ingest speed): the file path with this session's fast steps stores what
it stored without them, byte for byte, on random JSON-lines and CSV files.

The fast steps: ``Lines.block``'s native line starts (``lines._native_line_starts``), the
natural-key header values from one native pass (``columnar._native_prefixed_bytes``) and the
erasure look-up skipped while nothing was ever erased (``KeyStore.any_erased``). The reference
hub runs with all three off (the numpy pass, Arrow's join, the look-up of every batch). Both
hubs get the same random file (good rows, bad rows, duplicates, CRLF ends, blank lines, small
blocks so that batches straddle them), then erase one account, then get a second file naming
it: the data topic's stored batches, the quarantine entries and the results must be equal.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from adapters.local_keystore import LocalKeyStore
from core.ports.policy import Principal
from hub.bootstrap import Hub
from ingest import columnar, files, lines
from ingest.files import publish_file
from tests.service.test_ingest_arrow_readers import csv_file, jsonl
from tests.service.test_ingest_arrow_readers import two as two
from tests.service.test_ingest_columnar import quarantined
from tests.service.test_ingest_line_blocks import _batches
from tests.service.test_ingest_line_blocks import fixed as fixed

OPERATOR = Principal("ops", frozenset({"admin"}))


def _file(folder: Path, fmt: str, seed: int) -> Path:
    folder.mkdir()
    if fmt == "jsonl":
        return jsonl(folder / "t.jsonl", 400, seed=seed)
    path = csv_file(folder / "t.csv", 400, seed=seed)
    rnd = random.Random(seed)
    rows = path.read_bytes().split(b"\n")
    path.write_bytes(b"".join(x + rnd.choice([b"\n", b"\r\n", b"\r\r\n"]) for x in rows[:-1]))
    return path


def _run(h: Hub, first: Path, second: Path, restart: Any) -> list[dict[str, Any]]:
    restart()
    out = [publish_file(h.ingest, first, "trades", batch_size=61).result.as_dict()]
    h.eraser.erase(OPERATOR, "ACC-3", "DSR-21", tenant_scope=None)
    out.append(publish_file(h.ingest, second, "trades", batch_size=61).result.as_dict())
    return out


@pytest.mark.parametrize("seed", [3, 4, 11])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_fast_steps_store_the_reference_bytes(
    two: tuple[Hub, Hub],
    fixed: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    seed: int,
) -> None:
    reference, fast = two
    first = _file(tmp_path / "1", fmt, seed)
    second = _file(tmp_path / "2", fmt, seed + 100)
    assert b"ACC-3" in second.read_bytes()
    monkeypatch.setattr(files, "_LINES_BLOCK_BYTES", 4096)  # batches straddle blocks
    with monkeypatch.context() as m:
        m.setattr(lines, "_native_line_starts", None)
        m.setattr(columnar, "_native_prefixed_bytes", None)
        m.setattr(LocalKeyStore, "any_erased", lambda self: True)
        want = _run(reference, first, second, fixed)
    got = _run(fast, first, second, fixed)
    assert got == want
    assert want[0]["accepted"] > 100 and want[0]["duplicates"] > 0
    assert "key_destroyed" in {r["reason_code"] for r in want[1]["rejections"]}
    assert _batches(fast, "trades") == _batches(reference, "trades")
    assert quarantined(fast) == quarantined(reference)
