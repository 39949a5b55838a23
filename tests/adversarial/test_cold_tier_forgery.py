"""Whoever can write the object store MUST NOT change the history the cold tier serves.

A segment's SHA-256 sits in its index entry, in the same store: rewriting both passed the old
check, and every read below the hot log (a consumer, ``hub tail``, a projection rebuild,
``GET /v1/topics/{topic}/events``) served the forged records, while ``hub ledger verify`` (which
checks the hot log) stayed green. Each forged segment here MUST fail the read naming it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from storage.tiering import ColdTierCorrupt, decode_segment, encode_segment
from tests.service.test_tier import data, offload, open_hub

__all__ = ["data"]  # the fixture, re-used


def forge(tmp_path: Path, change: str) -> tuple[int, int]:
    """Rewrite the first segment and its index entry consistently; (partition, base)."""
    seg = sorted((tmp_path / "objects" / "tier" / "accounts").rglob("*.seg"))[0]
    part, base = int(seg.parent.name), int(seg.stem)
    records = decode_segment(seg.read_bytes(), "accounts", part)
    if change == "value":
        value = bytearray(records[1].value or b"")
        value[-1] ^= 0x01
        records[1] = dataclasses.replace(records[1], value=bytes(value))
    elif change == "drop":
        del records[1]
    elif change == "repeat":
        records.insert(1, records[1])
    raw = encode_segment(records)
    entry_path = seg.with_suffix(".json")
    entry = json.loads(entry_path.read_text())
    entry.update(count=len(records), bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    for path, body in ((seg, raw), (entry_path, json.dumps(entry, sort_keys=True).encode())):
        path.chmod(0o644)
        path.write_bytes(body)
    return part, base


@pytest.mark.parametrize("change", ["value", "drop", "repeat"])
def test_a_segment_rewritten_with_its_index_entry_is_not_served(
    data: Path, tmp_path: Path, change: str
) -> None:
    offload(data)
    part, base = forge(tmp_path, change)
    h = open_hub(data)
    try:
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, base, 1000)
        assert f"tier/accounts/{part}/{base:020d}.seg" in err.value.message
    finally:
        h.close()


def test_an_untouched_cold_tier_still_reads_whole(data: Path) -> None:
    offload(data)
    h = open_hub(data)
    try:
        ends = h.log.end_offsets("accounts")
        got = sum(len(h.log.read("accounts", p, 0, 10_000)) for p in ends)
        assert got == 240  # every record (the rest of the offsets are transaction markers)
    finally:
        h.close()
