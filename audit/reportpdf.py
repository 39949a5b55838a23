"""The figures ``report.pdf`` states, read back from its text (standard library only).

``report.pdf`` is what an auditor files. The hub writes it with uncompressed page streams
(``ledger.report_pdf``), so its text is the string operands of those streams, in the order
they are drawn. :func:`check_report_pdf` requires, in that order, the figures ``report.html``
is checked for (``audit.reportcheck``): the heading, the incomplete-range note and the
unrecorded-decisions warning when the files give them, the summary count of each control, each
control's "Population: N", its action / outcome counts and the cells of each row it lists (the
first ``PDF_ROWS``), and the checkpoints summary. Line breaks, page breaks and the table
headers repeated on each page are ignored: whitespace is removed from both sides before they
are compared.

Limits, stated: text added to the PDF beside the expected figures (a reassuring note, an
extra row) is not refused, only figures changed or removed; a PDF whose streams are compressed
is refused (the hub never writes one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from audit.controls import CONTROLS
from audit.reportcheck import (
    HEADERS,
    PDF_ROWS,
    ReportError,
    checkpoint_lines,
    heading,
    incomplete_note,
    population_note,
    row_cells,
    tally,
    unrecorded_note,
)

_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_ESCAPES = {ord("n"): "\n", ord("r"): "\r", ord("t"): "\t", ord("b"): "\b", ord("f"): "\f"}


def pdf_text(pdf: bytes) -> str:
    """The string operands of every content stream, in order, joined (Latin-1, as the hub's
    PDF writes them with the standard fonts)."""
    if b"/FlateDecode" in pdf or b"/ASCII85Decode" in pdf:
        raise ReportError(
            "report.pdf has compressed streams: the hub writes them uncompressed; this PDF "
            "was not written by it (or was rewritten)."
        )
    return "".join(s for m in _STREAM.finditer(pdf) for s in _strings(m.group(1)))


def _strings(content: bytes) -> Iterator[str]:
    """The literal strings ``( ... )`` of a content stream, unescaped."""
    i, n = 0, len(content)
    while i < n:
        if content[i] != 0x28:  # "("
            i += 1
            continue
        depth, i, out = 1, i + 1, []
        while i < n:
            c = content[i]
            if c == 0x5C and i + 1 < n:  # backslash
                nxt = content[i + 1]
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                    i += 2
                elif 0x30 <= nxt <= 0x37:
                    digits = re.match(rb"[0-7]{1,3}", content[i + 1 : i + 4])
                    assert digits is not None
                    out.append(chr(int(digits.group(), 8) & 0xFF))
                    i += 1 + len(digits.group())
                elif nxt in (0x0A, 0x0D):  # a line continuation
                    i += 2
                else:
                    out.append(chr(nxt))
                    i += 2
                continue
            if c == 0x28:
                depth += 1
            elif c == 0x29:
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            out.append(chr(c))
            i += 1
        yield "".join(out)


def _bare(text: str) -> str:
    """``text`` as the PDF prints it (Latin-1, others as ``?``), without whitespace."""
    printed = text.encode("latin-1", "replace").decode("latin-1")
    return "".join(printed.split())


def expected(
    manifest: Mapping[str, Any],
    entries: Mapping[int, Mapping[str, Any]],
    summary: Mapping[str, Any],
    covered_to: str | None,
    starts: Sequence[str],
) -> list[tuple[str, str]]:
    """What the PDF must state, in order: (what it is, its text)."""
    r = manifest["range"]
    want = [
        (
            "its heading (origin, range, export)",
            heading(
                str(manifest.get("origin")),
                str(r["from"]),
                str(r["to"]),
                str(manifest.get("created_at")),
                str(manifest.get("exported_by")),
            ),
        )
    ]
    if covered_to is not None:
        want.append(("the incomplete range note", incomplete_note(covered_to)))
    if starts:
        want.append(("the warning of starts that recorded no access decision",
                     unrecorded_note(starts)))  # fmt: skip
    controls: Mapping[str, list[int]] = manifest["controls"]
    want += [
        (f"the population of {c} (summary)", f"{CONTROLS.get(c, c)}{len(v)} entries")
        for c, v in controls.items()
    ]
    for c, listed in controls.items():
        rows = [entries[i] for i in listed]
        want.append((f"the section of {c}", CONTROLS.get(c, c)))  # a page may end after it
        want.append((f"the population of {c}", population_note(len(rows))))
        want += [(f"the action / outcome counts of {c}", f"{k}{n}") for k, n in tally(rows).items()]
        if rows:
            want.append((f"the table header of {c}", "".join(HEADERS)))
        want += [(f"a row of {c}'s entries", "".join(row_cells(e))) for e in rows[:PDF_ROWS]]
    want += [("the Checkpoints summary", k + v) for k, v in checkpoint_lines(summary)]
    return want


def check_report_pdf(
    pdf: bytes,
    manifest: Mapping[str, Any],
    entries: Mapping[int, Mapping[str, Any]],
    summary: Mapping[str, Any],
    covered_to: str | None,
    starts: Sequence[str],
) -> None:
    """``ReportError`` naming the first figure of :func:`expected` that ``pdf``'s text does
    not state where it should (after the previous one)."""
    text = _bare(pdf_text(pdf))
    at = 0
    for what, want in expected(manifest, entries, summary, covered_to, starts):
        found = _find(text, _bare(want), at, whole=not what.startswith("a row"))
        if found < 0:
            raise ReportError(
                f"report.pdf does not state {what} as the pack's signed files give it "
                f"({want!r}; after what it stated before): the report was altered, or is not "
                "this pack's."
            )
        at = found + len(_bare(want))


def _find(text: str, want: str, at: int, *, whole: bool) -> int:
    """The first place from ``at`` where ``text`` states ``want``; ``whole``: as a whole
    figure, a digit at either end of it not part of a longer number there (``3`` is not ``13``
    or ``31``). Rows are not whole: the next row's index follows a row's last cell, and a
    row's cells are its own anchors."""
    while (found := text.find(want, at)) >= 0:
        end = found + len(want)
        if not whole or not (
            (want[:1].isdigit() and found > 0 and text[found - 1].isdigit())
            or (want[-1:].isdigit() and end < len(text) and text[end].isdigit())
        ):
            return found
        at = found + 1
    return -1
