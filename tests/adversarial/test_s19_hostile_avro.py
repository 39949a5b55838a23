"""Session 19 hostile-input review: Avro container files whose framing lies (block counts,
block sizes, blocks of bombs), as an upstream system or a publisher key drops them
(docs/benchmarks/s19-redteam-hostile.md). Each test is an attack that worked before its fix."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file
from tests.adversarial._topics_hub import hub_with_topics

TEXT = {"type": "record", "name": "T", "fields": [{"name": "s", "type": "string"}]}
EMPTY = {"type": "record", "name": "N", "fields": [{"name": "z", "type": "null"}]}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "data", {"text": TEXT, "empty": EMPTY}) as h:
        yield h


def _long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def container(schema: dict, blocks: list[tuple[int, bytes]], codec: str = "null") -> bytes:
    """A container file whose blocks (record count, block bytes as stored) are given as is."""
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [], codec=codec)
    head = buf.getvalue()
    sync = head[-16:]
    return head + b"".join(_long(c) + _long(len(d)) + d + sync for c, d in blocks)


def _string(text: bytes) -> bytes:
    return _long(len(text)) + text


def _deflated(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _events(h: Hub, topic: str) -> int:
    return sum(h.log.end_offsets(topic).values())


@pytest.mark.parametrize("columnar", [True, False])
def test_blocks_of_bombs_are_read_a_few_at_a_time(hub: Hub, tmp_path: Path, columnar: bool) -> None:
    """Each deflate block held one 2 MB record in 2 KB, each under the block bound: the reader
    kept 10,000 records per batch whatever they inflated to, so ten 30 MB blocks (292 KB of
    file) peaked at 5.7 GB (1.6 GB on the native path). A batch now also closes once its blocks
    inflated ``BATCH_BYTES``; every record is still read (here each is over the record limit and
    quarantined)."""
    from ingest.avroblocks import BATCH_BYTES

    block = _deflated(_string(b"A" * 2_000_000))
    f = tmp_path / "blocks.avro"
    f.write_bytes(container(TEXT, [(1, block)] * 24, "deflate"))
    assert f.stat().st_size < 100_000
    sizes: list[int] = []
    result = publish_file(
        hub.ingest, f, "text", columnar=columnar, on_batch=lambda n, _: sizes.append(n)
    )
    assert result.records == 24 and sum(sizes) == 24
    assert max(sizes) * 2_000_000 <= BATCH_BYTES + 2_000_000  # not one batch of 48 MB
    assert result.result.accepted == 0 and result.result.rejected == 24


_RSS = """
import json, resource, sys
from pathlib import Path
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.files import publish_file
h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"},
                            data_dir=Path(sys.argv[2])))
