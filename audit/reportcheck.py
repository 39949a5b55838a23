"""The figures ``report.html`` states, and their check against a pack's signed files.

The report is what an auditor reads first. Its text is written from the same fields as the
machine-readable files, by the functions here (the hub's ``ledger.report`` imports them), and
hub-verify reads it back (:func:`check_report`) for a pack whose manifest names
``REPORT_FIGURES``. Each of these MUST be what the signed files give:
    - the heading: origin, range, time and author of the export (the manifest's);
    - the "Incomplete range" note, present exactly when the range ends after the pack's newest
      checkpoint, with that checkpoint's time;
    - the warning of starts of the hub that recorded no access decision, present exactly when
      the pack's entries or context hold such starts, with their number and first time;
    - the summary table (one row per control of the manifest, its population count);
    - per control: "Population: N", the action / outcome counts (:func:`tally`), and its table
      row for row the entries the manifest lists under it, each row's cells
      (:func:`row_cells`) the entry's fields in ``entries.jsonl``;
    - the checkpoints table (:func:`checkpoint_lines`) recomputed from the signed notes.
Not checked: the ingest counts of PI1 (the pack holds no record they are counted from), the
fixed prose, the styling. ``report.pdf`` states the same figures (``audit.reportpdf`` reads
its text back; packs of ``REPORT_FIGURES_HTML`` leave it to its digest).

Standard library only, like the rest of this folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any

from audit.errors import AuditError

REPORT_FIGURES = "evidence-report/2"
"""The manifest's ``report``: its ``report.html`` states the figures :func:`check_report` reads,
and its ``report.pdf`` the same (``audit.reportpdf``, session 26)."""

REPORT_FIGURES_HTML = "evidence-report/1"
"""A pack of session 25: the figures of ``report.html`` only (its PDF by its digest)."""

PDF_ROWS = 300
"""Rows listed per control in the PDF; the counts above them cover the whole population, and
every row is in ``populations/<control>.csv``."""

HEADERS = [
    "Entry",
    "Time (UTC)",
    "Actor",
    "Action",
    "Resource",
    "Outcome",
    "Policy",
    "Decision/case",
    "Approver",
]


def row_cells(r: Mapping[str, Any]) -> list[str]:
    """The display cells of one population row (the HTML and PDF reports)."""
    policy = str(r.get("policy_version") or "")
    ref = r.get("case_id") or r.get("decision_id") or ""
    return [
        str(r["index"]),
        str(r["time"]),
        str(r.get("actor") or ""),
        str(r.get("action") or r.get("event_type") or ""),
        str(r.get("resource") or ""),
        str(r.get("outcome") or ""),
        policy[:12],
        str(ref),
        str(r.get("approver") or ""),
    ]


def tally(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts per ``action`` (and outcome, when there is one): ``"event.read deny": 21``."""
    out: dict[str, int] = {}
    for e in entries:
        label = str(e.get("action") or e.get("event_type") or e["topic"])
        if e.get("outcome") in ("allow", "deny"):
            label += f" {e['outcome']}"
        out[label] = out.get(label, 0) + 1
    return dict(sorted(out.items()))


