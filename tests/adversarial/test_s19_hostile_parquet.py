"""Session 19 hostile-input review: Parquet pages that decode to more than the host holds, and
a one-byte flip that crashes Arrow (docs/benchmarks/s19-redteam-hostile.md). A byte-flipping
fuzz of Parquet files ran in the review but is not kept in-process: pyarrow 16.1.0 crashes the
test process on some flips (``test_a_one_byte_flip_does_not_crash_the_process``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.bootstrap import Hub
from ingest import parquetpages
from ingest.files import FileUnreadable, publish_file
from ingest.parquetpages import PagesTooLarge, check_pages
from tests.adversarial._topics_hub import hub_with_topics

COLUMNS = 3
SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [
        *({"name": f"s{i}", "type": "string"} for i in range(COLUMNS)),
        {"name": "n", "type": "long"},
    ],
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"t": SCHEMA}) as h:
        yield h


def _one_page_each(rows: int, width: int, codec: str = "gzip") -> bytes:
    """Every column in one plain page: ``rows`` strings of ``width`` bytes each."""
    big = "A" * width
    table = pa.table({**{f"s{i}": [big] * rows for i in range(COLUMNS)}, "n": list(range(rows))})
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        compression=codec,
        use_dictionary=False,
        row_group_size=10**7,
        data_page_size=1 << 30,
        write_batch_size=10**7,
    )
    return out.getvalue()


@pytest.mark.parametrize("codec", ["gzip", "zstd", "brotli", "lz4", "snappy"])
def test_pages_decoding_past_the_bound_together_are_refused_before_decoding(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """Three plain string columns of one 360 MB page each in a 1 MB gzip file: Arrow decodes
    every column's page at once, so the process grew by 1.1 GB before the record limit refused
    the first batch (tens of columns: more than the host holds). The page headers are now read
    first and a row group whose pages add up past ``PAGES_BYTES`` is refused (here the bound is
    lowered to 6 MB so the file stays small)."""
    monkeypatch.setattr(parquetpages, "PAGES_BYTES", 6 << 20)
    f = tmp_path / "pages.parquet"
    f.write_bytes(_one_page_each(40, 60_000, codec))  # 3 pages of 2.4 MB
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "t")
    assert "row group 0's columns hold pages that decode to" in err.value.message
    assert sum(hub.log.end_offsets("t").values()) == 0
    # the same rows in pages of a sixth the size: taken whole
    monkeypatch.setattr(parquetpages, "PAGES_BYTES", 36 << 20)
    assert publish_file(hub.ingest, f, "t").result.accepted == 40


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    codec=st.sampled_from(["none", "gzip", "zstd", "brotli", "lz4", "snappy"]),
    dictionary=st.booleans(),
    version=st.sampled_from(["1.0", "2.0"]),
    statistics=st.booleans(),
    page_index=st.booleans(),
    rows=st.integers(0, 3000),
    group=st.integers(1, 5000),
    page=st.sampled_from([64, 1024, 1 << 20]),
)
def test_honest_files_pass_the_page_walk(
    codec: str,
    dictionary: bool,
    version: str,
    statistics: bool,
    page_index: bool,
    rows: int,
    group: int,
    page: int,
) -> None:
    """Every writer option Arrow has that changes the page headers (codec, dictionary pages,
    data page v2, statistics, page index, many row groups, tiny pages, nulls, nested lists):
    the walk parses each chunk's pages and refuses none."""
    table = pa.table(
        {
            "s": [None if i % 7 == 0 else f"v{i % 50}" * (i % 5) for i in range(rows)],
            "n": list(range(rows)),
            "l": [[i, None, i * 2] if i % 3 else None for i in range(rows)],
            "st": [{"a": i, "b": str(i)} for i in range(rows)],
        }
    )
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        compression=codec,
        use_dictionary=dictionary,
        data_page_version=version,
        write_statistics=statistics,
        write_page_index=page_index,
        row_group_size=group,
        data_page_size=page,
    )
    out.seek(0)
    check_pages(out, pq.ParquetFile(io.BytesIO(out.getvalue())).metadata)


def test_a_page_header_cut_short_is_refused_naming_it(tmp_path: Path) -> None:
    """A footer whose offsets point past the pages (the file cut, or the footer lying)."""
    raw = _one_page_each(5, 10)
    meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    with pytest.raises(PagesTooLarge, match="past the end"):
        check_pages(io.BytesIO(raw[:8]), meta)


