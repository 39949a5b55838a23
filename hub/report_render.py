"""Rendering of a report (``hub.reports``) as self-contained HTML and as PDF (reportlab, BSD).

Both show the same things: title, period, who made it, the ledger checkpoint it was derived at,
the summary figures, and one table per query (the PDF lists at most ``PDF_ROWS`` rows of a
table and says how many it left out; ``data.json`` in the pack holds them all).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from typing import Any

from audit.printable import printable, printable_lines

PDF_ROWS = 200
_CSS = (
    "body{font-family:sans-serif;margin:2em;color:#1b1f24}table{border-collapse:collapse;"
    "margin:.5em 0 1.5em}td,th{border:1px solid #ccd;padding:2px 6px;font-size:12px;"
    "text-align:left}th{background:#eef}.bad{color:#a00;font-weight:bold}"
    ".ok{color:#060;font-weight:bold}code{font-size:11px}"
)


_CELL_PT = 6.5  # font size of table cells


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _e(value: Any) -> str:
    """``value`` as HTML text (and reportlab's markup), every control, line separator and
    bidirectional override or isolate visibly escaped (``audit.printable``), as the CLI shows
    them: such a character in a cell could reorder or hide its text in the report."""
    return html.escape(printable_lines(str(value)))  # a line break is HTML's white space


def _fit(text: str, chars: int) -> str:
    """One line of at most ``chars`` characters (cut ones end in ``..``)."""
    text = printable(" ".join(text.split()))  # what is left of controls and bidi: escaped
    return text if len(text) <= chars else text[: chars - 2] + ".."


def _summary_lines(view: Mapping[str, Any]) -> list[tuple[str, str]]:
    s = view["summary"]
    cp = view["checkpoint"]
    lines = [
        ("Report id", view["report_id"]),
        ("Created", f"{view['created_at']} by {view['created_by']}"),
        ("Ledger checkpoint", f"size {cp['size']}, root {cp['root']}"),
    ]
    if view.get("day"):
        lines.append(("Day (UTC)", str(view["day"])))
    for k, v in s.items():
        if k != "discrepancies":
            lines.append((k.replace("_", " "), _cell(v)))
    if "discrepancies" in s:
        lines.append(("discrepancies", str(len(s["discrepancies"]))))
    return lines


def render_html(view: Mapping[str, Any], data: Mapping[str, Mapping[str, Any]]) -> str:
    e = _e
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(view['title'])}"
        f"</title><style>{_CSS}</style></head><body><h1>{e(view['title'])}</h1>"
    ]
    s = view["summary"]
    if "accuracy_percent" in s:
        cls = "ok" if s["meets_goal"] else "bad"
        out.append(
            f"<p id=accuracy class={cls}>Accuracy {e(s['accuracy_percent'])} "
            f"(goal {e(s['goal_percent'])}): "
            f"{'met' if s['meets_goal'] else 'NOT met'}; "
            f"{len(s['discrepancies'])} discrepancies.</p>"
        )
    out.append("<table id=summary>")
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _summary_lines(view)]
    out.append("</table>")
    by_name = {q["name"]: q for q in view["queries"]}
    for name, found in data.items():
        q = by_name[name]
        out.append(
            f"<h2>{e(name)}</h2><p><code>{e(q['sql'])}</code> ({q['store']}; {q['rows']} rows; "
            f"digest <code>{q['digest']}</code>)</p>"
        )
        cols = found["columns"]
        out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        for row in found["rows"]:
            out.append("<tr>" + "".join(f"<td>{e(_cell(row.get(c)))}</td>" for c in cols) + "</tr>")
        out.append("</table>")
    out.append(
        "<p>Verify this report offline: <code>hub-verify bundle &lt;report.zip&gt; "
        "--public-key &lt;hub key file&gt;</code>.</p></body></html>"
    )
    return "\n".join(out)


def render_pdf(view: Mapping[str, Any], data: Mapping[str, Mapping[str, Any]]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    e = _e
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=str(view["title"]),
        author=str(view["created_by"]),
        invariant=1,  # same input, same bytes (no creation date or random id in the file)
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeff")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    cells = TableStyle([*grid.getCommands(), ("FONTSIZE", (0, 0), (-1, -1), _CELL_PT)])
    story: list[Any] = [Paragraph(e(str(view["title"])), styles["Title"])]
    s = view["summary"]
    if "accuracy_percent" in s:
        verdict = "met" if s["meets_goal"] else "NOT met"
        story.append(
            Paragraph(
                f"Accuracy {e(s['accuracy_percent'])} (goal {e(s['goal_percent'])}): {verdict}; "
                f"{len(s['discrepancies'])} discrepancies.",
                styles["Heading2"],
            )
        )
    rows = [[Paragraph(e(k), small), Paragraph(e(v), small)] for k, v in _summary_lines(view)]
    story += [Table(rows, colWidths=[50 * mm, 210 * mm], style=grid), Spacer(1, 4 * mm)]
    by_name = {q["name"]: q for q in view["queries"]}
    for name, found in data.items():
        q = by_name[name]
        story.append(Paragraph(e(name), styles["Heading3"]))
        story.append(
            Paragraph(
                f"{e(q['sql'])} ({e(q['store'])}; {q['rows']} rows; digest {q['digest']})", small
            )
        )
        cols = list(found["columns"]) or ["(no columns)"]
        width = 265 * mm / len(cols)
        # Plain strings, cut to the column's width: a wrapped paragraph per cell took ~5 ms
        # each (a 200-row table of 10 columns: 10 s); full values are in data.json.
        fit = max(4, int(width / (_CELL_PT * 0.5)))
        body = [[_fit(c, fit) for c in cols]]
        for row in found["rows"][:PDF_ROWS]:
            body.append([_fit(_cell(row.get(c)), fit) for c in cols])
        if len(found["rows"]) > PDF_ROWS:
            left = len(found["rows"]) - PDF_ROWS
            story.append(Paragraph(f"First {PDF_ROWS} rows; {left} more in data.json.", small))
        story += [Table(body, colWidths=[width] * len(cols), style=cells, repeatRows=1)]
        story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(
            "Verify offline: hub-verify bundle &lt;report.zip&gt; --public-key &lt;key file&gt;. "
            + e(json.dumps(view["checkpoint"])),
            small,
        )
    )
    doc.build(story)
    return buf.getvalue()
