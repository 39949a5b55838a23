"""The evidence pack's PDF report (``report.pdf``, fpdf2), for auditors who file PDFs.

The same content as ``report.html`` (``ledger.report``): per control its population size,
counts per action and outcome, one row per entry (and the first lines of a change's diff), the
checkpoints summarised, and how to verify the pack. Content streams are written uncompressed so
that the text stays searchable with plain tools (``grep``, ``pdftotext``); core PDF fonts only,
so text is Latin-1 (other characters print as ``?``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from ledger.controls import CONTROLS
from ledger.report import HEADERS, checkpoint_lines, row_cells

_DIFF_LINES = 30
PDF_ROWS = 300
"""Rows listed per control in the PDF (fpdf2 lays a table row out in ~30 ms); the counts above
them cover the whole population, and every row is in ``populations/<control>.csv``."""
_DIFFS = 50
_WIDTHS = (12, 34, 30, 28, 52, 16, 22, 34, 22)  # mm, landscape A4 minus margins: 250


def _t(text: Any) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


class _Report(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.compress = False
        self._title = title
        self.set_auto_page_break(auto=True, margin=14)
        self.set_margins(12, 12, 12)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font("Helvetica", size=7)
        self.cell(0, 5, _t(f"{self._title} - page {self.page_no()}"), align="C")

    def heading(self, text: str, size: int = 13) -> None:
        self.ln(2)
        self.set_font("Helvetica", "B", size)
        self.multi_cell(0, 7, _t(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=9)

    def para(self, text: str, size: int = 9) -> None:
        self.set_font("Helvetica", size=size)
        self.multi_cell(0, 4.6, _t(text), new_x="LMARGIN", new_y="NEXT")

    def pairs(self, rows: Sequence[tuple[str, str]], widths: tuple[int, int] = (60, 190)) -> None:
        self.set_font("Helvetica", size=8)
        with self.table(
            width=sum(widths),
            col_widths=widths,
            text_align="LEFT",
            first_row_as_headings=False,
            align="LEFT",
        ) as t:
            for k, v in rows:
                r = t.row()
                r.cell(_t(k))
                r.cell(_t(v))


def render_pdf(
    *,
    origin: str,
    public_key: str,
    range_from: str,
    range_to: str,
    controls: Sequence[str],
    entries: Sequence[Mapping[str, Any]],
    counts: Mapping[str, Mapping[str, int]],
    ingested: Mapping[str, int],
    checkpoints: Mapping[str, Any],
    created_at: str,
    exported_by: str,
) -> bytes:
    pdf = _Report(f"SOC 2 evidence pack, {origin}, {range_from} to {range_to}")
    pdf.add_page()
    pdf.heading("SOC 2 evidence pack", 16)
    pdf.para(
        f"Ledger {origin}; entries from {range_from} to {range_to} (log time, end exclusive). "
        f"Exported {created_at} by {exported_by}."
    )
    by_control: dict[str, list[Mapping[str, Any]]] = {c: [] for c in controls}
    for e in entries:
        for c in e.get("controls") or [e["control"]]:
            by_control.setdefault(c, []).append(e)
    pdf.heading("Summary")
    pdf.pairs([(CONTROLS[c], f"{len(by_control[c])} entries") for c in controls], (170, 80))
    head = FontFace(emphasis="BOLD", fill_color=(235, 238, 242))
    for c in controls:
        rows = by_control[c]
        pdf.heading(CONTROLS[c])
        pdf.para(f"Population: {len(rows)} ledger entries (every matching event in the range).")
        if counts.get(c):
            pdf.pairs([(k, str(n)) for k, n in counts[c].items()], (120, 40))
        if c == "PI1" and ingested:
            pdf.para("Records appended in the range, per topic:")
            pdf.pairs([(t, str(n)) for t, n in ingested.items()], (120, 40))
        if not rows:
            pdf.para("No ledger entry in this range evidences it.")
            continue
        if len(rows) > PDF_ROWS:
            pdf.para(
                f"The first {PDF_ROWS} of the {len(rows)} rows follow; every row is in "
                f"populations/{c}.csv and report.html."
            )
        pdf.set_font("Helvetica", size=6.5)
        with pdf.table(
            col_widths=_WIDTHS, text_align="LEFT", headings_style=head, line_height=3.2
        ) as table:
            hr = table.row()
            for h in HEADERS:
                hr.cell(_t(h))
            for r in rows[:PDF_ROWS]:
                tr = table.row()
                for v in row_cells(r):
                    tr.cell(_t(v))
        diffs = [r for r in rows if r.get("diff")]
        if diffs:
            pdf.para(
                f"Diffs of the {len(diffs)} changes (first {_DIFF_LINES} lines each"
                + (
                    f", the first {_DIFFS} changes; all in report.html"
                    if len(diffs) > _DIFFS
                    else ""
                )
                + "):",
                8,
            )
            for r in diffs[:_DIFFS]:
                lines = str(r["diff"]).splitlines()
                text = "\n".join(lines[:_DIFF_LINES])
                if len(lines) > _DIFF_LINES:
                    text += f"\n... {len(lines) - _DIFF_LINES} more lines in report.html"
                pdf.set_font("Helvetica", "B", 7)
                pdf.multi_cell(
                    0,
                    3.4,
                    _t(f"Entry {r['index']}: {r.get('action')} {r.get('resource') or ''}"),
                    new_x="LMARGIN",
                    new_y="NEXT",
                )
                pdf.set_font("Courier", size=6.5)
                pdf.multi_cell(0, 3, _t(text), new_x="LMARGIN", new_y="NEXT")
    pdf.heading("Checkpoints")
    pdf.para(
        "Each signed checkpoint commits to every ledger entry below its size; each names the "
        "previous one by hash, and consecutive ones are linked by a consistency proof in the "
        "pack. The full list is checkpoints.csv in the pack."
    )
    pdf.pairs(checkpoint_lines(checkpoints), (40, 210))
    pdf.heading("How to verify this pack")
    pdf.para(
        "1. Obtain the hub's public key from the hub's operator, independently of this pack "
        "(GET /v1/ledger/public-key or keys/ledger.pub in the hub's data folder), and compare "
        f"it with: {public_key}\n"
        "2. Run: hub-verify bundle PACK.zip --public-key ledger.pub (or python3 audit/verify.py "
        "bundle ... from a copy of the audit/ folder). Exit status 0 means valid: every entry's "
        "leaf hash, inclusion proof, checkpoint signature, the hash chain, consistency between "
        "checkpoints, every file digest (this PDF included) and the manifest signature.\n"
        "Integrity is not origin: the key inside the pack only proves the pack is unaltered "
        "since that key signed it; only a key obtained independently proves it came from this "
        "hub. This report is a reading aid; the evidence is the signed files beside it."
    )
    return bytes(pdf.output())
