"""``hub report run|list|show|verify`` (issue 15), in its own module: the CLI opens its own hub,
and chDB allows one view store per process (tests/service/test_reports.py keeps one open)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from click.testing import CliRunner

from hub.cli import main
from tests.cli_keys import admin_args


def _zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return buf.getvalue()


def test_hub_report_run_list_show_verify(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = admin_args(data)
    runner = CliRunner()
    r = runner.invoke(
        main, [*args, "report", "run", "data-quality", "--out", str(tmp_path / "r.zip")]
    )
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    listed = runner.invoke(main, [*args, "report", "list"])
    assert listed.stdout.startswith(made["report_id"] + "\tdata-quality\t")
    shown = runner.invoke(
        main, [*args, "report", "show", made["report_id"], "--out", str(tmp_path / "s.zip")]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["manifest_sha256"] == made["manifest_sha256"]
    assert (tmp_path / "s.zip").read_bytes() == (tmp_path / "r.zip").read_bytes()
    ok = runner.invoke(main, [*args, "report", "verify", str(tmp_path / "s.zip")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK hub-report/v1"), ok.output
    files = _zip((tmp_path / "s.zip").read_bytes())
    files["report.pdf"] += b"\n"
    (tmp_path / "bad.zip").write_bytes(_rezip(files))
    bad = runner.invoke(main, [*args, "report", "verify", str(tmp_path / "bad.zip")])
    assert bad.exit_code == 1 and "report.pdf does not match" in bad.stderr
    wrong = runner.invoke(main, [*args, "report", "run", "weekly"])
    assert wrong.exit_code == 2 and "weekly" in wrong.output
    missing = runner.invoke(
        main, [*args, "report", "show", "0" * 8 + "-0000-0000-0000-" + "0" * 12]
    )
    assert missing.exit_code == 1 and "No report" in missing.stderr
