"""File sources: JSON lines, CSV, Parquet and Avro object container files, streamed in batches.

Every format streams: JSON lines and CSV by blocks of whole lines (``ingest.lines.Lines``: one
buffer and offsets per batch, no object per line), Parquet by record batches
(``ParquetFile.iter_batches``, decoded in a child process: ``parquet_batches``), Avro OCF block
by block (``fastavro.reader``); memory is bounded by the batch size, whatever the file size.
Each batch goes through the columnar path (``publish_file``); the per-record readers below stay
the reference it must equal.

What is per record and what fails the whole file
- Per record (quarantined with the original bytes, the rest of the file goes on): a JSON line
  that is not UTF-8 or not JSON, a CSV row with the wrong number of columns or a value that does
  not fit its column's type, any schema or rule failure.
- The whole file (``FileUnreadable``, CLI exit 1, nothing of it appended unless earlier batches
  already committed): a file that is not of its format (truncated Parquet has no footer), a CSV
  header naming a column the schema does not have, an Avro file whose writer schema is not
  registered under the topic's subject. Avro files are not auto-registered: register the schema
  first with ``hub schema register``.
- Originals: JSON lines and CSV rows keep their exact bytes; Parquet and Avro rows have none of
  their own, so the quarantine keeps their JSON rendering (replayable as JSON).

Resuming: the source of a file is ``file:<first 16 hex of its SHA-256>:<tenant>:<topic>``
(``file_source``). Its position (records consumed) is stored with every batch; a restart skips
what was committed, and a file whose last position says ``done`` is not ingested again into that
topic for that tenant. The digest alone named the source before: the same bytes sent by another
tenant, or to another topic, were skipped as "already ingested" (nothing written, and the
sender learnt that someone had ingested that exact file). A position stored under that old name
is still honoured for tenant ``default`` and the topic it records, the only ones it can be.

Lineage (``core.lineage``): every publish of a file is one run of ``ingest.files.<topic>``
(``ingest.watch.<topic>`` from a watched folder), reading ``hub://sources/file:///<path>`` and
writing the topic, plus ``hub.quarantine`` once a record was quarantined; a file already done is
a run that writes nothing new. A path that is not a file, an unknown format or topic fails before
the run starts; anything after (an unreadable file included) ends the run with FAIL.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, compress, count, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from core import jsonkeys, lineage
from core.avro.compatibility import (
    LOGICAL_TYPE_MISMATCH,
    LOSSY_PROMOTION,
    Incompatibility,
    check_reader_writer,
)
from core.avro.schema import parse_schema
from core.errors import HubError, InvalidInput
from core.pii import encrypted_schema
from core.tenant_quota import TenantQuotaExceeded, TenantRateLimited
from domain.shown import shown
from ingest.lines import Lines, batches
from ingest.localfile import FileUnreadable as FileUnreadable
from ingest.localfile import OpenedFile, open_dir
from ingest.pipeline import (
    QUARANTINE_TOPIC,
    WIRE,
    IngestPipeline,
    IngestResult,
    RawRecord,
    Target,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from ingest.arrowread import Bools
    from ingest.parquet_pool import ParquetDecoders

FORMATS = ("jsonl", "csv", "parquet", "avro")


class _Batch(Protocol):
    """A batch of a file: a list of records, lines or rows, or an Arrow record batch."""

    def __len__(self) -> int: ...
    def __getitem__(self, cut: slice, /) -> Any: ...


_B = TypeVar("_B", bound=_Batch)
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".avro": "avro",
}


@dataclass
class FileResult:
    path: str
    source: str
    format: str
    records: int = 0
    skipped: int = 0
    already_done: bool = False
    result: IngestResult = field(default_factory=IngestResult)


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise InvalidInput(f"Format {fmt!r} is not one of auto, {', '.join(FORMATS)}.")
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(
            f"Cannot tell the format of {path.name!r} from its suffix: pass --format "
            f"({', '.join(FORMATS)})."
        )
    return found


Source = Path | OpenedFile  # a path (tests, tools) or the file ``publish_file`` opened once


def _open_rb(src: Source) -> Any:
    """A binary reader at the start of ``src``: the opened file's descriptor, or the path."""
    return src.open() if isinstance(src, OpenedFile) else src.open("rb")


