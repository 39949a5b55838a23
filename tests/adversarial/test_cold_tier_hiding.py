"""Whoever can write the object store MUST NOT hide cold records from readers or verification.

The cold tier began its reads at the highest ``start-N`` marker in the store and skipped any
offsets no segment spanned: a marker planted there (with the segments below it deleted, or not)
or a segment deleted with its index entry made consumers, ``hub tail`` and projection rebuilds
skip records silently, and ``hub ledger verify`` (which checked the hot log only) stayed green.
The ledger knows every record and every retention cut: a range it has leaves for MUST be served
or fail loudly, and ``hub ledger verify`` MUST fail naming the hidden records."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest

from storage.tiering import ColdTierCorrupt
from tests.cli_keys import admin_args
from tests.service.test_tier import ACCOUNTS, SEGMENT, data, offload, open_hub, run

__all__ = ["data"]  # the fixture, re-used


def tier_dir(tmp_path: Path, part: int) -> Path:
    return tmp_path / "objects" / "tier" / "accounts" / str(part)


def busiest(tmp_path: Path) -> int:
    """The partition with the most segments (at least two)."""
    parts = sorted(
        (len(list(p.glob("*.seg"))), int(p.name))
        for p in (tmp_path / "objects" / "tier" / "accounts").iterdir()
    )
    count, part = parts[-1]
    assert count >= 2, parts
    return part


def remove(path: Path) -> None:
    path.parent.chmod(0o755)
    path.unlink()


def plant_marker(tmp_path: Path, part: int, offset: int) -> None:
    (tier_dir(tmp_path, part) / f"start-{offset:020d}").write_bytes(b"")


def records_read(data: Path, part: int) -> list[int]:
    h = open_hub(data)
    try:
        start = h.log.beginning_offsets("accounts")[part]
        return [r.offset for r in h.log.read("accounts", part, start, 10_000)]
    finally:
        h.close()


def verify_fails(data: Path, *words: str) -> None:
    r = run(*admin_args(data), "ledger", "verify", "--full")
    assert r.exit_code == 1, r.output
    for word in words:
        assert word in r.output, r.output


def test_a_planted_start_marker_hides_nothing(data: Path, tmp_path: Path) -> None:
    offload(data)
    part = busiest(tmp_path)
    whole = records_read(data, part)
    plant_marker(tmp_path, part, 10 * SEGMENT)  # past every segment of the partition
    assert records_read(data, part) == whole  # from 0, every record: the marker is no cut
    h = open_hub(data)
    try:
        assert h.log.beginning_offsets("accounts")[part] == 0
        ends = h.log.end_offsets("accounts")
        total = sum(len(h.log.read("accounts", p, 0, 10_000)) for p in ends)
        assert total == ACCOUNTS
    finally:
        h.close()
    r = run(*admin_args(data), "ledger", "verify", "--full")
    assert r.exit_code == 0, r.output


def test_segments_deleted_behind_a_planted_marker_fail_reads_and_verify(
    data: Path, tmp_path: Path
) -> None:
    offload(data)
    part = busiest(tmp_path)
    first = sorted(tier_dir(tmp_path, part).glob("*.seg"))[0]
    end = json.loads(first.with_suffix(".json").read_text())["end"]
    plant_marker(tmp_path, part, end)  # what trim writes, without the ledger's cut
    remove(first.with_suffix(".json"))
    remove(first)
    h = open_hub(data)
    try:
        assert h.log.beginning_offsets("accounts")[part] == 0
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, 0, 10_000)
        assert f"accounts[{part}]" in err.value.message
        assert "no retention cut on the ledger" in err.value.message
    finally:
        h.close()
    verify_fails(data, "cold tier", f"accounts[{part}]")


@pytest.mark.parametrize("which", ["segment and entry", "entry only"])
def test_a_segment_removed_from_the_middle_fails_reads_and_verify(
    data: Path, tmp_path: Path, which: str
) -> None:
    offload(data)
    part = busiest(tmp_path)
    segs = sorted(tier_dir(tmp_path, part).glob("*.seg"))
    victim = segs[1] if len(segs) > 2 else segs[0]
    base = int(victim.stem)
    remove(victim.with_suffix(".json"))
    if which == "segment and entry":
        remove(victim)
    h = open_hub(data)
    try:
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, 0, 10_000)
        assert f"accounts[{part}] offset {base}" in err.value.message
        # a reader that asks past the gap is served: only the hidden records fail
        hot_start = h.ledger.log.beginning_offsets("accounts")[part]
        after = base + SEGMENT
        if after < hot_start:
            assert h.log.read("accounts", part, after, 1)[0].offset >= after
    finally:
        h.close()
    verify_fails(data, "cold tier", f"accounts[{part}]")


def test_the_last_segments_removed_fail_reads_below_the_hot_log(data: Path, tmp_path: Path) -> None:
    offload(data)
    part = busiest(tmp_path)
    last = sorted(tier_dir(tmp_path, part).glob("*.seg"))[-1]
    remove(last.with_suffix(".json"))
    remove(last)
    h = open_hub(data)
    try:
        with pytest.raises(ColdTierCorrupt):
            h.log.read("accounts", part, int(last.stem), 10)
    finally:
        h.close()
    verify_fails(data, "cold tier")


def test_a_retention_cut_on_the_ledger_still_ends_the_cold_tier(data: Path) -> None:
    """The ledger's cut, not the marker, is what lets the cold tier drop records: after the
    retention job (recorded, synced) the cut records are neither served nor missed."""
    offload(data)
    h = open_hub(data)
    try:
        h.governance.set_policy("topic:accounts", max_records=SEGMENT // 2, actor="alice")
        h.retention.run()
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    h = open_hub(data)  # a new process: only the ledger knows the cut
    try:
        for part, start in h.log.beginning_offsets("accounts").items():
            got = h.log.read("accounts", part, 0, 10_000)
            assert all(r.offset >= start for r in got)
    finally:
        h.close()
    r = run(*admin_args(data), "ledger", "verify", "--full")
    assert r.exit_code == 0, r.output


def test_an_index_entry_under_another_segment_s_name_is_refused(data: Path, tmp_path: Path) -> None:
    offload(data)
    part = busiest(tmp_path)
    entries = sorted(tier_dir(tmp_path, part).glob("*.json"))
    entries[1].chmod(0o644)
    entries[1].write_bytes(entries[0].read_bytes())  # two entries for the first segment
    h = open_hub(data)
    try:
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, 0, 10_000)
        assert entries[1].name in err.value.message
    finally:
        h.close()


def test_a_garbage_segment_with_a_matching_entry_fails_as_corrupt(
    data: Path, tmp_path: Path
) -> None:
    """Not a struct.error escaping from the decoder: the store's bytes are named."""
    offload(data)
    part = busiest(tmp_path)
    seg = sorted(tier_dir(tmp_path, part).glob("*.seg"))[0]
    raw = b"HUBSEG1\n" + b"\x00" * 21
    entry = json.loads(seg.with_suffix(".json").read_text())
    entry.update(bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    for path, body in ((seg, raw), (seg.with_suffix(".json"), json.dumps(entry).encode())):
        path.chmod(0o644)
        path.write_bytes(body)
    h = open_hub(data)
    try:
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, 0, 10)
        assert "not a readable segment" in err.value.message
    finally:
        h.close()


