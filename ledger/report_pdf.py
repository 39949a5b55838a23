"""The evidence pack's PDF report (``report.pdf``, reportlab, BSD), for auditors who file PDFs.

The same content as ``report.html`` (``ledger.report``): per control its population size,
counts per action and outcome, one row per entry (and the first lines of a change's diff), the
checkpoints summarised, and how to verify the pack. Page streams are written uncompressed so
that the text stays searchable with plain tools (``grep``, ``pdftotext``); the PDF's standard
fonts only, so text is Latin-1 (other characters print as ``?``). Same input, same bytes
(``invariant``: no creation date or random document id in the file).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from audit.reportcheck import PDF_ROWS, heading
from ledger.controls import CONTROLS
from ledger.report import HEADERS, checkpoint_lines, row_cells, unrecorded_note

_DIFF_LINES = 30
_DIFFS = 50
_WIDTHS = (12, 34, 30, 28, 52, 16, 22, 34, 22)  # mm, landscape A4 minus margins: 250


def _t(text: Any) -> str:
    """Latin-1 text, escaped for a reportlab paragraph (its markup is XML-like)."""
    return escape(str(text).encode("latin-1", "replace").decode("latin-1"), quote=False)


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
    covered_to: str | None = None,
    unrecorded: Sequence[str] = (),
) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        Flowable,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    title = f"SOC 2 evidence pack, {origin}, {range_from} to {range_to}"
    styles = getSampleStyleSheet()
    body = styles["BodyText"].clone("body", fontName="Helvetica", fontSize=9, leading=11)
    small = body.clone("small", fontSize=8, leading=9.5)
    cell = body.clone("cell", fontSize=6.5, leading=7.6)
    bold = body.clone("bold", fontName="Helvetica-Bold", fontSize=7, leading=8.5)
    mono = body.clone("mono", fontName="Courier", fontSize=6.5, leading=7.5)
    h1 = styles["Heading1"].clone("h1", fontName="Helvetica-Bold", fontSize=16)
    h2 = styles["Heading2"].clone("h2", fontName="Helvetica-Bold", fontSize=13)
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ]
    )
    headed = TableStyle(
        [*grid.getCommands(), ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.93, 0.95))]
    )

    def pairs(rows: Sequence[tuple[str, str]], widths: tuple[int, int] = (60, 190)) -> Table:
        data = [[Paragraph(_t(k), small), Paragraph(_t(v), small)] for k, v in rows]
        return Table(data, colWidths=[w * mm for w in widths], style=grid, hAlign="LEFT")

    story: list[Flowable] = [
        Paragraph("SOC 2 evidence pack", h1),
        Paragraph(
            _t(
                heading(origin, range_from, range_to, created_at, exported_by)
                + (
                    f" Incomplete range: it ends after the export; entries only up to "
                    f"{covered_to} (the ledger's newest checkpoint) are in this pack."
                    if covered_to is not None
                    else ""
                )
                + (f" {unrecorded_note(unrecorded)}" if unrecorded else "")
            ),
            body,
        ),
    ]
    by_control: dict[str, list[Mapping[str, Any]]] = {c: [] for c in controls}
    for e in entries:
        for c in e.get("controls") or [e["control"]]:
            by_control.setdefault(c, []).append(e)
    story.append(Paragraph("Summary", h2))
    story.append(
        pairs([(CONTROLS[c], f"{len(by_control[c])} entries") for c in controls], (170, 80))
    )
    for c in controls:
        rows = by_control[c]
        story.append(Paragraph(_t(CONTROLS[c]), h2))
        story.append(
            Paragraph(
                f"Population: {len(rows)} ledger entries (every matching event in the range).",
                body,
            )
        )
        if counts.get(c):
            story.append(pairs([(k, str(n)) for k, n in counts[c].items()], (120, 40)))
        if c == "PI1" and ingested:
            story.append(Paragraph("Records appended in the range, per topic:", body))
            story.append(pairs([(t, str(n)) for t, n in ingested.items()], (120, 40)))
        if not rows:
            story.append(Paragraph("No ledger entry in this range evidences it.", body))
            continue
        if len(rows) > PDF_ROWS:
            story.append(
                Paragraph(
                    f"The first {PDF_ROWS} of the {len(rows)} rows follow; every row is in "
                    f"populations/{c}.csv and report.html.",
                    body,
                )
            )
        table = [[Paragraph(_t(h), cell) for h in HEADERS]]
        table += [[Paragraph(_t(v), cell) for v in row_cells(r)] for r in rows[:PDF_ROWS]]
        story.append(Table(table, colWidths=[w * mm for w in _WIDTHS], style=headed, repeatRows=1))
        diffs = [r for r in rows if r.get("diff")]
        if diffs:
            more = (
                f", the first {_DIFFS} changes; all in report.html" if len(diffs) > _DIFFS else ""
            )
            story.append(
                Paragraph(
                    f"Diffs of the {len(diffs)} changes (first {_DIFF_LINES} lines each{more}):",
                    small,
                )
            )
            for r in diffs[:_DIFFS]:
                lines = str(r["diff"]).splitlines()
                text = "\n".join(lines[:_DIFF_LINES])
                if len(lines) > _DIFF_LINES:
                    text += f"\n... {len(lines) - _DIFF_LINES} more lines in report.html"
                head = f"Entry {r['index']}: {r.get('action')} {r.get('resource') or ''}"
                story.append(Paragraph(_t(head), bold))
                plain = text.encode("latin-1", "replace").decode("latin-1")
                story.append(Preformatted(plain, mono, maxLineLength=190))
    story.append(Paragraph("Checkpoints", h2))
    story.append(
        Paragraph(
            "Each signed checkpoint commits to every ledger entry below its size; each names the "
            "previous one by hash, and consecutive ones are linked by a consistency proof in the "
            "pack. The full list is checkpoints.csv in the pack.",
            body,
        )
    )
    story.append(pairs(checkpoint_lines(checkpoints), (40, 210)))
    story.append(Paragraph("How to verify this pack", h2))
    for step in (
        "1. Obtain the hub's public key from the hub's operator, independently of this pack "
        "(GET /v1/ledger/public-key or keys/ledger.pub in the hub's data folder), and compare "
        f"it with: {public_key}",
        "2. Run: hub-verify bundle PACK.zip --public-key ledger.pub (or python3 audit/verify.py "
        "bundle ... from a copy of the audit/ folder). Exit status 0 means valid: every entry's "
        "leaf hash, inclusion proof, checkpoint signature, the hash chain, consistency between "
        "checkpoints, every file digest (this PDF included) and the manifest signature.",
        "Integrity is not origin: the key inside the pack only proves the pack is unaltered "
        "since that key signed it; only a key obtained independently proves it came from this "
        "hub. This report is a reading aid; the evidence is the signed files beside it.",
    ):
        story += [Paragraph(_t(step), body), Spacer(1, 1.5 * mm)]

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        page = f"{title} - page {doc.page}".encode("latin-1", "replace").decode("latin-1")
        canvas.drawCentredString(landscape(A4)[0] / 2, 6 * mm, page)
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=title.encode("latin-1", "replace").decode("latin-1"),
        author=exported_by,
        pageCompression=0,  # searchable with grep and pdftotext
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
