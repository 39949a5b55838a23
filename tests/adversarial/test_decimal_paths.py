"""Decimal text takes one meaning on every path: a value Arrow's column path (HTTP and file
ingest, ``ingest.arrowread``) stores is what the record path (``serde.from_json``) makes of it.

Found in session 10's review, two ways the outcome of a record depended on the route it came by:
- Arrow's JSON reader checks a decimal's precision on the digits as written, before rescaling:
  ``"123456789.5"`` went into a decimal(10, 2) column as 123456789.50 (11 digits), stored by
  the column path where the record path refuses it;
- the record path quantized under Python's default 28-digit context, so a decimal(38, 2) value
  of more than 28 digits was refused there ("has more than 38 significant digits", for 32
  digits) while the column path stored it.
"""

from __future__ import annotations

import json
from decimal import Decimal

import fastavro
import pytest

from core.avro import serde
from core.errors import HubError
from ingest.arrowread import json_batch, layout

FORMS = [
    "1e2",
    " 1",
    "01",
    "-0",
    "-0.00",
    "1_0",
    "\u0661\u0662",  # Arabic-Indic digits
    "\uff11",  # a fullwidth 1
    "+1",
    "1.",
    ".5",
    "1.234",
    "1E-2",
    "1.00 ",
    "NaN",
    "Infinity",
    "0x10",
    "123456789.5",  # 10 digits as written, 11 at scale 2: over decimal(10, 2)
    "99999999.99",
    "12345678901234567890123456789012.12",  # 34 digits: over 28, within 38
    "123456789012345678901234567890123456.1",  # 37 digits
    "1234567890123456789012345678901234567.1",  # 38 integer digits: too many
]


def _schema(precision: int, scale: int) -> dict[str, object]:
    return fastavro.parse_schema(
        {
            "type": "record",
            "name": "D",
            "fields": [
                {
                    "name": "p",
                    "type": {
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": precision,
                        "scale": scale,
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize(("precision", "scale"), [(38, 2), (10, 2), (18, 0)])
def test_column_and_record_paths_read_decimal_text_alike(precision: int, scale: int) -> None:
    parsed = _schema(precision, scale)
    lay = layout(parsed)
    assert lay is not None
    texts = [*(json.dumps(f) for f in FORMS), *(f for f in FORMS if f.strip().isascii())]
    lines = [b'{"p": %s}' % t.encode() for t in texts]
    rb, force = json_batch(lines, lay, 1 << 20)
    convert = serde.json_converter(parsed)
    for i, line in enumerate(lines):
        try:
            ref = convert(json.loads(line, parse_float=Decimal))["p"]
        except (HubError, ValueError):
            ref = None  # the record path refuses it
        except json.JSONDecodeError:
            continue
        if force[i]:
            continue  # the record path decides it, by construction the reference's answer
        got = rb.column(0)[i].as_py()
        assert ref is not None, (line, got)
        assert got == ref, (line, got, ref)  # the same unscaled integer (-0 is 0 in Avro)


def test_a_wide_decimal_is_taken_exactly_by_the_record_path() -> None:
    t = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}
    wide = "12345678901234567890123456789012.12"
    assert serde._decimal(wide, t, "p") == Decimal(wide)
    with pytest.raises(HubError, match="more than 38 significant digits"):
        serde._decimal("1234567890123456789012345678901234567.1", t, "p")
    with pytest.raises(HubError, match="more than 2 decimal places"):
        serde._decimal("123456789012345678901234567890.125", t, "p")