h.log.create_topic("text", 1)
h.registry.register("text-value", json.dumps(%r))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = publish_file(h.ingest, Path(sys.argv[1]), "text")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"records": r.records, "grown_mb": grown / 1024}))
h.close()
"""


def test_a_file_of_bomb_blocks_stays_within_memory(tmp_path: Path) -> None:
    """Peak RSS, in a process of its own: 8 blocks of 24 MB each (200 KB of file) grew the
    reader by about 1.3 GB before; now by what one or two blocks take."""
    block = _deflated(_string(b"B" * 24_000_000))
    f = tmp_path / "rss.avro"
    f.write_bytes(container(TEXT, [(1, block)] * 8, "deflate"))
    assert f.stat().st_size < 300_000
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", _RSS % TEXT, str(f), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["records"] == 8
    assert got["grown_mb"] < 800, got


def test_a_block_count_no_block_can_hold_is_refused_at_once(hub: Hub, tmp_path: Path) -> None:
    """A schema whose records take no bytes (one null field): a 146-byte file declaring 10**5
    records in an empty block published 100,000 events in 15 s, and 2**62 would publish for
    ever. A block may not declare more records than it has bytes."""
    f = tmp_path / "count.avro"
    f.write_bytes(container(EMPTY, [(2**62, b"")]))
    t0 = time.monotonic()
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "empty")
    assert time.monotonic() - t0 < 10
    assert "block 1 declares more records than its 0 bytes can hold" in err.value.message
    assert _events(hub, "empty") == 0


@pytest.mark.parametrize("count", [0, -1])
@pytest.mark.parametrize("columnar", [True, False])
def test_a_block_declaring_no_records_is_refused_not_skipped(
    hub: Hub, tmp_path: Path, count: int, columnar: bool
) -> None:
    """A block with a count of 0 or -1 between two good ones: its record ("bad") was dropped
    unread and the file reported as published whole (2 records). Writers never write an empty
    block, so the file is refused, naming the block."""
    f = tmp_path / "zero.avro"
    ok = _string(b"ok")
    f.write_bytes(container(TEXT, [(1, ok), (count, _string(b"bad")), (1, ok)]))
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "text", columnar=columnar)
    assert "block 2 declares" in err.value.message
    assert "records" in err.value.message


@pytest.mark.parametrize("codec", ["null", "deflate", "bzip2", "xz"])
def test_a_block_size_that_lies_is_refused_naming_it(hub: Hub, tmp_path: Path, codec: str) -> None:
    """A block declaring 40 GB (100 bytes follow): fastavro allocated the declared size first,
    raised a bare MemoryError, and the refusal read "is corrupt: ." (20 GB was allocated
    unused). A declared size over the block bound is refused before any read."""
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(TEXT), [], codec=codec)
    f = tmp_path / "size.avro"
    f.write_bytes(buf.getvalue() + _long(1) + _long(40_000_000_000) + b"\x00" * 100)
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "text")
    assert "declares 40000000000 bytes" in err.value.message


FUZZ = int(os.environ.get("HUB_FUZZ_EXAMPLES", "40"))
CODECS = ["null", "deflate", "bzip2", "xz"]


@pytest.mark.parametrize("codec", CODECS)
def test_a_flipped_avro_file_is_read_as_fastavro_reads_it_or_refused(
    tmp_path: Path, codec: str
) -> None:
    """Bytes of a container file (several blocks, string and long fields) overwritten at
    random, per codec: ``publish_file`` refuses it with ``FileUnreadable`` or stores exactly
    the records a clean ``fastavro.reader`` gives, in order; never another exception, never a
    record fastavro does not give. ``HUB_FUZZ_EXAMPLES`` runs it longer (the review ran 600 per
    codec)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    schema = {
        "type": "record",
        "name": "F",
        "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "long"}],
    }
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    rows = [{"s": f"v{i}" * (i % 4), "n": i * 1_000_003} for i in range(60)]
    fastavro.writer(buf, parsed, rows, codec=codec, sync_interval=200)
    clean = buf.getvalue()
    head = len(clean)  # header, blocks and sync markers alike
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "data")
    )
    h.registry.register("f-value", json.dumps(schema))
    seen = [0]

    @settings(max_examples=FUZZ, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        raw = bytearray(clean)
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, head - 1))
            raw[at] = data.draw(st.integers(0, 255))
        seen[0] += 1
        topic = f"f{seen[0]}"
        h.log.create_topic(topic, 1)
        h.registry.register(f"{topic}-value", json.dumps(schema))
        f = tmp_path / f"{topic}.avro"
        f.write_bytes(bytes(raw))
        try:
            expected = list(fastavro.reader(io.BytesIO(bytes(raw))))
        except Exception:  # fastavro refuses it: the hub must refuse or store a prefix
            expected = None
        try:
            result = publish_file(h.ingest, f, topic)
        except FileUnreadable:
            return
        stored = [
            fastavro.schemaless_reader(io.BytesIO(r.value[5:]), parsed, None)
            for r in h.log.read(topic, 0, 0, 10_000)
        ]
        assert expected is not None, f"fastavro refuses the file, the hub took {stored}"
        assert result.result.accepted == len(stored)
        assert stored == expected[: len(stored)] and len(stored) + result.result.rejected == len(
            expected
        )

    try:
        run()
    finally:
        h.close()
