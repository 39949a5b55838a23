"""Session 19 hostile-input review: CSV and JSON lines files (docs/benchmarks/
s19-redteam-hostile.md). Each test is an attack that worked before its fix."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file
from tests.adversarial._topics_hub import hub_with_topics

SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "long"}],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"t": SCHEMA}) as h:
        yield h


@pytest.mark.parametrize("columnar", [True, False])
@pytest.mark.parametrize("header", [b"s,n,s", b"\xef\xbb\xbfs,n,s", b'"s",n,s', b"n,s,n"])
def test_a_csv_header_naming_a_column_twice_is_refused(
    hub: Hub, tmp_path: Path, header: bytes, columnar: bool
) -> None:
    """``s,n,s`` then ``a,1,b``: accepted as s="b", the cell "a" dropped without a word (both
    paths, BOM or quotes around the name or not). Which cell is the value is a guess the hub
    must not make: the file is refused naming the column, nothing published."""
    f = tmp_path / "twice.csv"
    f.write_bytes(header + b"\n" + (b"a,1,b\n" if header.endswith(b"s") else b"1,a,2\n"))
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "t", columnar=columnar)
    assert "more than once" in err.value.message
    assert ("'s'" if header.endswith(b"s") else "'n'") in err.value.message
    assert sum(hub.log.end_offsets("t").values()) == 0


@pytest.mark.parametrize("cut", [None, 7, 30])
def test_a_second_gzip_member_of_a_pulled_body_is_read_not_dropped(cut: int | None) -> None:
    """An HTTP pull source answering ``Content-Encoding: gzip`` as two gzip members (RFC 1952
    allows several; servers that compress per chunk write them): the connector decoded the
    first member and dropped the rest without a word, where ``gzip.decompress`` gives both."""
    import gzip

    from ingest.httppull import decoded

    body = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"a":2}\n')
    pieces = [body] if cut is None else [body[:cut], body[cut:]]
    assert b"".join(decoded(pieces, "gzip")) == gzip.decompress(body)


@pytest.mark.parametrize(
    ("body", "coding", "why"),
    [
        (zlib.compress(b'{"a":1}') + b'{"a":2}', "deflate", "after the end"),
        (gzip.compress(b'{"a":1}' * 100)[:-12], "gzip", "ends early"),
    ],
)
def test_bytes_past_or_short_of_a_pulled_bodys_stream_are_refused(
    body: bytes, coding: str, why: str
) -> None:
    """Bytes after a deflate stream's end were ignored, and a gzip body cut short gave what it
    had: both are refused (``zlib.error``, which the connector reports naming the coding)."""
    from ingest.httppull import decoded

    with pytest.raises(zlib.error, match=why):
        b"".join(decoded([body], coding))


@pytest.mark.parametrize("columnar", [True, False])
def test_nan_and_infinity_literals_in_a_json_lines_file_are_quarantined(
    tmp_path: Path, columnar: bool
) -> None:
    """``{"d":NaN}``, ``Infinity``, ``-Infinity`` are not JSON: the HTTP JSON routes refuse
    them, but a JSON lines file stored them as NaN / infinite doubles (both paths; json.loads
    takes them). Each such line is quarantined naming the literal; the others are accepted."""
    schema = {
        "type": "record",
        "name": "D",
        "fields": [{"name": "d", "type": "double"}, {"name": "f", "type": "float"}],
    }
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        h.log.create_topic("d", 1)
        h.registry.register("d-value", json.dumps(schema))
        f = tmp_path / "nan.jsonl"
        f.write_bytes(
            b'{"d":NaN,"f":1}\n{"d":Infinity,"f":1}\n{"d":1,"f":-Infinity}\n{"d":1.5,"f":2}\n'
        )
        result = publish_file(h.ingest, f, "d", columnar=columnar).result
        assert result.accepted == 1
        reasons = {r.index: r.reason for r in result.rejections}
        assert sorted(reasons) == [0, 1, 2]
        for i, literal in enumerate(["NaN", "Infinity", "-Infinity"]):
            assert f"{literal} is not a JSON number" in reasons[i]
    finally:
        h.close()
