"""Session 23 (issue 13, ingest speed): an Avro container file's batches decoded in one native
call per batch (``avrofile.native_batch_decoder``) store what the per-block decoding stored,
byte for byte.

Both hubs get the same random files (good rows, rows failing rules, repeated ids, small blocks
so that batches cut blocks, a block with a string that is not UTF-8 so that the native decoder
declines it and fastavro reads its batches); the reference hub decodes each block alone and
concatenates, as before. Then one account is erased and a second file names it. The data
topic's stored batches, the quarantine entries (with their original datums) and the results
must be equal, and so must the refusal of the damaged file and what was committed before it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import fastavro
import pytest

from core.avro import serde
from core.ports.policy import Principal
from hub.bootstrap import Hub
from ingest import avrofile
from ingest.files import FileUnreadable, publish_file
from tests.service.test_ingest_arrow_readers import NOW, trade
from tests.service.test_ingest_arrow_readers import two as two
from tests.service.test_ingest_columnar import quarantined
from tests.service.test_ingest_line_blocks import _batches
from tests.service.test_ingest_line_blocks import fixed as fixed

OPERATOR = Principal("ops", frozenset({"admin"}))

if avrofile.native_batch_decoder is None or avrofile.native_decoder is None:
    pytest.fail("hub_native predates avro_batch_columns: rerun `make setup`.")


def _avro(h: Hub, path: Path, n: int, seed: int, damage: bool = False) -> Path:
    from datetime import timedelta

    rnd = random.Random(seed)
    schema = h.registry.parsed(h.registry.get_version("trades-value", "latest").id)
    datums = []
    for i in range(n):
        r = trade(i, rnd)
        r.pop("fees", None)
        roll = rnd.random()
        if roll < 0.05:
            r["account_id"] = "ACC-UNKNOWN"
        elif roll < 0.10:
            r["quantity"] = "-1"
        elif roll < 0.13:
            r["trade_id"] = ""
        elif roll < 0.16:
            r["executed_at"] = (NOW + timedelta(hours=3)).isoformat()
        elif roll < 0.22:
            r["account_id"] = "ACC-3"
        datums.append(serde.from_json(r, schema.parsed))
    parsed = fastavro.parse_schema(json.loads(schema.text))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fo:
        fastavro.writer(fo, parsed, datums, sync_interval=rnd.choice([300, 900, 2_500]))
    if damage:  # a trade id past the middle: its first byte becomes invalid UTF-8
        data = bytearray(path.read_bytes())
        name = datums[n // 2 + 7]["trade_id"].encode()
        at = data.index(name, len(data) // 2)
        data[at] = 0xC3
        data[at + 1] = 0x28
        path.write_bytes(bytes(data))
    return path


def _run(h: Hub, paths: list[Path], restart: Any) -> list[Any]:
    restart()
    out: list[Any] = []
    for k, p in enumerate(paths):
        if k == 1:
            h.eraser.erase(OPERATOR, "ACC-3", "DSR-23", tenant_scope=None)
        try:
            out.append(publish_file(h.ingest, p, "trades", batch_size=97).result.as_dict())
        except FileUnreadable as exc:
            out.append(str(exc))
    return out


@pytest.mark.parametrize("seed", [5, 8, 13])
def test_batch_decoding_stores_the_per_block_bytes(
    two: tuple[Hub, Hub],
    fixed: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    reference, fast = two
    paths = [
        _avro(reference, tmp_path / "1.avro", 500, seed),
        _avro(reference, tmp_path / "2.avro", 400, seed + 100),
        _avro(reference, tmp_path / "3.avro", 300, seed + 200, damage=True),
    ]
    calls = {"batch": 0}
    batch_decoder = avrofile.native_batch_decoder
    assert batch_decoder is not None

    def counted(*a: Any) -> Any:
        calls["batch"] += 1
        return batch_decoder(*a)

    with monkeypatch.context() as m:
        m.setattr(avrofile, "native_batch_decoder", None)
        want = _run(reference, paths, fixed)
    monkeypatch.setattr(avrofile, "native_batch_decoder", counted)
    got = _run(fast, paths, fixed)
    assert calls["batch"] >= 9  # the fast hub took the batch path
    assert got == want
    assert want[0]["accepted"] > 250 and want[0]["duplicates"] + len(want[0]["rejections"]) > 40
    assert "key_destroyed" in {r["reason_code"] for r in want[1]["rejections"]}
    assert isinstance(want[2], str) and "is corrupt" in want[2]
    assert _batches(fast, "trades") == _batches(reference, "trades")
    assert quarantined(fast) == quarantined(reference)
