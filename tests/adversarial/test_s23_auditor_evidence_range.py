"""Session 23 auditor review: an evidence pack claiming a period it cannot cover
(docs/benchmarks/s23-redteam-auditor23.md).

``hub evidence export --from 2026-01-01 --to 2027-01-01`` run in June wrote a pack whose
hub-verify line read "OK ... range 2026-01-01 .. 2027-01-01": a compliance officer hands it
over at year end as the year's evidence, and nothing logged after June (an incident, an
override) is in it. hub-verify checks that every entry lies inside the range, never that the
range had passed: the pack's newest checkpoint (the export's, its time signed) says when the
entries end. The OK line, the reports and the export now say the pack is INCOMPLETE past that
time; a range that ended before the export reads as before.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit.verify import main as hub_verify
from hub.cli import main
from tests.cli_keys import admin_args

ENV = {"HUB_POLICY_ENGINE": "roletable", "HUB_PROJECTION_AUTOSTART": "false"}


def _export(data: Path, out: Path, until: str) -> str:
    args = ["evidence", "export", "--from", "2000-01-01", "--to", until, "--out", str(out)]
    r = CliRunner().invoke(main, [*admin_args(data), *args], env=ENV)
    assert r.exit_code == 0, r.output
    return r.stderr


def test_a_pack_whose_range_ends_after_its_export_says_it_is_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    future = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    pack = tmp_path / "year.zip"
    err = _export(data, pack, future)
    assert hub_verify(["bundle", str(pack)]) == 0
    out = capsys.readouterr().out
    assert f"range 2000-01-01T00:00:00+00:00 .. {future}T00:00:00+00:00 (INCOMPLETE" in out, out
    assert "entries only up to " + datetime.now(UTC).date().isoformat() in out, out
    with zipfile.ZipFile(io.BytesIO(pack.read_bytes())) as zf:
        assert b"Incomplete range" in zf.read("report.html")
    assert "INCOMPLETE" in err and f"--to {future} is after the export" in err


def test_a_pack_whose_range_has_passed_reads_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    admin_args(data)  # hub init: entries logged now
    past = tmp_path / "past.zip"
    err = _export(data, past, datetime.now(UTC).date().isoformat())  # ended at midnight
    assert "INCOMPLETE" not in err
    assert hub_verify(["bundle", str(past)]) == 0
    out = capsys.readouterr().out
    assert "INCOMPLETE" not in out and "range 2000-01-01" in out, out
    with zipfile.ZipFile(io.BytesIO(past.read_bytes())) as zf:
        assert b"Incomplete range" not in zf.read("report.html")