def checkpoint_lines(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The checkpoint summary as (label, text) lines (the HTML and PDF reports)."""
    if not summary.get("count"):
        return [("Checkpoints", "0")]
    first, last = summary["first"], summary["last"]
    gaps = summary["gaps"]
    return [
        ("Checkpoints", str(summary["count"])),
        ("First", f"size {first['size']} at {first['time']}, root {first['root']}"),
        ("Last", f"size {last['size']} at {last['time']}, root {last['root']}"),
        ("Size range", f"{summary['min_size']} to {summary['max_size']} entries"),
        (
            "Gaps",
            "none (no interval over "
            f"{summary['gap_threshold_s']} s; median {summary['median_interval_s']} s)"
            if not gaps
            else f"{len(gaps)} interval(s) over {summary['gap_threshold_s']} s: "
            + "; ".join(
                f"{g['from_size']} ({g['from_time']}) to {g['to_size']} ({g['to_time']}), "
                f"{g['seconds']} s"
                for g in gaps
            ),
        ),
    ]


def heading(origin: str, range_from: str, range_to: str, created_at: str, by: str) -> str:
    """The report's opening sentence (its text, unescaped)."""
    return (
        f"Ledger {origin}, entries from {range_from} to {range_to} (log time, end exclusive). "
        f"Exported {created_at} by {by}."
    )


def incomplete_note(covered_to: str) -> str:
    """The note of a range ending after the export (its text, unescaped)."""
    return (
        f"Incomplete range: it ends after the export; entries only up to {covered_to} (the "
        "ledger's newest checkpoint) are in this pack."
    )


def unrecorded_note(starts: Sequence[str]) -> str:
    """The warning of starts of the hub that recorded no access decision (their times, oldest
    first: the pack's entries and context), as hub-verify's OK line says it."""
    return (
        f"Warning: {len(starts)} start(s) of the hub recorded NO access decisions "
        f"(HUB_POLICY_RECORD_DECISIONS off; the first at {starts[0]}): the CC6 population "
        "lacks every decision those processes made, a process started before the range "
        "included."
    )


def population_note(n: int) -> str:
    return f"Population: {n} ledger entries (every matching event in the range)."


class ReportError(AuditError):
    """``report.html`` states a figure its pack's signed files do not give."""


class _Blocks(HTMLParser):
    """The report as a list of blocks: ("h2", id, text), ("p", text), ("table", rows), a row
    a list of (tag, text) cells; text nested inside a cell (a diff, a reason) joins it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[Any, ...]] = []
        self._text: list[str] | None = None
        self._h2_id: str | None = None
        self._rows: list[list[tuple[str, str]]] | None = None
        self._cell: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None and self._cell is None:
            self._cell = (tag, [])
        elif tag in ("h2", "p") and self._rows is None:
            self._text = []
            self._h2_id = dict(attrs).get("id") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._rows is not None:
            self.blocks.append(("table", self._rows))
            self._rows = None
        elif tag in ("td", "th") and self._cell is not None and self._cell[0] == tag:
            if self._rows:
                self._rows[-1].append((tag, "".join(self._cell[1])))
            self._cell = None
        elif tag in ("h2", "p") and self._text is not None:
            text = "".join(self._text)
            self.blocks.append(("h2", self._h2_id, text) if tag == "h2" else ("p", text))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)
        elif self._text is not None:
            self._text.append(data)


def _fail(what: str, stated: object, want: object) -> ReportError:
    return ReportError(
        f"report.html states {what} as {stated!r}, but the pack's signed files give {want!r}: "
        "the report an auditor reads was altered."
    )


def check_report(
    html: str,
    manifest: Mapping[str, Any],
    entries: Mapping[int, Mapping[str, Any]],
    summary: Mapping[str, Any],
    covered_to: str | None,
    starts: Sequence[str],
) -> None:
    """``ReportError`` unless ``html`` states the figures of the module docstring as the pack's
    verified files give them: ``entries`` by index (``entries.jsonl``), ``summary`` the
    checkpoint summary of the signed notes, ``covered_to`` the newest checkpoint's time when
    the range ends after it, ``starts`` the times of starts without recorded decisions."""
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    blocks = parser.blocks
    paras = [b[1] for b in blocks if b[0] == "p"]
    r = manifest["range"]
    want_head = heading(
        str(manifest.get("origin")),
        str(r["from"]),
        str(r["to"]),
        str(manifest.get("created_at")),
        str(manifest.get("exported_by")),
    )
    if not paras or paras[0] != want_head:
        raise _fail("its heading (origin, range, export)", paras[0] if paras else None, want_head)
    got = [p for p in paras if p.startswith("Incomplete range:")]
    want = [incomplete_note(covered_to)] if covered_to is not None else []
    if got != want:
        raise _fail("the incomplete range note", got, want)
    got = [p for p in paras if p.startswith("Warning:")]
    want = [unrecorded_note(starts)] if starts else []
    if got != want:
        raise _fail("the warning of starts that recorded no access decision", got, want)
    controls: Mapping[str, list[int]] = manifest["controls"]
    sections = _sections(blocks)
    summary_rows = sections.pop("Summary", [])
    tables = [b[1] for b in summary_rows if b[0] == "table"]
    stated = {row[0][1]: row[2][1] for row in (tables[0] if tables else [])[1:] if len(row) == 3}
    want_counts = {c: str(len(v)) for c, v in controls.items()}
    if stated != want_counts:
        raise _fail("the population of each control (summary)", stated, want_counts)
    cp_blocks = sections.pop("Checkpoints", [])
    cp_tables = [b[1] for b in cp_blocks if b[0] == "table"]
    stated_lines = [tuple(c[1] for c in row) for row in (cp_tables[0] if cp_tables else [])]
    want_lines = [tuple(x) for x in checkpoint_lines(summary)]
    if stated_lines != want_lines:
        raise _fail("the Checkpoints summary", stated_lines, want_lines)
    sections.pop("How to verify this pack", None)
    if set(sections) != set(controls):
        raise _fail("the controls it has sections for", sorted(sections), sorted(controls))
    for c, listed in controls.items():
        _section(c, sections[c], [entries[i] for i in listed])


def _sections(blocks: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """The blocks after each h2, by its id (a control) or, without one, its text."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    current: list[tuple[Any, ...]] | None = None
    for b in blocks:
        if b[0] == "h2":
            name = b[1] or b[2]
            if name in out:
                raise ReportError(f"report.html has the section {name!r} twice.")
            current = out[name] = []
        elif current is not None:
            current.append(b)
    return out


def _section(c: str, blocks: list[tuple[Any, ...]], listed: list[Mapping[str, Any]]) -> None:
    paras = [b[1] for b in blocks if b[0] == "p"]
    got = [p for p in paras if p.startswith("Population:")]
    if got != [population_note(len(listed))]:
        raise _fail(f"the population of {c}", got, [population_note(len(listed))])
    tables = [b[1] for b in blocks if b[0] == "table"]
    counts = [t for t in tables if t and [x[1] for x in t[0]] == ["Action / outcome", "Count"]]
    stated_counts = {row[0][1]: row[1][1] for t in counts for row in t[1:] if len(row) == 2}
    want_counts = {k: str(n) for k, n in tally(listed).items()} if listed else {}
    if stated_counts != want_counts:
        raise _fail(f"the action / outcome counts of {c}", stated_counts, want_counts)
    rows = [t for t in tables if t and [x[1] for x in t[0]][: len(HEADERS)] == HEADERS]
    stated_rows = [[x[1] for x in row][: len(HEADERS)] for t in rows for row in t[1:]]
    want_rows = [row_cells(e) for e in listed]
    if len(stated_rows) != len(want_rows):
        raise _fail(f"the number of entries listed under {c}", len(stated_rows), len(want_rows))
    for got_row, want_row in zip(stated_rows, want_rows, strict=True):
        if got_row != want_row:
            raise _fail(f"a row of {c}'s entries", got_row, want_row)
