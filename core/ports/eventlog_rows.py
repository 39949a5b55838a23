"""A batch of ``Record``s built from columns in one call: the frozen dataclass's ``__init__``
(one ``object.__setattr__`` per field, from Python) cost as much per record as librdkafka's
produce on the publish path. ``hub_native.frozen_rows`` (native/src/metadata.rs) sets the same
slots the same way; ``records_py`` is its reference (``tests/unit/test_native_metadata.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from core.ports.eventlog import Headers, Record

try:  # built by `make setup`; absent: records_py runs
    from hub_native import frozen_rows as _frozen_rows
except ImportError:  # pragma: no cover
    _frozen_rows = None

_FIELDS = ("value", "key", "headers", "timestamp_ms", "partition")


def records(
    values: list[bytes | None], keys: list[bytes | None], headers: list[Headers]
) -> list[Record]:
    """``[Record(v, k, h) for v, k, h in zip(values, keys, headers)]`` (no timestamp, no
    partition: the log chooses). The three lists MUST be as long as each other."""
    if _frozen_rows is not None and len(values) == len(keys) == len(headers) and values:
        made = _frozen_rows(Record, _FIELDS, (values, keys, headers, None, None))
        if made is not None:
            return made  # type: ignore[no-any-return]
    return records_py(values, keys, headers)


def records_py(
    values: Sequence[bytes | None], keys: Sequence[bytes | None], headers: Sequence[Headers]
) -> list[Record]:
    """The reference of ``records``."""
    return [Record(v, k, h) for v, k, h in zip(values, keys, headers, strict=True)]
