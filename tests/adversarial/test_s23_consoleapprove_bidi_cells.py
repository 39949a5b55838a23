"""Session 23 (consoleapprove23): text-reversing characters in a console cell or a report cell.

A value holding a bidirectional override (U+202E), an isolate (U+2066) or another control
reorders or hides the text around it where it is shown: "Trojan Source" inside a cell of the
console's tables or of a report's report.html / report.pdf, where the CLI already prints such
characters escaped (``audit.printable``). The console's cells, the policy diff it shows, and
the reports' cells now show them as the same visible escapes (``\\u202e``, ``\\x1b``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub.report_render import render_html, render_pdf

HOSTILE = "pay \u202e0001 DSU\u202c to \u2066acct\u2069\x1b[2K done\u2028x"
CONSOLE_JS = Path(__file__).resolve().parents[2] / "hub/console/static/console.js"


def _view() -> dict[str, Any]:
    return {
        "report_id": "r-1",
        "title": "Payments \u202eetad",
        "created_at": "2026-12-06T00:00:00Z",
        "created_by": "ann\u202e",
        "checkpoint": {"size": 1, "root": "00"},
        "summary": {"rows": 1},
        "queries": [{"name": "q", "sql": "SELECT 1", "store": "s", "rows": 1, "digest": "d"}],
    }


def _bare(text: str) -> list[str]:
    return [c for c in text if ord(c) in (0x1B, 0x202E, 0x202C, 0x2066, 0x2069, 0x2028)]


def test_report_html_shows_bidi_and_controls_escaped() -> None:
    out = render_html(_view(), {"q": {"columns": ["memo"], "rows": [{"memo": HOSTILE}]}})
    assert _bare(out) == [], out
    assert "pay \\u202e0001 DSU\\u202c to \\u2066acct\\u2069\\x1b[2K done\\u2028x" in out
    assert "Payments \\u202eetad" in out


def test_report_pdf_renders_hostile_cells() -> None:
    """The PDF's cells go through the same escape (``_fit``); rendering still succeeds."""
    from hub.report_render import _fit

    assert _bare(_fit(HOSTILE, 200)) == [] and "\\u202e" in _fit(HOSTILE, 200)
    pdf = render_pdf(_view(), {"q": {"columns": ["memo"], "rows": [{"memo": HOSTILE}]}})
    assert pdf.startswith(b"%PDF")


def test_console_cells_show_bidi_and_controls_escaped() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the console's script is not run here")
    script = (
        "const fs = require('fs');"
        "global.document = {getElementById: () => null, querySelector: () => ({content: ''})};"
        "const hub = new Function(fs.readFileSync(process.argv[1], 'utf8') + '\\nreturn hub;')();"
        "const v = JSON.parse(process.argv[2]);"
        "process.stdout.write(JSON.stringify([hub.cell(v), hub.cell({memo: v}),"
        " hub.visibleLines('+ ' + v + '\\n- x')]));"
    )
    out = subprocess.run(
        [node, "-e", script, str(CONSOLE_JS), json.dumps(HOSTILE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    plain, as_json, diff = json.loads(out)
    for shown in (plain, as_json, diff):
        assert _bare(shown) == [], shown
    assert plain == "pay \\u202e0001 DSU\\u202c to \\u2066acct\\u2069\\x1b[2K done\\u2028x"
    assert diff.split("\n") == ["+ " + plain, "- x"]
