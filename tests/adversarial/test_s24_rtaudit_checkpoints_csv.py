"""Session 24 (redteam-auditor24): an evidence pack's ``checkpoints.csv`` against its notes.

``checkpoints.csv`` is what an auditor reads of a pack's checkpoints: when each was signed (a
long stretch without one is a stretch the ledger was not being sealed), its root and hash.
hub-verify checked the signed notes and the file's SHA-256 in the manifest, never the file's
rows against the notes: a pack signed with the hub's key (a tool holding it, a writer's bug, an
operator building a pack to suit: the threat of tests/adversarial/test_s19_rtb_pack_claims.py)
verified OK with a checkpoint's time moved to close a gap, or a row dropped. Now each row must
be its note's size, time, root and hash, in order, one row per checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.adversarial.test_s19_rtb_pack_claims import invalid, resigned
from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)


def _rows(b: bytes) -> list[str]:
    return b.decode().splitlines(keepends=True)


def test_the_honest_pack_still_verifies(pack: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _data, out, pub = pack
    r = hub_verify("bundle", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr


def test_a_checkpoint_time_moved_in_checkpoints_csv(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def earlier(b: bytes) -> bytes:
        lines = _rows(b)
        cells = lines[-1].split(",")
        cells[2] = str(int(cells[2]) - 86_400_000_000)  # time_us a day earlier
        lines[-1] = ",".join(cells)
        return "".join(lines).encode()

    dst = resigned(data, out, tmp_path / "p.zip", files={"checkpoints.csv": earlier})
    invalid(dst, pub, "checkpoints.csv line", "time_us")


def test_a_row_dropped_from_checkpoints_csv(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def drop(b: bytes) -> bytes:
        return "".join(_rows(b)[:-1]).encode()

    dst = resigned(data, out, tmp_path / "p.zip", files={"checkpoints.csv": drop})
    invalid(dst, pub, "checkpoints.csv has", "rows")


def test_a_gap_hidden_in_the_manifests_checkpoint_summary(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The manifest states the checkpoint summary (count, first and last, median interval,
    gaps) in numbers: one re-signed with other numbers verified OK."""
    data, out, pub = pack

    def other(m: dict[str, Any]) -> None:
        m["checkpoint_summary"]["gaps"] += 1

    dst = resigned(data, out, tmp_path / "p.zip", change=other)
    invalid(dst, pub, "checkpoint_summary gaps")


def test_a_population_count_padded_in_the_manifest(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def padded(m: dict[str, Any]) -> None:
        m["populations"]["CC6"] += 5

    dst = resigned(data, out, tmp_path / "p.zip", change=padded)
    invalid(dst, pub, "manifest populations")
