"""The events of a JSON batch body ``{"events": [...]}`` as one text per event, without parsing.

``events(body)`` cuts the ``events`` array into its elements so that Arrow's JSON reader can
read them as lines (``arrowread.json_batch``). Two ways, both at C speed:
- a body without tab, CR or LF inside the array (what ``json.dumps`` writes) is split at every
  ``}, {`` (or every ``},{`` when there is no ``}, {``), keeping the braces with the elements;
- any other body is scanned with numpy: strings told apart by their unescaped quotes, nesting by
  a running count of brackets outside strings, the elements cut at the commas at the array's
  level, and tab, CR and LF outside strings turned into spaces (which changes neither an
  element's meaning nor its validity, and keeps it on one line).

Only the plain shape is split: the body is exactly ``{"events": [e, e, ...]}`` with JSON
whitespace around the tokens and at least one element. Any other body (another member, an
escaped name, an empty array, a byte-order mark) gives None: the caller parses it as a whole.

The split is not a validation, and it may be wrong (a ``}, {`` inside a string, a backslash
outside one): the caller MUST have every text read by a JSON parser (Arrow, or Python's for the
ones Arrow refuses) and parse the whole body itself when one is refused. A text that is one
valid JSON value holds no comma at its top level, so when every text is one, the texts are
exactly the elements and the body is valid JSON: what lies between them is a comma and spaces.

``event_lines(body)`` gives the same texts as a ``Lines`` (what ``Lines.texts(events(body))``
gives, byte for byte): for a ``json.dumps`` body the rewritten array (each separator made a line
end) is already the ``Lines``' data, so no ``bytes`` object per event is made and joined again.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from ingest.lines import Lines, line_starts

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

_HEAD = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"events"[ \t\n\r]*:[ \t\n\r]*\[')
_TAIL = re.compile(rb"\][ \t\n\r]*\}[ \t\n\r]*\Z")
_WS = b" \t\n\r"
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[0x5B, 0x7B]] = 1  # [ {
_OPEN[[0x5D, 0x7D]] = -1  # ] }
_MARK = np.zeros(256, dtype=np.uint8)
_MARK[[0x5B, 0x7B, 0x5D, 0x7D, 0x2C]] = 1  # brackets and commas
_MARK[[0x09, 0x0A, 0x0D]] = 2  # whitespace that would break a line
_MARKS = bytes(x or (3 if i == 0x22 else 0) for i, x in enumerate(_MARK))  # quotes too


def events(body: bytes) -> list[bytes] | None:
    """The element texts of ``body``'s ``events`` array, in order, or None (see the module
    docstring)."""
    head = _HEAD.match(body)
    tail = _TAIL.search(body, max(0, len(body) - 4096))
    if head is None or tail is None or tail.start() < head.end():
        return None
    start, end = head.end(), tail.start()  # the array's inside: body[start:end]
    inner = body[start:end]
    if b"\t" in inner or b"\n" in inner or b"\r" in inner:
        return _scanned(body, start, end)
    # The separator ``json.dumps`` writes (``, `` or ``,``); any other stays inside a text.
    sep = b"}, {" if b"}, {" in inner else b"},{"
    out = inner.replace(sep, b"}\n{").split(b"\n")
    out[0], out[-1] = out[0].lstrip(b" "), out[-1].rstrip(b" ")
    return out if out[0] and out[-1] else None  # ``[]``, ``[ ]``: no event


def event_lines(body: bytes) -> Lines | None:
    """``events(body)`` as ``Lines`` (numbered from 1), or None where ``events`` gives None."""
    head = _HEAD.match(body)
    tail = _TAIL.search(body, max(0, len(body) - 4096))
    if head is None or tail is None or tail.start() < head.end():
        return None
    start, end = head.end(), tail.start()
    inner = body[start:end]
    if b"\t" in inner or b"\n" in inner or b"\r" in inner:
        texts = _scanned(body, start, end)
        return None if texts is None else Lines.texts(texts)
    sep = b"}, {" if b"}, {" in inner else b"},{"
    # ``events`` strips the first text's leading and the last one's trailing spaces; with a
    # separator in the array, the first text ends with ``}`` and the last starts with ``{``,
    # so neither is empty, and the spaces around the array are just those. A lone text keeps
    # its leading spaces there (its ``lstrip`` is overwritten by the ``rstrip``): so here.
    inner = inner.strip(b" ") if sep in inner else inner.rstrip(b" ")
    if not inner:
        return None  # ``[]``, ``[ ]``: no event
    if _native_array_lines is not None:  # one pass (json_array.rs), equal to the two below
        data, at = _native_array_lines(inner, sep)
        starts = np.frombuffer(at, dtype="<i8")
    else:
        data = inner.replace(sep, b"}\n{")
        starts = line_starts(data)
    ends = np.empty(len(starts), dtype=np.int64)
    ends[:-1] = starts[1:] - 1
    ends[-1] = len(data)
    return Lines(data, starts, ends, np.arange(1, len(starts) + 1, dtype=np.int64))


def _load_array_lines() -> Any:
    try:
        import hub_native
    except ImportError:  # not built: ``bytes.replace`` and the line starts
        return None
    return getattr(hub_native, "json_array_lines", None)


_native_array_lines = _load_array_lines()


def _scanned(body: bytes, start: int, end: int) -> list[bytes] | None:
    """The elements of ``body[start:end]`` found by scanning its strings and brackets."""
    # Every quote, bracket, comma, tab, CR and LF of the array, in one pass at C speed.
    found = np.flatnonzero(np.frombuffer(body[start:end].translate(_MARKS), np.uint8)) + start
    a = np.frombuffer(body, dtype=np.uint8)
    kind = a[found]
    quote = kind == 0x22
    if b'\\"' in body:  # drop the escaped quotes (an odd run of backslashes before them)
        quote[quote] = ~_escaped(a, found[quote])
    # Outside strings: an even number of (unescaped) quotes before, the mark not a quote.
    outside = (np.cumsum(quote, dtype=np.int32) % 2 == 0) & (kind != 0x22)
    if quote.sum() % 2:
        return None  # the closing ``]`` is inside a string
    found, kind = found[outside], kind[outside]
    is_ws = _MARK[kind] == 2
    ws = found[is_ws]
    if len(ws):
        found, kind = found[~is_ws], kind[~is_ws]
    depth = np.cumsum(_OPEN[kind], dtype=np.int32) + 2  # after each mark, inside the array
    commas = kind == 0x2C
    if len(depth) and (int(depth[~commas].min(initial=2)) < 2 or depth[-1] != 2):
        return None  # the array closes early, or an element is left open
    cuts = found[commas & (depth == 2)].tolist()
    text = body if not len(ws) else _spaced(a, ws)
    out: list[bytes] = []
    for s, e in zip([start - 1, *cuts], [*cuts, end], strict=True):
        element = text[s + 1 : e].strip(_WS)
        if not element:
            return None  # ``[,`` ``,,`` ``,]`` or ``[]``: not JSON, or no event
        out.append(element)
    return out


def _escaped(a: U8, quotes: I64) -> npt.NDArray[np.bool_]:
    """Which of the quotes at ``quotes`` an odd run of backslashes escapes."""
    out = np.zeros(len(quotes), dtype=np.bool_)
    bpos = np.flatnonzero(a == 0x5C)
    after = np.flatnonzero((quotes > 0) & (a[np.maximum(quotes - 1, 0)] == 0x5C))
    if not len(bpos) or not len(after):
        return out
    first = np.concatenate([[True], bpos[1:] != bpos[:-1] + 1])
    run_start = bpos[first]
    run_end = np.concatenate([bpos[np.flatnonzero(first)[1:] - 1], bpos[-1:]])
    k = np.searchsorted(run_end, quotes[after] - 1)
    out[after] = (run_end[k] - run_start[k]) % 2 == 0  # run length odd
    return out


def _spaced(a: U8, ws: I64) -> bytes:
    """The body up to ``end`` with the tab, CR and LF at ``ws`` (outside strings) as spaces;
    inside strings they stay, and make the element invalid as they make the body invalid."""
    b = a.copy()
    b[ws] = 0x20
    return b.tobytes()