def file_digest(path: Source) -> str:
    h = hashlib.sha256()
    with _open_rb(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_source(digest: str, topic: str, tenant: str) -> str:
    """The source id of a file's bytes ingested into ``topic`` for ``tenant`` (see "Resuming")."""
    return f"file:{digest[:16]}:{tenant}:{topic}"


# -- readers: each yields lists of RawRecord ------------------------------------------------
def _nonblank_batches(
    lines: Iterable[tuple[int, bytes]], batch_size: int
) -> Iterator[list[tuple[int, bytes]]]:
    """Batches of the (line number, bytes) pairs whose bytes are not blank."""
    batch: list[tuple[int, bytes]] = []
    for lineno, raw in lines:
        if not raw.strip() and not isinstance(raw, _CutLine):  # a cut line is never blank
            continue
        batch.append((lineno, raw))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _CutLine(bytes):
    """The first bytes of a JSON line over the record limit, with the size and SHA-256 of the
    whole line (without its end), which the quarantine records."""

    size: int
    sha256: str
    blank = False  # only whitespace, as a whole (a blank CSV line is skipped however long)


class _LongLine:
    """A line over the limit that goes on past the block: its first ``cap`` bytes, and its
    size and digest fed as it is skipped (trailing CRs held back, as ``rstrip`` drops them)."""

    def __init__(self, start: bytes, cap: int) -> None:
        self.prefix = start[:cap]  # the first ``cap`` bytes
        self.hash = hashlib.sha256()
        self.size = 0
        self.held = 0  # CR bytes at the end so far: part of the line only if more follows
        self.blank = True  # only whitespace so far (a blank line is skipped, however long)
        self.feed(start)

    def feed(self, part: bytes) -> None:
        if self.blank and part.strip():
            self.blank = False
        body = part.rstrip(b"\r")
        if body:
            self.hash.update(b"\r" * self.held + body)
            self.size += self.held + len(body)
            self.held = len(part) - len(body)
        else:
            self.held += len(part)

    def line(self) -> bytes:
        """The line as ``_numbered`` gives it: whole when CRs at its end made it long."""
        if self.size <= len(self.prefix):
            return self.prefix[: self.size]
        out = _CutLine(self.prefix)
        out.size, out.sha256 = self.size, self.hash.hexdigest()
        return out


def _jsonl_lines(
    path: Source, batch_size: int, max_bytes: int | None = None
) -> Iterator[list[tuple[int, bytes]]]:
    """Batches of (line number, line without its end) of the non-blank lines: what
    ``_nonblank_batches`` gives over the numbered lines (``_jsonl_blocks``' batches as pairs)."""
    for lines in _jsonl_blocks(path, batch_size, max_bytes):
        yield lines.pairs()


def _jsonl_blocks(path: Source, batch_size: int, max_bytes: int | None = None) -> Iterator[Lines]:
    """Batches of the non-blank lines (numbered, without their ends) as ``Lines``, read by
    blocks of bytes: a block whose lines are all within the limit is split by a few C-level
    passes (``Lines.block``), no Python object per line; another goes line by line
    (``_numbered``).

    With ``max_bytes`` (the record limit), a line longer than that is given as its first
    ``max_bytes + 1`` bytes (a ``_CutLine``, enough to be refused for its size and quarantined
    truncated, with the whole line's size and SHA-256) and the rest of it is read past, not
    kept: a file with no newline is held as one block and that prefix, not whole (``readlines``
    held about 3x the file before the line was refused). Without it, lines are whole (the
    reference the tests compare against)."""
    return batches(_jsonl_pieces(path, max_bytes), batch_size)


def _jsonl_pieces(path: Source, max_bytes: int | None) -> Iterator[Lines]:
    number = 1
    cap = None if max_bytes is None else max_bytes + 1
    tail = b""  # the start of a line the last block did not end
    long: _LongLine | None = None  # a line over ``cap`` still going on past the last block
    with _open_rb(path) as f:
        while True:
            block = f.read(_LINES_BLOCK_BYTES)
            if not block:
                break
            if long is not None:
                cut = block.find(b"\n")
                if cut < 0:
                    long.feed(block)
                    continue
                long.feed(block[:cut])
                if not long.blank:
                    yield Lines.of([(number, long.line())])
                number += 1
                long, block = None, block[cut + 1 :]
            region, tail = _whole_lines(tail, block)
            if region is not None:
                piece, lines = _region_lines(region, number, cap)
                number += lines
                yield piece
            if cap is not None and len(tail) > cap:
                long, tail = _LongLine(tail, cap), b""
    if long is not None:
        if not long.blank:
            yield Lines.of([(number, long.line())])
    elif tail:
        yield Lines.of(_numbered([tail], number, cap))


def _whole_lines(tail: bytes, block: bytes) -> tuple[bytes | None, bytes]:
    """The whole lines that the last block's ``tail`` (no ``\\n`` in it) and ``block`` make,
    joined by ``\\n`` without the last one's (None when ``block`` ends none), and the new tail.
    The region is copied once (``tail + block`` then a slice of it copied each block twice)."""
    end = block.rfind(b"\n")
    if end < 0:
        return None, tail + block
    region = b"".join((tail, memoryview(block)[:end])) if tail else block[:end]
    return region, block[end + 1 :]


def _region_lines(region: bytes, first: int, cap: int | None) -> tuple[Lines, int]:
    """The non-blank lines of ``region`` (whole lines joined by ``\\n``) numbered from
    ``first``, by C-level passes unless a line is over ``cap``; and how many lines ``region``
    holds, blank ones included."""
    piece = Lines.block(region, first)
    if cap is None or not len(piece) or int(piece.lengths().max()) <= cap:
        return piece.nonblank(), len(piece)
    lines = region.split(b"\n")
    return Lines.of(_numbered(lines, first, cap)), len(lines)


def _numbered(lines: list[bytes], first: int, cap: int | None) -> list[tuple[int, bytes]]:
    """(number, line without its end) of the non-blank ``lines``; a line over ``cap`` bytes is
    given as a ``_CutLine`` of its first ``cap`` bytes."""
    raws = list(map(bytes.rstrip, lines, repeat(b"\r\n")))
    keep = list(map(bytes.strip, raws))  # blank or not as a whole line, before any cut
    if cap is not None and raws and max(map(len, raws)) > cap:
        raws = [raw if len(raw) <= cap else _cut(raw, cap) for raw in raws]
    return list(compress(zip(count(first), raws), keep))


def _cut(raw: bytes, cap: int) -> _CutLine:
    out = _CutLine(raw[:cap])
    out.size, out.sha256 = len(raw), hashlib.sha256(raw).hexdigest()
    return out


_LINES_BLOCK_BYTES = 1 << 22  # lines read per block (about 4 MiB, whole lines)


def json_line_record(raw: bytes, lineno: int, max_bytes: int | None = None) -> RawRecord:
    """One JSON line as the per-record path receives it (the reference). A line over
    ``max_bytes`` (``_jsonl_lines`` gives such a line as a ``_CutLine``) is refused for its
    size, unparsed, with the whole line's size and SHA-256."""
    if max_bytes is not None and isinstance(raw, _CutLine):
        return RawRecord(
            bytes(raw),
            error=f"The record is {raw.size} bytes, over the limit of {max_bytes} "
            "(HUB_MAX_RECORD_BYTES): split or shrink it.",
            error_code="payload_too_large",
            position={"line": lineno},
            whole=(raw.size, raw.sha256),
        )
    try:
        # NaN / Infinity are not JSON (RFC 8259): json.loads took them, so a line stored a NaN
        # or an infinite double that the JSON routes refuse (``hub.api.deps``) and no export
        # writes back as JSON.
        # A repeated member name is refused (core.jsonkeys): the stored original would read
        # differently to a first-wins parser.
        value = json.loads(
            raw.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=_no_constant,
            object_pairs_hook=jsonkeys.unique_members,
        )
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return RawRecord(raw, value=value, position={"line": lineno})
    except UnicodeDecodeError as exc:
        return RawRecord(
            raw,
            error=f"Line {lineno} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
            error_code="not_utf8",
            position={"line": lineno},
        )
    except jsonkeys.DuplicateKey as exc:
        return RawRecord(
            raw,
            error=f"Line {lineno} is ambiguous JSON: {exc}.",
            error_code="duplicate_key",
            position={"line": lineno},
        )
    except ValueError as exc:
        return RawRecord(
            raw,
            error=f"Line {lineno} is not a JSON object: {exc}.",
            error_code="malformed_json",
            position={"line": lineno},
        )
    except RecursionError:  # 2 KB of brackets: was an internal error that ended the whole file
        return RawRecord(
            raw,
            error=f"Line {lineno} nests arrays or objects too deeply to read: flatten it.",
            error_code="malformed_json",
            position={"line": lineno},
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: write a finite number, or a string")


def _jsonl(path: Source, batch_size: int, max_bytes: int) -> Iterator[list[RawRecord]]:
    for lines in _jsonl_lines(path, batch_size, max_bytes):
        yield [json_line_record(raw, lineno, max_bytes) for lineno, raw in lines]


def csv_types(schema: Any) -> dict[str, tuple[Any, bool]]:
    """Per field: its non-null type (parsed Avro) and whether null is allowed."""
    out = {}
    for f in schema["fields"]:
        t = f["type"]
        nullable = isinstance(t, list) and "null" in t
        if isinstance(t, list):
            t = next((b for b in t if b != "null"), "null")
        out[f["name"]] = (t, nullable)
    return out


def _plain(text: str) -> str:
    """``text`` if it holds no digits Python reads but a CSV reader would not mean: ``int`` and
    ``Decimal`` take "1_000" as 1000 (and "1_5" as 15) and "٣" (Arabic-Indic) as 3."""
    if text.isascii() and "_" not in text:
        return text
    raise ValueError(f"{shown(text)} is not a number in plain digits (ASCII 0-9, no '_' grouping)")


def _csv_value(text: str, t: Any, nullable: bool) -> Any:
    if text == "" and nullable:
        return None
    base = t["type"] if isinstance(t, dict) else t
    if isinstance(t, dict) and t.get("logicalType") == "decimal":
        return text
    if base in ("int", "long"):
        if isinstance(t, dict) and t.get("logicalType", "").startswith(
            ("timestamp", "local-timestamp", "date")
        ):
            plain = text.isascii() and text.lstrip("-").isdigit()
            return int(text) if plain else text
        return int(_plain(text))
    if base in ("float", "double"):
        return Decimal(_plain(text))
    if base == "boolean":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{shown(text)} is not a boolean (true/false)")
        return text.lower() in ("true", "1")
    return text


def _csv_rows(path: Source, max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Raw rows (line number, bytes), blank ones included; a quoted field may span lines
    (``_csv_pieces``' rows one by one)."""
    for piece in _csv_pieces(path, max_bytes):
        yield from piece.pairs()


def _csv_pieces(path: Source, max_bytes: int) -> Iterator[Lines]:
    """Raw rows (numbered, blank ones included) as ``Lines``, block by block; a quoted field may
    span lines. A block of whole lines without a quote, none over the limit, outside an open
    quoted field, is its rows as they are (``Lines.block``: C-level passes, no Python object
    per row); any other block goes line by line, as follows.

    Linear in the file: the quote parity is kept per line, not recounted over the open row (an
    unclosed quote made that quadratic: a 1.6 MB file took minutes). A row still open after
    ``max_bytes`` (the record limit, which refuses it anyway) is a quote that is never closed:
    ``FileUnreadable`` naming its line, instead of reading the rest of the file into one row.

    A line longer than ``max_bytes`` that starts a row is given as its first ``max_bytes + 1``
    bytes (a ``_CutLine`` with the whole line's size and SHA-256, which ``csv_row_record``
    refuses for its size) and the rest of it is read past, not kept: a file with no newline is
    not held whole (``_csv_regions``)."""
    cap = max_bytes + 1
    with _open_rb(path) as f:
        parts: list[bytes] = []  # the lines of a row whose quoted field is still open
        size = 0
        start = 0
        first = 1  # the number of the block's first line
        for found, cut in _csv_regions(f, cap):
            if isinstance(found, bytes):  # a region of whole lines
                piece = Lines.block(found, first)
                if int(piece.lengths().max()) <= cap:
                    if not parts and b'"' not in found:  # the common case: a row per line
                        first += len(piece)
                        yield piece
                        continue
                    lines = found.split(b"\n")
                else:
                    lines, cut = [_csv_cut(line, cap) for line in found.split(b"\n")], True
            else:
                lines = found
            rows: list[tuple[int, bytes]] = []
            for lineno, line in zip(count(first), lines):
                if cut and isinstance(line, _CutLine):
                    if not parts:
                        if not line.blank:  # a blank line is skipped, however long
                            rows.append((lineno, line))
                        continue
                    size += line.size
                    odd = 0
                else:
                    odd = line.count(b'"') % 2
                    if not parts:
                        if not odd:  # a whole row on one line
                            rows.append((lineno, line.rstrip(b"\r")))
                            continue
                        start, size = lineno, 0
                    parts.append(line)
                    size += len(line) + 1
                    if parts[1:] and odd:  # this line closes the open field
                        rows.append((start, b"\n".join(parts).rstrip(b"\r\n")))
                        parts = []
                        continue
                if size > max_bytes:
                    raise FileUnreadable(
                        f"CSV line {start} of {path.name!r} opens a quoted field that is still "
                        f"open after {size} bytes, over the record limit of {max_bytes} "
                        "(HUB_MAX_RECORD_BYTES): close the quote or escape it as two quotes."
                    )
            first += len(lines)
            if rows:
                yield Lines.of(rows)
        if parts:
            yield Lines.of([(start, b"\n".join(parts).rstrip(b"\r\n"))])


def _csv_lines(f: Any, cap: int) -> Iterator[tuple[list[bytes], bool]]:
    """The lines of ``f`` by blocks (split in C), each line without its ``\\n`` (a CR before
    it stays), and whether the block holds a cut line: a line longer than ``cap`` bytes without
    its end is given as a ``_CutLine`` of its first ``cap`` bytes (the whole line's size and
    SHA-256 without its end, as ``rstrip(b"\\r\\n")`` leaves it) and the rest is read past,
    not kept (``_csv_regions``' blocks split)."""
    for found, cut in _csv_regions(f, cap):
        if isinstance(found, bytes):
            lines = found.split(b"\n")
            if max(map(len, lines)) > cap:
                yield [_csv_cut(line, cap) for line in lines], True
            else:
                yield lines, False
        else:
            yield found, cut


def _csv_regions(f: Any, cap: int) -> Iterator[tuple[bytes | list[bytes], bool]]:
    """``_csv_lines``' blocks, a block of whole lines as one region of bytes (the lines joined
    by ``\\n``, CRs kept; the caller splits it and cuts its long lines); a line over ``cap``
    going on past its block comes alone, cut, in a list with True."""
    tail = b""  # the start of a line the last block did not end
    long: _LongLine | None = None  # a line over ``cap`` still going on past the last block
    while block := f.read(_LINES_BLOCK_BYTES):
        if long is not None:
            cut = block.find(b"\n")
            if cut < 0:
                long.feed(block)
                continue
            long.feed(block[:cut])
            yield [_ended(long)], True
            long, block = None, block[cut + 1 :]
        region, tail = _whole_lines(tail, block)
        if region is not None:
            yield region, False
        if len(tail) > cap:
            long, tail = _LongLine(tail, cap), b""
    if long is not None:
        yield [_ended(long)], True
    elif tail:
        yield [_csv_cut(tail, cap)], True


def _ended(long: _LongLine) -> bytes:
    """A long line once its end is read: cut, or whole when only trailing CRs made it long."""
    line = long.line()
    if isinstance(line, _CutLine):
        line.blank = long.blank
    return line


def _csv_cut(line: bytes, cap: int) -> bytes:
    body = line.rstrip(b"\r")
    if len(body) <= cap:
        return line
    out = _cut(body, cap)
    out.blank = not body.strip()
    return out


def csv_content_type(header_line: bytes) -> str:
    """``text/csv`` with the file's header line as a base64 ``columns`` parameter."""
    return "text/csv; columns=" + base64.b64encode(header_line).decode("ascii")


def csv_header_of(content_type: str) -> list[str] | None:
    """The header a ``csv_content_type`` carries, or None."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name == "columns":
            line = base64.b64decode(value).decode("utf-8-sig")
            return next(csv.reader([line]))
    return None


def parse_csv_row(
    raw: bytes, header: list[str], types: dict[str, tuple[Any, bool]]
) -> dict[str, Any]:
    """One CSV row typed by the schema; raises ValueError / csv.Error / UnicodeDecodeError."""
    (cells,) = list(csv.reader([raw.decode("utf-8")]))
    if len(cells) != len(header):
        raise ValueError(f"it has {len(cells)} columns, the header has {len(header)}")
    value = {}
    for name, cell in zip(header, cells, strict=True):
        try:
            value[name] = _csv_value(cell, *types[name])
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"column {name!r}: {shown(cell)} does not fit ({exc})") from exc
    return value


@dataclass
class _CsvFile:
    types: dict[str, tuple[Any, bool]]
    header: list[str]
    ctype: str
    pieces: Iterator[Lines]  # the rows after the header, blank ones included

    def batches(self, batch_size: int) -> Iterator[Lines]:
        """Batches of the non-blank rows (numbered)."""
        return batches((piece.nonblank() for piece in self.pieces), batch_size)


def _csv_open(
    path: Source, pipeline: IngestPipeline, topic: str, event_type: str | None
) -> _CsvFile | None:
    """The CSV file's header checked against the schema; None for an empty file."""
    types = csv_types(pipeline.target(topic, event_type).plain.parsed)
    pieces = _csv_pieces(path, pipeline.max_record_bytes)
    piece = next(pieces, None)
    while piece is not None and not len(piece):
        piece = next(pieces, None)
    if piece is None:
        return None
    first = piece.line(0)
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FileUnreadable(f"The CSV header of {path.name!r} is unreadable: {exc}.") from exc
    twice = sorted(h for h, n in Counter(header).items() if n > 1)  # linear: headers can be huge
    if twice:
        # Each row kept only the last of the repeated column's cells: the others were accepted
        # and dropped without a word (``s,n,s`` / ``a,1,b`` stored s="b").
        shown = ", ".join(repr(h[:64]) for h in twice[:10])
        raise FileUnreadable(
            f"The CSV header of {path.name!r} names column(s) {shown} more than once: which "
            "cell is the value would be a guess; give each column once."
        )
    unknown = [h for h in header if h not in types]
    if unknown:
        # The sender's names, quoted (a newline or ESC in one must not reach a terminal or a
        # log line as such) and at most ten: a header of millions of names made a message of
        # megabytes, which the lineage FAIL event could then not even record.
        shown = ", ".join(repr(h[:64]) for h in unknown[:10])
        more = f" and {len(unknown) - 10:,} more" if len(unknown) > 10 else ""
        raise FileUnreadable(
            f"The CSV header of {path.name!r} names {len(unknown):,} column(s) ({shown}{more}) "
            f"that the schema of topic {topic!r} does not have (it has {', '.join(types)}): "
            "rename or drop them."
        )
    # The header travels with each row's content type (a MIME parameter), so a quarantined row
    # can be parsed again on replay without the file.
    return _CsvFile(types, header, csv_content_type(first), chain([piece[1:]], pieces))


def _csv(
    path: Source, batch_size: int, pipeline: IngestPipeline, topic: str, event_type: str | None
) -> Iterator[list[RawRecord]]:
    f = _csv_open(path, pipeline, topic, event_type)
    if f is None:
        return
    for rows in f.batches(batch_size):
        yield [
            csv_row_record(raw, lineno, f.header, f.types, f.ctype, event_type)
            for lineno, raw in rows.pairs()
        ]


def csv_row_record(
    raw: bytes,
    lineno: int,
    header: list[str],
    types: dict[str, tuple[Any, bool]],
    ctype: str,
    event_type: str | None,
) -> RawRecord:
    """One CSV row as the per-record path receives it (the reference). A row over the record
    limit that ``_csv_rows`` cut (a ``_CutLine``) is refused for its size, unparsed, with the
    whole row's size and SHA-256."""
    pos = {"line": lineno}
    if isinstance(raw, _CutLine):
        return RawRecord(
            bytes(raw),
            content_type=ctype,
            error=f"The record is {raw.size} bytes, over the limit of {len(raw) - 1} "
            "(HUB_MAX_RECORD_BYTES): split or shrink it.",
            error_code="payload_too_large",
            event_type=event_type,
            position=pos,
            whole=(raw.size, raw.sha256),
        )
    try:
        value = parse_csv_row(raw, header, types)
        return RawRecord(raw, value=value, content_type=ctype, event_type=event_type, position=pos)
    except UnicodeDecodeError as exc:
        return RawRecord(
            raw,
            content_type=ctype,
            error=f"CSV line {lineno} is not UTF-8 text ({exc.reason}).",
            error_code="not_utf8",
            position=pos,
        )
    except (ValueError, csv.Error) as exc:
        return RawRecord(
            raw,
            content_type=ctype,
            error=f"CSV line {lineno} is malformed: {exc}.",
            error_code="malformed_csv",
            position=pos,
        )


def _parquet(
    path: Source, batch_size: int, event_type: str | None, pipeline: IngestPipeline
) -> Iterator[list[RawRecord]]:
    batches = parquet_batches(path, batch_size, pipeline.max_record_bytes, pipeline.parquet)
    for rb in batches:
        yield [
            RawRecord(b"", kind="datum", value=row, event_type=event_type) for row in rb.to_pylist()
        ]


def parquet_batches(
    path: Source,
    batch_size: int,
    max_bytes: int | None = None,
    decoders: ParquetDecoders | None = None,
) -> Iterator[Any]:
    """Arrow record batches of a Parquet file, streamed; ``FileUnreadable`` if it is not one.

    Decoded in a child process (``ingest.parquet_child``: pyarrow 16.1.0 crashes the process on
    some damaged files, so a file is decoded where a crash only ends the child) of ``decoders``
    (the pipeline's pool, bounded in time and memory; the process's default pool when None) and
    read back as an Arrow IPC stream, one batch at a time: the child blocks on the pipe until
    the batch before is taken, so memory stays bounded by a batch on each side. The bounds,
    batch sizes and refusals are the child's reader's (``parquet_child.read_batches``); a child
    that dies, or passes the pool's time or memory bound, is the file's refusal, after the
    batches it already gave (those stay published, as for any file refused part way: see the
    module docstring)."""
    from ingest import parquet_child, parquet_pool

    request = {"batch_size": batch_size, "max_bytes": max_bytes, **parquet_child.bounds()}
    pool = decoders if decoders is not None else parquet_pool.shared()
    with _open_rb(path) as f:
        yield from pool.batches(f, path.name, request)


def _avro(
    path: Source, batch_size: int, pipeline: IngestPipeline, topic: str, event_type: str | None
) -> Iterator[list[RawRecord]]:
    with _open_rb(path) as f:
        t = _avro_target(pipeline, f, path, topic, event_type)
        f.seek(0)
        for datums in _avro_datums(f, path, t, batch_size):
            yield [
                RawRecord(b"", kind="datum", value=datum, content_type=WIRE, event_type=t.name)
                for datum in datums
            ]


def _avro_target(
    pipeline: IngestPipeline, f: Any, path: Source, topic: str, event_type: str | None
) -> Target:
    """The target of an Avro container file, whose writer schema must be registered."""
    import fastavro

    try:
        reader = fastavro.reader(f)
        text = reader.metadata["avro.schema"]
    except Exception as exc:  # fastavro raises several types for a bad header
        raise FileUnreadable(f"{path.name!r} is not an Avro object container file: {exc}.") from exc
    writer_name = json.loads(text).get("name") if text.startswith("{") else None
    ns = json.loads(text).get("namespace") if text.startswith("{") else None
    full = f"{ns}.{writer_name}" if ns and writer_name and "." not in writer_name else writer_name
    t = pipeline.target(
        topic, event_type or (full if pipeline.publisher.strategy(topic) != "topic" else None)
    )
    try:
        try:
            pipeline.registry.lookup(t.subject, text)
        except HubError:
            if not t.encrypts:
                raise
            # The registry holds the log form of a PII schema; the file has its plain form.
            pipeline.registry.lookup(t.subject, encrypted_schema(text))
    except HubError as exc:
        raise FileUnreadable(
            f"The writer schema of Avro file {path.name!r} ({full}) is not registered under "
            f"subject {t.subject!r}; files are not auto-registered: register it with "
            f"`hub schema register {t.subject} SCHEMA.avsc` and publish again."
        ) from exc
    _refuse_rounding(t, text, path)
    return t


# Logical types of one kind in two units: the pipeline re-encodes a file's value by value
# (millis as micros exactly; a time finer than the reader's unit is quarantined by
# ``serde.check_stamps``), so a file may cross them; every other logical-type change is refused.
_SAME_KIND_UNITS = (
    frozenset({"timestamp-millis", "timestamp-micros"}),
    frozenset({"local-timestamp-millis", "local-timestamp-micros"}),
    frozenset({"time-millis", "time-micros"}),
)


def _changes_meaning(i: Incompatibility) -> bool:
    """Whether the Avro file path must refuse ``i`` (found in strict mode) before any row."""
    if i.rule == LOSSY_PROMOTION:
        return True
    if i.rule != LOGICAL_TYPE_MISMATCH or i.logical is None:
        return False
    return not any(set(i.logical) <= units for units in _SAME_KIND_UNITS)


def _refuse_rounding(t: Target, text: str, path: Source) -> None:
    """Refuse a file whose rows the target's schema would read as other values: through a
    promotion that can round a number (int or long to float, long to double:
    ``LOSSY_PROMOTION``; fastavro's resolving reader turned a long 9007199254740993 of an older
    registered version into 9007199254740992.0, accepted without a word), or through a change
    of logical type (``LOGICAL_TYPE_MISMATCH``) that changes what a value means: a plain long
    of an older version read as a ``timestamp-millis`` (seconds taken as milliseconds), a time
    read as a plain number, an instant read as a local time. The wire path refuses those
    records the same way. A time that only changes unit (millis and micros) is read by value
    (a time finer than the reader's unit is quarantined by ``serde.check_stamps``); decimals of
    another scale are converted exactly by ``serde.conform_row`` or quarantined."""
    try:
        writer = parse_schema(text)
    except HubError as exc:  # registered, so parseable; a refusal names it all the same
        raise FileUnreadable(
            f"The writer schema of Avro file {path.name!r} is invalid: {exc}"
        ) from exc
    found = [
        i
        for i in check_reader_writer(t.plain, writer, strict_logical_types=True)
        if _changes_meaning(i)
    ]
    lossy = [f"{i.path}: {i.message}" for i in found if i.rule == LOSSY_PROMOTION]
    if lossy:
        raise FileUnreadable(
            f"Avro file {path.name!r} was written with a schema whose numbers the latest schema "
            f"of subject {t.subject!r} would round ({LOSSY_PROMOTION}): {'; '.join(lossy)}. "
            "Nothing of it was published. Convert the file to the latest schema (checking each "
            "value is exact), or keep the field's type in a new version."
        )
    if found:
        raise FileUnreadable(
            f"Avro file {path.name!r} was written with a schema whose values the latest schema "
            f"of subject {t.subject!r} would read as something else ({LOGICAL_TYPE_MISMATCH}): "
            f"{'; '.join(f'{i.path}: {i.message}' for i in found)}. Nothing of it was "
            "published. Convert the file to the latest schema (for instance seconds to "
            "milliseconds), or keep the field's logical type in a new version."
        )


def _avro_datums(f: Any, path: Source, t: Target, batch_size: int) -> Iterator[list[Any]]:
    """Batches of an Avro container file's datums resolved to the target's plain schema.

    A file written with that very schema is read without resolution (fastavro's resolving
    reader is about twice as slow, and resolving a schema to itself changes nothing)."""
    import fastavro

    from ingest.avroblocks import BATCH_BYTES, BlockChecker, install, tally

    install()  # blocks inflate with a bound (a crafted block is a decompression bomb)
    same = _written_with(f, t)
    resolved = fastavro.reader(f, reader_schema=None if same else t.plain.parsed)
    batch: list[Any] = []
    blocks = BlockChecker()
    since = tally.total
    try:
        for datum in resolved:
            blocks.datum()
            batch.append(datum)
            # Cut by inflated bytes too: a few KB of deflate per record filled a batch of GBs.
            if len(batch) >= batch_size or tally.total - since >= BATCH_BYTES:
                yield batch
                batch, since = [], tally.total
        blocks.finish()
    except Exception as exc:  # corrupt block
        raise _avro_corrupt(path, exc) from exc
    if batch:
        yield batch


def _avro_corrupt(path: Source, exc: Exception) -> FileUnreadable:
    """The refusal of an Avro file fastavro could not decode. fastavro writes any int for a
    date or timestamp and any string for a uuid, but raises (OverflowError, ValueError) reading
    one it cannot convert: the file is then not corrupt, and the message says so."""
    from ingest.avroblocks import CorruptBlock

    why = f"Avro file {path.name!r} is corrupt: {exc or _avro_unsaid(exc)}."
    if isinstance(exc, OverflowError | ValueError) and not isinstance(exc, CorruptBlock):
        why = (
            f"Avro file {path.name!r} is corrupt, or holds a value its logical type cannot "
            "represent (a date or timestamp outside years 1..9999, a time of day past "
            f"midnight, a malformed UUID): {exc}. Correct that value and publish the file again."
        )
    return FileUnreadable(why)


def _avro_unsaid(exc: Exception) -> str:
    """What an error fastavro raised without a message means (a block whose declared size
    runs past the file's end raised a bare EOFError: "is corrupt: .")."""
    if isinstance(exc, MemoryError):
        return "a block or value declares more bytes than can be allocated (its size lies)"
    if isinstance(exc, EOFError):
        return "it ends inside a block (a declared block size or record runs past its end)"
    return type(exc).__name__


def _written_with(f: Any, t: Target) -> bool:
    """Whether the container file ``f`` was written with the target's plain schema (then it is
    read without resolution); ``f`` is left where it was."""
    import fastavro

    start = f.tell()
    try:
        writer = json.loads(fastavro.reader(f).metadata["avro.schema"])
        same = fastavro.parse_schema(writer) == fastavro.parse_schema(json.loads(t.plain.text))
    except Exception:  # the resolving reader names what is wrong
        same = False
    f.seek(start)
    return bool(same)


def _avro_blocks(f: Any, path: Source) -> Iterator[Any]:
    """The blocks of a container file written with the target's schema (``avrofile``),
    decompressed with a bound; ``FileUnreadable`` where the file is corrupt, as
    ``_avro_datums`` says."""
    import fastavro

    from ingest.avroblocks import install
    from ingest.avrofile import read_blocks

    install()
    start = f.tell()
    writer = fastavro.parse_schema(json.loads(fastavro.reader(f).metadata["avro.schema"]))
    f.seek(start)
    try:
        yield from read_blocks(f, writer)
    except Exception as exc:  # corrupt block
        raise _avro_corrupt(path, exc) from exc


def read_file(
    pipeline: IngestPipeline,
    path: Source,
    topic: str,
    fmt: str,
    batch_size: int,
    event_type: str | None = None,
) -> Iterator[list[RawRecord]]:
    if fmt == "jsonl":
        return _jsonl(path, batch_size, pipeline.max_record_bytes)
    if fmt == "csv":
        return _csv(path, batch_size, pipeline, topic, event_type)
    if fmt == "parquet":
        return _parquet(path, batch_size, event_type, pipeline)
    return _avro(path, batch_size, pipeline, topic, event_type)


def publish_file(
    pipeline: IngestPipeline,
    path: Path,
    topic: str,
    fmt: str = "auto",
    batch_size: int = 10_000,
    *,
    event_type: str | None = None,
    producer: str | None = None,
    tenant: str = "default",
    on_batch: Callable[[int, IngestResult], None] | None = None,
    columnar: bool = True,
    job: str | None = None,
) -> FileResult:
    """Ingest a file through the pipeline, resuming after its last committed batch.

    Every format goes through the columnar path (``columnar.ingest_arrow``: the same result,
    column at a time; JSON lines, CSV and Avro rows as Arrow columns by ``arrowread``) unless
    ``columnar`` is False, which keeps the per-record reference path; a schema without an Arrow
    layout is read record by record either way. One lineage run of ``job`` (default
    ``ingest.files.<topic>``) covers it (see the module docstring).

    The file is opened once, without following a symbolic link (``localfile.OpenedFile``), and
    every read (its digest, each reader) goes through that open file: a link, a folder or a
    FIFO is refused (``NotARegularFile``, a ``FileUnreadable``), and a name swapped after the
    open is not read.

    ``tenant`` is the tenant every record is stamped with: the publishing key's own, as the HTTP
    routes stamp ``principal.tenant`` (the default is the hub's own tenant, for the hub itself).
    """
    path = Path(path)
    with OpenedFile(path) as opened:
        fmt = detect_format(path, fmt)
        return _publish_opened(
            pipeline,
            path,
            opened,
            topic,
            fmt,
            batch_size,
            event_type,
            producer,
            tenant,
            on_batch,
            columnar,
            job,
        )


def _publish_opened(
    pipeline: IngestPipeline,
    path: Path,
    opened: OpenedFile,
    topic: str,
    fmt: str,
    batch_size: int,
    event_type: str | None,
    producer: str | None,
    tenant: str,
    on_batch: Callable[[int, IngestResult], None] | None,
    columnar: bool,
    job: str | None,
) -> FileResult:
    """``publish_file`` once the file is open (one lineage run)."""
    pipeline.log.topic(topic)
    with lineage.tracked(
        pipeline.publisher,
        job or f"ingest.files.{topic}",
        [lineage.source_dataset(path.resolve().as_uri())],
        [lineage.topic_dataset(topic)],
        producer=producer or "hub",
    ) as run:

        def batch_done(n: int, result: IngestResult) -> None:
            if result.rejected:
                run.add_output(lineage.topic_dataset(QUARANTINE_TOPIC))
            if on_batch is not None:
                on_batch(n, result)

        return _publish(
            pipeline,
            opened,
            topic,
            fmt,
            batch_size,
            event_type,
            (producer, tenant),
            batch_done,
            columnar,
        )


class _Resume:
    """The batches of one file past the records committed before a restart (``skip``): counts
    what was consumed (skipped records included), names each commit's position and adds each
    ingested batch to the file's result."""

    def __init__(
        self,
        path: OpenedFile,
        source: str,
        producer: str | None,
        tenant: str,
        skip: int,
        out: FileResult,
        on_batch: Callable[[int, IngestResult], None],
    ) -> None:
        self.path, self.source, self.producer, self.tenant = path, source, producer, tenant
        self.skip, self.out, self.on_batch = skip, out, on_batch
        self.consumed = 0

    def past(self, batches: Iterable[_B]) -> Iterator[_B]:
        """Each batch, cut where the committed records end; whole batches before are skipped."""
        for batch, skipped in self.cuts(batches):
            self.take(batch, skipped)
            if batch is not None:
                yield batch

    def cuts(self, batches: Iterable[_B]) -> Iterator[tuple[_B | None, int]]:
        """``past`` without counting: each batch still to ingest, cut where the committed
        records end, with how many records were skipped just before it (a last ``None`` batch
        holds the skipped records no batch follows). Touches no state, so it may run ahead in
        the reading thread (``_ahead``); ``take`` counts each pair as it is ingested."""
        consumed, skipped = self.consumed, 0
        for batch in batches:
            n = len(batch)
            if consumed + n <= self.skip:  # committed before a restart
                consumed += n
                skipped += n
                continue
            if consumed < self.skip:
                cut = self.skip - consumed
                batch = batch[cut:]
                skipped += cut
                consumed = self.skip
            consumed += len(batch)
            yield batch, skipped
            skipped = 0
        if skipped:
            yield None, skipped

    def take(self, batch: _Batch | None, skipped: int) -> None:
        """Count a pair of ``cuts``: the records skipped before the batch, and the batch."""
        self.out.skipped += skipped
        self.consumed += skipped + (0 if batch is None else len(batch))

    def commit(self) -> dict[str, Any]:
        """The keyword arguments of the current batch's commit (source, producer, tenant,
        position)."""
        return {
            "source": self.source,
            "producer": self.producer or f"file:{self.path.name}",
            "tenant": self.tenant,
            "position": {"file": self.path.name, "records": self.consumed},
            "consumed": self.consumed,
        }

    def add(self, n: int, result: IngestResult) -> None:
        self.out.records += n
        self.out.result.add(result)
        self.on_batch(n, result)


def _publish(
    pipeline: IngestPipeline,
    path: OpenedFile,
    topic: str,
    fmt: str,
    batch_size: int,
    event_type: str | None,
    who: tuple[str | None, str],
    on_batch: Callable[[int, IngestResult], None],
    columnar: bool,
) -> FileResult:
    """``who``: the producer and tenant every record is stamped with."""
    producer, tenant = who
    digest = file_digest(path)
    source = file_source(digest, topic, tenant)
    out = FileResult(str(path.path), source, fmt)
    last = pipeline.positions.get(source)
    if last is None and tenant == "default":  # a position stored under the digest alone
        legacy = pipeline.positions.get(f"file:{digest[:16]}")
        last = legacy if legacy is not None and legacy.topic == topic else None
    skip = 0 if last is None else last.records
    if last is not None and last.done:
        out.already_done = True
        out.skipped = last.records
        return out
    resume = _Resume(path, source, producer, tenant, skip, out, on_batch)
    arrow = False
    try:
        if columnar:
            if fmt == "parquet":
                arrow = _publish_arrow(pipeline, path, topic, batch_size, event_type, resume)
            elif fmt == "avro":
                arrow = _publish_avro_arrow(pipeline, path, topic, batch_size, event_type, resume)
            elif fmt == "csv":
                arrow = _publish_csv_arrow(pipeline, path, topic, batch_size, event_type, resume)
            elif fmt == "jsonl":
                arrow = _publish_json_arrow(pipeline, path, topic, batch_size, resume)
        if not arrow:
            batches = read_file(pipeline, path, topic, fmt, batch_size, event_type)
            for batch in resume.past(batches):
                resume.add(len(batch), pipeline.ingest(topic, batch, **resume.commit()))
    except (TenantRateLimited, TenantQuotaExceeded) as exc:
        # A tenant limit refused one batch whole; the batches before it are stored: say which.
        exc.message += (
            f" The file's first {skip + out.records} records are committed (accepted, "
            "quarantined or duplicates, with the file's position): publishing the same file "
            "again resumes after them."
        )
        exc.args = (exc.message,)
        raise
    # Mark the file done (a position-only commit).
    position = {"file": path.name, "records": resume.consumed}
    pipeline.ingest(
        topic, [], source=source, position=position, consumed=resume.consumed, done=True
    )
    return out


def _publish_arrow(
    pipeline: IngestPipeline,
    path: OpenedFile,
    topic: str,
    batch_size: int,
    event_type: str | None,
    resume: _Resume,
) -> bool:
    """Parquet record batches through the columnar path. A date or timestamp outside years
    1..9999 refuses the file naming its column and row: Python cannot hold it, and the
    per-record path it would be sent to raised ``OverflowError`` out of the publish."""
    from ingest.arrowread import check_time_range
    from ingest.columnar import ingest_arrow

    def bad(why: str) -> FileUnreadable:
        return FileUnreadable(f"Parquet file {path.name!r} {why}")

    batches = parquet_batches(path, batch_size, pipeline.max_record_bytes, pipeline.parquet)
    for rb in resume.past(batches):
        check_time_range(rb, bad, first_row=resume.consumed - rb.num_rows)  # counted by past
        result = ingest_arrow(pipeline, topic, rb, event_type=event_type, **resume.commit())
        resume.add(rb.num_rows, result)
    return True


def _publish_avro_arrow(
    pipeline: IngestPipeline,
    path: OpenedFile,
    topic: str,
    batch_size: int,
    event_type: str | None,
    resume: _Resume,
) -> bool:
    """Avro container batches as Arrow columns (``arrowread.datum_batch``) through the columnar
    path; False when the schema has no Arrow layout (or PII to encrypt: the per-record path then
    reads the file). Rows the columnar path cannot vouch for go through the per-record path with
    fastavro's datum, as the reference gives it."""
    from ingest.arrowread import datum_batch, layout
    from ingest.avrofile import block_plan
    from ingest.columnar import ingest_arrow

    with _open_rb(path) as f:
        t = _avro_target(pipeline, f, path, topic, event_type)
        lay = None if t.encrypts else layout(t.plain.parsed)
        if lay is None:
            return False
        f.seek(0)
        plan = block_plan(t.plain.parsed, lay) if _written_with(f, t) else None
        if plan is not None:
            _publish_avro_blocks(pipeline, f, path, topic, t, lay, plan, batch_size, resume)
            return True
        for datums in resume.past(_avro_datums(f, path, t, batch_size)):

            def originals(at: Sequence[int], datums: list[Any] = datums) -> list[RawRecord]:
                return [
                    RawRecord(
                        b"", kind="datum", value=datums[i], content_type=WIRE, event_type=t.name
                    )
                    for i in at
                ]

            rb = datum_batch(datums, lay)
            if rb is None:
                result = pipeline.ingest(topic, originals(range(len(datums))), **resume.commit())
            else:
                result = ingest_arrow(
                    pipeline, topic, rb, event_type=t.name, originals=originals, **resume.commit()
                )
            resume.add(len(datums), result)
    return True


def _publish_avro_blocks(
    pipeline: IngestPipeline,
    f: Any,
    path: Source,
    topic: str,
    t: Target,
    lay: Any,
    plan: Any,
    batch_size: int,
    resume: _Resume,
) -> None:
    """Avro blocks decoded to Arrow columns natively (``avrofile``) through the columnar path. A
    batch holding a block the native decoder declined is read by fastavro, as
    ``_publish_avro_arrow`` reads every batch; rows the columnar path cannot vouch for get
    fastavro's datum, decoded then (only their blocks)."""
    from ingest.arrowread import datum_batch
    from ingest.avrofile import Batch, batches
    from ingest.columnar import ingest_arrow

    def records(datums: list[Any]) -> list[RawRecord]:
        return [
            RawRecord(b"", kind="datum", value=d, content_type=WIRE, event_type=t.name)
            for d in datums
        ]

    for batch in resume.past(batches(_avro_blocks(f, path), plan, lay, batch_size)):
        rb = batch.record_batch()
        datums: list[Any] | None = None
        if rb is None:  # a block the native decoder declined: fastavro reads the batch
            datums = _corrupt_as_unreadable(path, batch.datums)
            rb = datum_batch(datums, lay)

        def originals(
            at: Sequence[int], batch: Batch = batch, datums: list[Any] | None = datums
        ) -> list[RawRecord]:
            if datums is not None:
                return records([datums[i] for i in at])
            return records(_corrupt_as_unreadable(path, lambda: batch.datums_at(at)))

        if rb is None:
            result = pipeline.ingest(topic, originals(range(len(batch))), **resume.commit())
        else:
            result = ingest_arrow(
                pipeline, topic, rb, event_type=t.name, originals=originals, **resume.commit()
            )
        resume.add(len(batch), result)


def _corrupt_as_unreadable(path: Source, read: Callable[[], list[Any]]) -> list[Any]:
    """``read()`` (fastavro decoding rows of blocks), a decoding error as ``FileUnreadable``."""
    try:
        return read()
    except Exception as exc:  # corrupt block
        raise _avro_corrupt(path, exc) from exc


def _publish_csv_arrow(
    pipeline: IngestPipeline,
    path: OpenedFile,
    topic: str,
    batch_size: int,
    event_type: str | None,
    resume: _Resume,
) -> bool:
    """CSV rows read by Arrow's CSV reader (``arrowread.csv_batch``) through the columnar path;
    False when the per-record path must read the file (no layout, PII to encrypt, an empty
    file). Rows Arrow cannot vouch for go through the per-record path as ``csv_row_record``
    makes them, with their original bytes."""
    from ingest.arrowread import csv_batch, csv_layout, layout
    from ingest.columnar import ingest_arrow

    try:
        t = pipeline.target(topic, event_type)
    except HubError:
        return False
    lay = None if t.encrypts else layout(t.plain.parsed)
    if lay is None:
        return False
    f = _csv_open(path, pipeline, topic, event_type)
    if f is None:
        return False
    parsed: Any = t.plain.parsed
    cols = csv_layout(lay, f.header, parsed["fields"])
    if cols is None:
        return False
    nullable = {name for name, (_, null_ok) in f.types.items() if null_ok}
    max_bytes = pipeline.max_record_bytes

    def parse(rows: Lines) -> tuple[pa.RecordBatch, Bools]:
        return csv_batch(rows, f.header, cols, nullable, max_bytes)

    pairs = resume.cuts(f.batches(batch_size))
    for rows, skipped, (rb, force) in _ahead(pairs, parse, "csv" in READ_AHEAD):
        resume.take(rows, skipped)
        if rows is None:
            continue

        def originals(at: Sequence[int], rows: Lines = rows, f: _CsvFile = f) -> list[RawRecord]:
            return [
                csv_row_record(rows.line(i), rows.number(i), f.header, f.types, f.ctype, event_type)
                for i in at
            ]

        result = ingest_arrow(
            pipeline,
            topic,
            rb,
            event_type=event_type,
            originals=originals,
            force=force,
            **resume.commit(),
        )
        resume.add(len(rows), result)
    return True


def _json_layout(pipeline: IngestPipeline, topic: str) -> Any:
    """The Arrow layout JSON lines of ``topic`` are read with, or None (the per-record path
    reads the file: a target that does not resolve without an event type, PII to encrypt, a
    field type without a plain column)."""
    from ingest.arrowread import layout

    try:
        t = pipeline.target(topic, None)
    except HubError:
        return None
    return None if t.encrypts else layout(t.plain.parsed)


def _publish_json_arrow(
    pipeline: IngestPipeline,
    path: OpenedFile,
    topic: str,
    batch_size: int,
    resume: _Resume,
) -> bool:
    """JSON lines read by Arrow into the columnar path (``arrowread.json_batch``); lines it
    cannot vouch for go through the per-record path as ``json_line_record`` makes them. False
    when the topic's schema has no Arrow layout (``_json_layout``)."""
    from ingest.arrowread import json_batch
    from ingest.columnar import ingest_arrow

    lay = _json_layout(pipeline, topic)
    if lay is None:
        return False
    max_bytes = pipeline.max_record_bytes

    def parse(lines: Lines) -> tuple[pa.RecordBatch, Bools]:
        return json_batch(lines, lay, max_bytes)

    blocks = _jsonl_blocks(path, batch_size, max_bytes)
    for lines, skipped, (rb, force) in _ahead(resume.cuts(blocks), parse, "jsonl" in READ_AHEAD):
        resume.take(lines, skipped)
        if lines is None:
            continue

        def originals(at: Sequence[int], lines: Lines = lines) -> list[RawRecord]:
            return [json_line_record(lines.line(i), lines.number(i), max_bytes) for i in at]

        result = ingest_arrow(
            pipeline, topic, rb, originals=originals, force=force, **resume.commit()
        )
        resume.add(len(lines), result)
    return True


# The formats whose batches are read and parsed one batch ahead in a thread of their own
# (``_ahead``); the others are read in turn in the caller's thread. JSON lines only: its parse
# is a third of its CPU and mostly outside the GIL (the caller's thread did 1.50x the events per
# CPU-s, at 0.99x for the process, same-run medians); CSV's parse is a sixth of its CPU, and
# reading it ahead cost 8% more CPU per event for 1.15x in the caller's thread.
READ_AHEAD: frozenset[str] = frozenset({"jsonl"})
_END = object()
_NO_BATCH: Any = (None, None)  # what ``parse`` gives for the closing ``(None, skipped)`` pair


def _ahead(
    pairs: Iterator[tuple[Lines | None, int]], parse: Callable[[Lines], Any], threaded: bool
) -> Iterator[tuple[Any, int, Any]]:
    """``(batch, skipped, parse(batch))`` for each pair of ``_Resume.cuts``, in order, the next
    batch read from the file and parsed in a worker thread while the caller ingests this one.

    Why: Arrow's readers and numpy release the GIL, so on two cores the next batch's read and
    parse (a third of a JSON lines file's CPU) overlaps this batch's commit instead of adding to
    it. Nothing is reordered or shared: the worker only reads the file and builds the batch's
    Arrow columns, always one batch ahead at most (memory: two batches); the caller takes them
    in file order and does every commit, count and position itself. An error reading or parsing
    a batch is raised to the caller when it reaches that batch, after the batches before it were
    ingested, as without the thread. When the caller stops early (an error ingesting), the
    worker's batch in flight is finished and dropped and the file's reader closed. Not
    ``threaded``: each batch is read and parsed in the caller's thread when it is reached."""

    def step() -> Any:
        for batch, skipped in pairs:
            return batch, skipped, _NO_BATCH if batch is None else parse(batch)
        return _END

    if not threaded:
        while (got := step()) is not _END:
            yield got
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="hub-file-read")
    try:
        pending = pool.submit(step)
        while (got := pending.result()) is not _END:
            pending = pool.submit(step)
            yield got
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(pairs, "close", None)
        if close is not None:  # the reader's file, in this thread once the worker is done
            close()


def iter_bytes_lines(data: bytes) -> Iterator[bytes]:
    """Lines of an in-memory NDJSON body (used by the HTTP route)."""
    yield from io.BytesIO(data)


def watch_once(
    pipeline: IngestPipeline,
    folder: Path,
    topic: str,
    batch_size: int = 10_000,
    *,
    producer: str | None = None,
    tenant: str = "default",
    settle_s: float = 0.0,
) -> list[tuple[str, str]]:
    """Publish every file in ``folder`` (not its ``done/``/``failed/``), then move it there;
    each publish is one lineage run of ``ingest.watch.<topic>``, its records stamped with
    ``producer`` and ``tenant`` (the watching key's, as for ``publish_file``). A symbolic link
    is moved to ``failed/`` unread: whoever may drop files must not make the hub read another
    file. A file swapped for a link after this check is refused when opened (``publish_file``
    does not follow links) and moved to ``failed/`` as well.

    ``done/`` and ``failed/`` MUST be real folders: a link there is refused (``NotARegularFile``)
    before any file is read, and moves go through the folders' descriptors (``os.replace`` with
    ``src_dir_fd``/``dst_dir_fd``), so neither a link put there later nor a folder or link under
    the file's name in ``done/`` redirects a move.

    A crash between the last commit and the move leaves the file in place; the next pass finds
    its source ``done`` and only moves it.

    A file modified less than ``settle_s`` seconds ago is left for a later pass (its writer may
    not be done: the bytes written after the read would go on into ``done/``, never ingested),
    and a file whose size or modification time changed while it was read is moved to
    ``failed/`` naming that, never to ``done/``.
    """
    folder.mkdir(parents=True, exist_ok=True)  # as before: the watcher may create it
    here = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        done, failed = open_dir(here, "done"), None
        try:
            failed = open_dir(here, "failed")
            who = (producer, tenant)
            return _watch_pass(
                pipeline, folder, here, done, failed, topic, batch_size, who, settle_s
            )
        finally:
            os.close(done)
            if failed is not None:
                os.close(failed)
    finally:
        os.close(here)


def _move(here: int, name: str, into: int, label: str) -> None:
    """Move ``name`` of the watched folder into the open folder ``into`` (``done``/``failed``).

    ``os.replace`` renames the entry itself (a link stays a link, its target is not touched);
    a folder already holding the name there is refused by the kernel, not entered."""
    try:
        os.replace(name, name, src_dir_fd=here, dst_dir_fd=into)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot move {name!r} into {label}/ ({exc.strerror}): remove what holds that name "
            f"in {label}/."
        ) from exc


def _watch_pass(
    pipeline: IngestPipeline,
    folder: Path,
    here: int,
    done: int,
    failed: int,
    topic: str,
    batch_size: int,
    who: tuple[str | None, str],
    settle_s: float = 0.0,
) -> list[tuple[str, str]]:
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        before = path.lstat()
        age = time.time() - before.st_mtime
        if settle_s > 0 and age < settle_s and not path.is_symlink():
            out.append(
                (
                    path.name,
                    f"skipped: still being written (modified {max(age, 0):.1f} s ago); taken "
                    f"once left unchanged for {settle_s:g} s",
                )
            )
            continue
        if path.is_symlink():  # would read any file the hub can read into the topic
            _move(here, path.name, failed, "failed")
            out.append(
                (
                    path.name,
                    "failed: it is a symbolic link, which the watched folder does not follow: "
                    "drop the file itself",
                )
            )
            continue
        try:
            res = publish_file(
                pipeline,
                path,
                topic,
                "auto",
                batch_size,
                producer=who[0],
                tenant=who[1],
                job=f"ingest.watch.{topic}",
            )
        except InvalidInput as exc:
            _move(here, path.name, failed, "failed")
            out.append((path.name, f"failed: {exc.message}"))
            continue
        after = os.stat(path.name, dir_fd=here, follow_symlinks=False)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            _move(here, path.name, failed, "failed")
            r = res.result
            out.append(
                (
                    path.name,
                    f"failed: it changed while it was read ({before.st_size} -> "
                    f"{after.st_size} bytes); {r.accepted} records of what was read are "
                    "published: write files elsewhere (or as .name) and move them in when "
                    "complete",
                )
            )
            continue
        _move(here, path.name, done, "done")
        r = res.result
        if res.already_done:
            out.append((path.name, "already ingested"))
        else:
            out.append(
                (
                    path.name,
                    f"accepted={r.accepted} rejected={r.rejected} duplicates={r.duplicates}",
                )
            )
    return out
