"""Input checks every EventLog adapter applies, with the same rules and messages (Kafka's).

Shared so that a bad topic name, offset or record is refused identically by both footprints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter, itemgetter
from typing import cast

from core.errors import InvalidInput
from core.ports.eventlog import Record, duplicate_envelope_error
from domain.envelope import duplicated_envelope_header
from domain.shown import shown

TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
MAX_TIMESTAMP_MS = (1 << 63) - 1


def check_topic_name(name: object) -> str:
    if not isinstance(name, str) or not TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInput(
            f"Topic name {name!r} is invalid: use 1 to 249 characters from a-z, A-Z, 0-9, '.', "
            "'_' and '-' (and not '.' or '..'), e.g. 'payments.v1'.",
            code="invalid_topic_name",
        )
    return name


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"The {what} {shown(value)} is invalid: pass a non-empty string.")
    return value


def check_offset(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise InvalidInput(f"The {what} {shown(value)} is invalid: pass an int >= 0.")
    return value


def record_problem(r: object, i: int, partitions: int, topic: str) -> InvalidInput | None:
    """What is wrong with record ``i`` of a batch for ``topic``, or None when it is valid."""
    where = f"Record {i} of the batch for topic {topic!r}"
    if not isinstance(r, Record):
        return InvalidInput(
            f"{where} is a {type(r).__name__}; build records with "
            "hub.ports.eventlog.Record(value=..., key=...)."
        )
    for name in ("key", "value"):
        v = getattr(r, name)
        if v is not None and type(v) is not bytes:
            return InvalidInput(
                f"{where} has a {name} of type {type(v).__name__}; pass bytes or None "
                "(encode text first, e.g. value.encode())."
            )
    ts = r.timestamp_ms
    if ts is not None and (type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS):
        return InvalidInput(
            f"{where} has timestamp_ms={ts!r}; pass milliseconds since the epoch as an "
            "int >= 0, or None for the append time."
        )
    p = r.partition
    if p is not None and (type(p) is not int or not 0 <= p < partitions):
        return InvalidInput(
            f"{where} asks for partition {p!r}, but topic {topic!r} has partitions "
            f"0..{partitions - 1}; pass one of those or None to partition by key.",
            code="partition_out_of_range",
        )
    if not isinstance(r.headers, (tuple, list)):
        return InvalidInput(
            f"{where} has headers of type {type(r.headers).__name__}; "
            "pass a tuple of (name, value) pairs."
        )
    for j, pair in enumerate(r.headers):
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and type(pair[0]) is str
            and type(pair[1]) is bytes
        ):
            return InvalidInput(
                f"{where} has header {j} = {pair!r}; pass a (str name, bytes value) pair."
            )
    twice = duplicated_envelope_header(tuple(r.headers))
    if twice is not None:
        return duplicate_envelope_error(twice, where)
    return None


_NONE = type(None)
_OPTIONAL_BYTES = frozenset((bytes, _NONE))
_PAIR_TYPES = frozenset((tuple, list))
_KEY, _VALUE, _HEADERS = attrgetter("key"), attrgetter("value"), attrgetter("headers")
_STAMP, _PARTITION = attrgetter("timestamp_ms"), attrgetter("partition")
_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def records_valid(records: Sequence[object], partitions: int, reserved: str = "") -> bool:
    """True when every record of the batch passes ``record_problem`` and has no header called
    ``reserved`` (when given): the whole batch checked at once, in C loops over columns instead
    of a Python call per record.

    False does NOT mean a record is bad: anything this check does not recognise (a subclass of
    ``Record``, of tuple or of bytes, an int-like timestamp) answers False, and the caller then
    checks record by record, which gives the exact error. It never answers True for a batch that
    ``record_problem`` would refuse."""
    if not records:
        return True
    if set(map(type, records)) != {Record}:
        return False
    if not set(map(type, map(_KEY, records))) <= _OPTIONAL_BYTES:
        return False
    if not set(map(type, map(_VALUE, records))) <= _OPTIONAL_BYTES:
        return False
    stamps, parts = list(map(_STAMP, records)), list(map(_PARTITION, records))
    if not _in_range(stamps, MAX_TIMESTAMP_MS + 1) or not _in_range(parts, partitions):
        return False
    headers = list(map(_HEADERS, records))
    if not set(map(type, headers)) <= _PAIR_TYPES:
        return False
    pairs = list(chain.from_iterable(headers))
    if not pairs:
        return True
    if not set(map(type, pairs)) <= _PAIR_TYPES or set(map(len, pairs)) != {2}:
        return False
    names = set(map(_FIRST, pairs))  # every pair has two items (checked above)
    if set(map(type, names)) != {str} or set(map(type, map(_SECOND, pairs))) != {bytes}:
        return False
    return not reserved or reserved not in names


def _in_range(column: Sequence[object], end: int) -> bool:
    """Every entry is None or an int (exactly) in ``[0, end)``."""
    kinds = set(map(type, column))
    if not kinds <= {int, _NONE}:
        return False
    if int not in kinds:
        return True
    present = cast("list[int]", [x for x in column if x is not None])
    return min(present) >= 0 and max(present) < end
