"""CSV exports keep a publisher's formulas inert, say so, and sign the bytes delivered (s22
web-left, medium).

A publisher's text such as ``=1+2`` or ``@SUM(A1)`` becomes a live formula when an analyst opens
a CSV export in a spreadsheet (``=HYPERLINK`` to send the sheet's cells away, DDE to run a
command). Exports render through ``projections.types.render``, which prefixes such text cells
with ``'`` (OWASP's advice; numbers like -5 stay numbers). This file checks the whole path on a
running hub, and what was missing: the answer names how its cells were written
(``X-Hub-CSV-Cells``), a signed export's manifest names it too and digests exactly the bytes
delivered, and ``csv_cells=raw`` gives the values as stored for a program. Found too: a
``LowCardinality(String)`` (Arrow dictionary) column went out raw, a ``large_string`` column
holding a formula failed the export (500), and a list column failed it (500; now each cell is
its JSON text).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from typing import Any

import pyarrow as pa
import pytest

from projections.types import render
from tests.adversarial._api import QUOTE, Api

SQL = "SELECT instrument, venue, -5 AS n FROM latest_quotes ORDER BY instrument"


@pytest.fixture
def quoted(api: Api) -> Api:
    lines = [
        {**QUOTE, "instrument": "=1+2", "venue": "@SUM(A1)"},
        {**QUOTE, "instrument": "AAPL", "venue": "-5"},
    ]
    body = b"".join(json.dumps(q).encode() + b"\n" for q in lines)
    r = api.client.post(
        "/v1/ingest/quotes",
        content=body,
        headers={**api.as_role("publisher"), "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    api.hub.projections.run(["quotes"])
    return api


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def _query(api: Api, **extra: Any) -> Any:
    body = {"sql": SQL, "format": "csv", **extra}
    return api.client.post("/v1/query", json=body, headers=api.as_role("analyst"))


def test_the_exports_cells_are_formula_safe_and_say_so(quoted: Api) -> None:
    r = _query(quoted)
    assert r.status_code == 200, r.text
    assert r.headers["x-hub-csv-cells"] == "formula-safe"
    assert _cells(r.content) == [
        ["instrument", "venue", "n"],
        ["'=1+2", "'@SUM(A1)", "-5"],
        ["AAPL", "-5", "-5"],  # a number stays a number, as text and as a number
    ]


def test_raw_gives_the_values_as_stored(quoted: Api) -> None:
    r = _query(quoted, csv_cells="raw")
    assert r.status_code == 200, r.text
    assert r.headers["x-hub-csv-cells"] == "raw"
    assert _cells(r.content)[1] == ["=1+2", "@SUM(A1)", "-5"]
    r = _query(quoted, csv_cells="excel")
    assert r.status_code == 422, r.text
    r = _query(quoted, format="json")  # JSON carries the values as stored, no header
    first = r.json()["rows"][0]
    assert [first["instrument"], first["venue"]] == ["=1+2", "@SUM(A1)"], first
    assert "x-hub-csv-cells" not in r.headers


def test_a_signed_export_names_its_cells_and_digests_the_bytes_delivered(quoted: Api) -> None:
    from core.ports.policy import Principal
    from hub.reports import signed_export

    analyst = Principal("p-analyst", frozenset({"analyst"}))
    for cells in ("formula-safe", "raw"):
        pack = signed_export(quoted.hub, analyst, SQL, "csv", "analytics", cells)
        with zipfile.ZipFile(io.BytesIO(pack)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            (q,) = manifest["queries"]
            data = zf.read(q["file"])
        assert q["csv_cells"] == cells
        assert q["digest"] == hashlib.sha256(data).hexdigest()
        want = "'=1+2" if cells == "formula-safe" else "=1+2"
        assert _cells(data)[1][0] == want


def test_every_text_column_type_is_neutralised() -> None:
    table = pa.table(
        {
            "dict": pa.array(["=1+2", "x"]).dictionary_encode(),  # LowCardinality(String)
            "large": pa.array(["@SUM(A1)", "y"], pa.large_string()),
            "n": pa.array([-5, 3]),
        }
    )
    data, _ = render(table, "csv")
    assert _cells(data)[1:] == [["'=1+2", "'@SUM(A1)", "-5"], ["x", "y", "3"]]
    raw, _ = render(table, "csv", "raw")
    assert _cells(raw)[1] == ["=1+2", "@SUM(A1)", "-5"]


def test_a_header_named_as_a_formula_is_neutralised_too() -> None:
    """A column's name is the SQL's alias (a saved query is another analyst's SQL)."""
    table = pa.table({"=cmd|' /C calc'!A0": ["x"], "-5": [1]})
    assert _cells(render(table, "csv")[0])[0] == ["'=cmd|' /C calc'!A0", "-5"]
    assert _cells(render(table, "csv", "raw")[0])[0] == ["=cmd|' /C calc'!A0", "-5"]


def test_a_list_column_is_its_json_text_in_both_modes() -> None:
    """A list column failed the export (500): each cell is now its JSON text (as the merge with
    the views red team's fix for ``src_offsets`` chose), the same in both modes: JSON text of
    a list starts with ``[``, never a formula."""
    table = pa.table({"l": pa.array([["=1+2"], None])})
    for cells in ("formula-safe", "raw"):
        assert _cells(render(table, "csv", cells)[0]) == [
            ["l"],
            ['["=1+2"]'],
            [],
        ]  # a null: an empty line