def test_a_huge_segment_is_refused_without_reading_it_whole(data: Path, tmp_path: Path) -> None:
    offload(data)
    part = busiest(tmp_path)
    seg = sorted(tier_dir(tmp_path, part).glob("*.seg"))[0]
    seg.chmod(0o644)
    with seg.open("wb") as f:
        f.truncate(256 << 20)  # sparse: huge to a reader, nothing on disk
    h = open_hub(data)
    try:
        tracemalloc.start()
        try:
            with pytest.raises(ColdTierCorrupt) as err:
                h.log.read("accounts", part, 0, 10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert "larger than" in err.value.message
        assert peak < 32 << 20, peak
    finally:
        h.close()


def test_a_planted_marker_does_not_keep_retention_from_deleting_cold_segments(
    data: Path, tmp_path: Path
) -> None:
    """trim returned early when the store's marker was already past the cut: the segments that
    retention cut stayed in the store (data kept past its policy), unnoticed."""
    offload(data)
    part = busiest(tmp_path)
    plant_marker(tmp_path, part, 10 * SEGMENT)
    h = open_hub(data)
    try:
        h.log.delete_records_before("accounts", part, SEGMENT)
    finally:
        h.close()
    left = [int(p.stem) for p in tier_dir(tmp_path, part).glob("*.seg")]
    assert left and min(left) >= SEGMENT, sorted(left)
