"""Session 23 hostile inputs, found and not fixed (docs/benchmarks/s23-redteam-inputs23.md): a
non-zero number too small for its float type is stored as 0.0 on every path (JSON lines and
CSV, columnar or not), accepted. Marked xfail(strict) until the reference refuses it and the
columnar readers send zero floats row by row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub
from ingest.files import publish_file
from tests.adversarial._topics_hub import hub_with_topics

SCHEMA = {
    "type": "record",
    "name": "Tiny",
    "fields": [{"name": "d", "type": "double"}, {"name": "f", "type": "float"}],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"tiny": SCHEMA}) as h:
        yield h


@pytest.mark.xfail(
    strict=True,
    reason="1e-400 (double) and 1e-50 (float) are stored as 0.0: the reference converts JSON "
    "and CSV number text with float() and no path checks for underflow",
)
@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_number_that_underflows_to_zero_is_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool, fmt: str
) -> None:
    f = tmp_path / f"tiny.{fmt}"
    if fmt == "jsonl":
        f.write_text('{"d": 0.0, "f": 0}\n{"d": 1e-400, "f": 1}\n{"d": 1, "f": 1e-50}\n')
    else:
        f.write_text("d,f\n0.0,0\n1e-400,1\n1,1e-50\n")
    r = publish_file(hub.ingest, f, "tiny", columnar=columnar).result
    assert (r.accepted, r.rejected) == (1, 2), r
