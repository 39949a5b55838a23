"""Spreadsheet-safe CSV cells (OWASP's advice against CSV formula injection): pure, no I/O.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` sends the sheet's cells
away, DDE ``=cmd|...`` runs a command). Every CSV the hub writes for people (query exports,
evidence populations) prefixes such a cell with ``'``, which the spreadsheet shows and does not
run; a plain number (``-12.50``, ``+3``, ``1e5``) is left as it is. Parquet and JSON carry the
values as stored. ``projections.types.spreadsheet_safe`` is the same rule over Arrow columns.
"""

from __future__ import annotations

import re

FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(PLAIN_NUMBER)


def formula_safe(text: str) -> str:
    """``text`` with ``'`` before it when a spreadsheet would run it as a formula."""
    if text.startswith(FORMULA_FIRST) and not _NUMBER.match(text):
        return "'" + text
    return text


__all__ = ["FORMULA_FIRST", "PLAIN_NUMBER", "formula_safe"]
