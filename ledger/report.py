"""The evidence pack's HTML report: self-contained (inline CSS, no script, no external link).

Per requested SOC 2 control: its population size with counts per action and outcome, then one
row per entry (index, time, actor, action, resource, outcome, policy version, decision or case,
approver, the checkpoint it is proven against, and the diff of a change); the checkpoints
summarised (:func:`checkpoint_summary`: count, first and last, size range, gaps; the full list
is ``checkpoints.csv`` in the pack, :func:`checkpoints_csv`), and how to verify the pack.
Every value is HTML-escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from audit.bundle import (
    CHECKPOINTS_CSV_HEAD,
    POPULATION_CSV_HEAD,
    checkpoint_cells,
    population_cells,
)
from audit.reportcheck import (
    HEADERS,
    checkpoint_lines,
    heading,
    incomplete_note,
    population_note,
    row_cells,
    unrecorded_note,
)
from ledger.controls import CONTROLS

__all__ = ["HEADERS", "checkpoint_lines", "render", "row_cells", "unrecorded_note"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:72em;color:#1b1f24;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.6em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em;
word-break:break-all}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.6em .9em;border-radius:4px}
.muted{color:#57606a}
pre{white-space:pre-wrap;font-size:.85em;margin:.2em 0}
"""


def checkpoints_csv(checkpoints: Sequence[Mapping[str, Any]]) -> str:
    """Every checkpoint of the pack: size, time (UTC), time_us, root, checkpoint hash."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CHECKPOINTS_CSV_HEAD)
    for c in checkpoints:  # hub-verify checks each row against its note (audit.bundle)
        w.writerow(checkpoint_cells(c["size"], c["time_us"], c["root"], c.get("hash", "")))
    return buf.getvalue()


def population_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """One control's whole population, one row per ledger entry (``populations/<id>.csv``);
    text cells formula-safe (``audit.csvcell``: an auditor opens it in a spreadsheet)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(POPULATION_CSV_HEAD)
    for r in rows:
        w.writerow(population_cells(r))
    return buf.getvalue()


def _incomplete(covered_to: str | None) -> list[str]:
    """The warning of a pack whose range ends after its export (``ledger.evidence``)."""
    if covered_to is None:
        return []
    return [f"<p>{escape(incomplete_note(covered_to))}</p>"]


def render(
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
) -> str:
    e = escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>SOC 2 evidence — {e(origin)} — {e(range_from)} to {e(range_to)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>SOC 2 evidence pack</h1><p class='muted'>"
        f"{e(heading(origin, range_from, range_to, created_at, exported_by))}</p>",
        *_incomplete(covered_to),
        *([f"<p class='note'>{e(unrecorded_note(unrecorded))}</p>"] if unrecorded else []),
        "<h2>Summary</h2><table><tr><th>Control</th><th>Criterion</th><th>Population</th></tr>",
    ]
    by_control: dict[str, list[Mapping[str, Any]]] = {c: [] for c in controls}
    for entry in entries:
        for c in entry.get("controls") or [entry["control"]]:
            by_control.setdefault(c, []).append(entry)
    for c in controls:
        parts.append(
            f"<tr><td>{e(c)}</td><td>{e(CONTROLS[c])}</td><td>{len(by_control[c])}</td></tr>"
        )
    parts.append("</table>")
    for c in controls:
        rows = by_control[c]
        parts.append(f"<h2 id='{e(c)}'>{e(CONTROLS[c])}</h2>")
        parts.append(f"<p>{e(population_note(len(rows)))}</p>")
        if counts.get(c):
            parts.append("<table><tr><th>Action / outcome</th><th>Count</th></tr>")
            parts += [f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in counts[c].items()]
            parts.append("</table>")
        if c == "PI1" and ingested:
            parts.append("<table><tr><th>Topic</th><th>Records appended in the range</th></tr>")
            parts += [f"<tr><td>{e(t)}</td><td>{n}</td></tr>" for t, n in ingested.items()]
            parts.append("</table>")
        if not rows:
            parts.append("<p class='muted'>No ledger entry in this range evidences it.</p>")
            continue
        parts.append(
            "<table><tr>"
            + "".join(f"<th>{h}</th>" for h in HEADERS)
            + "<th>Topic</th><th>Proven in checkpoint</th></tr>"
        )
        for r in rows:
            cells = row_cells(r)
            diff = r.get("diff")
            extra = ""
            if r.get("reason"):
                extra += f"<div class='muted'>reason: {e(str(r['reason']))}</div>"
            if diff:
                extra += f"<details><summary>diff</summary><pre>{e(str(diff))}</pre></details>"
            parts.append(
                "<tr>"
                + "".join(
                    f"<td class='mono'>{e(v)}</td>" if i in (4, 6, 7) else f"<td>{e(v)}</td>"
                    for i, v in enumerate(cells)
                )
                + f"<td>{e(r['topic'])}[{r['partition']}]@{r['offset']}{extra}</td>"
                f"<td>{r['checkpoint']}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h2>Checkpoints</h2><p>Each signed checkpoint commits to every ledger entry below its "
        "size; each names the previous one by hash, and consecutive ones are linked by a "
        "consistency proof in the pack. The full list is <code>checkpoints.csv</code> in the "
        "pack.</p>"
    )
    lines = checkpoint_lines(checkpoints)
    parts.append("<table>")
    parts += [f"<tr><th>{e(k)}</th><td class='mono'>{e(v)}</td></tr>" for k, v in lines]
    parts.append("</table>")
    parts.append(
        "<h2>How to verify this pack</h2><ol>"
        "<li>Obtain the hub's public key <em>from the hub's operator, independently of this "
        "pack</em> (for example <code>GET /v1/ledger/public-key</code> or the file "
        "<code>keys/ledger.pub</code> in the hub's data folder), and compare it with:"
        f"<br><code>{e(public_key)}</code></li>"
        "<li>Run <code>hub-verify bundle PACK.zip --public-key ledger.pub</code>. It recomputes "
        "every entry's leaf hash from its fields, checks its inclusion proof against its "
        "checkpoint, every checkpoint signature, the hash chain and consistency between "
        "checkpoints, every file digest and the manifest signature. Exit status 0 means valid."
        "</li></ol><p class='note'><strong>Integrity is not origin.</strong> The key inside "
        "the pack (<code>public-key.txt</code>) only proves the pack is internally consistent "
        "and unaltered since it was signed by <em>that</em> key: anyone can build a "
        "self-consistent pack with a key of their own. Only a key obtained independently from "
        "the hub (<code>--public-key</code>) proves the pack came from this hub.</p>"
        "<p class='muted'>Entries carry SHA-256 digests of record keys and values, never the "
        "data itself: crypto-shredded payloads keep their proofs valid and nothing personal is "
        "disclosed by the pack. This report is a reading aid; the evidence is the signed files "
        "beside it.</p></body></html>"
    )
    return "".join(parts)