_CRASH = """
import io, json, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file
rows = 200
table = pa.table({**{f"s{i}": [f"x{j % (i + 3)}" for j in range(rows)] for i in range(3)},
                  "n": list(range(rows))})
out = io.BytesIO()
pq.write_table(table, out, row_group_size=100, use_dictionary=["s0", "s1"])
raw = bytearray(out.getvalue())
assert raw[511] == 200, raw[511]
raw[511] = 46
f = Path(sys.argv[1]) / "crash.parquet"
f.write_bytes(bytes(raw))
h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"},
                            data_dir=Path(sys.argv[1]) / "data"))
h.log.create_topic("t", 1)
h.registry.register("t-value", sys.argv[2])
try:
    publish_file(h.ingest, f, "t")
    print("published")
except FileUnreadable as exc:
    print("refused", exc.message)
good = Path(sys.argv[1]) / "good.parquet"
good.write_bytes(out.getvalue())
print("then", publish_file(h.ingest, good, "t").result.accepted)
h.close()
"""


def test_a_one_byte_flip_does_not_crash_the_process(tmp_path: Path) -> None:
    """Found by the byte-flip fuzz: one byte of a 3 KB file (offset 511, 200 -> 46, inside a
    data page) makes ``ParquetFile.iter_batches`` crash the process (SIGSEGV; other flips abort
    with ``std::bad_array_new_length``): the page walk passes it, Arrow raises nothing. A file
    dropped into a watched folder, or uploaded, takes the whole hub down. Run in a child process
    so the crash is observed, not suffered. Parquet is now decoded in a child process of its
    own (``ingest.parquet_child``): the file is refused naming the crash, and the same hub
    goes on to publish the undamaged file."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _CRASH, str(tmp_path), json.dumps(SCHEMA)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-500:])
    assert (
        "refused Parquet file 'crash.parquet': the Parquet decoder crashed on this file "
        "(signal " in out.stdout
    ), out.stdout
    assert "the file is damaged" in out.stdout
    assert "then 200" in out.stdout, out.stdout


def _two_groups() -> bytes:
    """The 3 KB file of the crash above: 200 rows in two row groups of 100."""
    rows = 200
    table = pa.table(
        {
            **{f"s{i}": [f"x{j % (i + 3)}" for j in range(rows)] for i in range(3)},
            "n": list(range(rows)),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=100, use_dictionary=["s0", "s1"])
    return out.getvalue()


def test_a_crash_in_the_second_row_group_keeps_the_first_published(
    hub: Hub, tmp_path: Path
) -> None:
    """The flip of the crash test moved to the same byte of row group 1's ``n`` chunk (1550):
    Arrow crashes after row group 0 was decoded. Now in the test process itself (the decoder
    is a child): the file is refused naming the crash, the batch committed before it stays
    published (the partial-failure rule of ``ingest.files``), and the hub goes on."""
    raw = bytearray(_two_groups())
    assert raw[1550] == 200
    raw[1550] = 46
    f = tmp_path / "late.parquet"
    f.write_bytes(bytes(raw))
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "t", batch_size=100)
    assert err.value.message.startswith(
        "Parquet file 'late.parquet': the Parquet decoder crashed on this file (signal "
    )
    assert "the file is damaged" in err.value.message
    kept = sum(hub.log.end_offsets("t").values())
    assert kept >= 100  # row group 0, committed before the crash
    good = tmp_path / "good.parquet"
    good.write_bytes(_two_groups())
    assert publish_file(hub.ingest, good, "t").result.accepted == 200
    assert sum(hub.log.end_offsets("t").values()) >= kept + 200  # nothing kept was undone


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(offset=st.integers(4, 3000), value=st.integers(0, 255))
def test_one_byte_flips_are_refused_or_read_never_fatal(offset: int, value: int) -> None:
    """The byte-flip fuzz that found the crash, kept now that decoding happens in a child: any
    single byte of the file changed gives batches or a ``FileUnreadable`` naming the file,
    never a dead test process (HUB_FUZZ_EXAMPLES is not read here: 30 flips, ~0.2 s each)."""
    import tempfile

    from ingest.files import parquet_batches

    raw = bytearray(_two_groups())
    raw[offset] = value
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "flip.parquet"
        f.write_bytes(bytes(raw))
        try:
            for _ in parquet_batches(f, 100, 1 << 20):
                pass
        except FileUnreadable as exc:
            assert "flip.parquet" in exc.message
