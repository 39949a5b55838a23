"""Session 23 hostile inputs: a non-zero number too small for its float type (docs/benchmarks/
s23-redteam-inputs23.md). ``1e-400`` for a double, ``1e-50`` for a float, or a decimal with
hundreds of zeros before its first digit were stored as 0.0 on every path (JSON lines and CSV,
columnar or not), accepted: the reference converted the text with ``float()``, and the columnar
readers agreed with it. The reference now refuses such a number ("too small"), and the columnar
readers leave a batch's zero floats to it when the batch's text may hold one."""

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


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_number_that_underflows_to_zero_is_quarantined(
    hub: Hub, tmp_path: Path, columnar: bool, fmt: str
) -> None:
    f = tmp_path / f"tiny.{fmt}"
    if fmt == "jsonl":
        rows = [
            '{"d": 0.0, "f": 0}',
            '{"d": -0.0, "f": 0e-5}',
            '{"d": 1e-400, "f": 1}',
            '{"d": 1, "f": 1e-50}',
            '{"d": 0.' + "0" * 400 + '1, "f": 1}',
            '{"d": 2.5e-310, "f": 1.5e-45}',
            '{"d": 0.' + "0" * 290 + '1e-50, "f": 1}',
        ]
    else:
        rows = ["d,f", "0.0,0", "-0.0,0e-5", "1e-400,1", "1,1e-50", "0." + "0" * 400 + "1,1"]
        rows += ["2.5e-310,1.5e-45", "0." + "0" * 290 + "1e-50,1"]
    f.write_text("\n".join(rows) + "\n")
    r = publish_file(hub.ingest, f, "tiny", columnar=columnar).result
    assert (r.accepted, r.rejected) == (3, 4), r
    for why in r.rejections:
        assert "too small" in why.reason, why
