"""Folding a topic into memory: read from a remembered offset to the end and apply each record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from core.errors import TopicNotFound
from core.ports.eventlog import EventLog


class DecodingReader(Protocol):
    """Reads decoded records (``ingest.publish.EventReader`` is one)."""

    def read(
        self, topic: str, partition: int, offset: int, limit: int = ...
    ) -> list[dict[str, Any]]: ...


def fold_new(
    reader: DecodingReader,
    log: EventLog,
    topic: str,
    offset: int,
    apply: Callable[[dict[str, Any]], None],
    batch: int = 500,
) -> tuple[int, bool]:
    """Decode and ``apply`` every record of a one-partition topic from ``offset`` to its end.

    Returns the next offset and whether anything was applied; a topic that does not exist yet
    has nothing to fold. The in-memory folds of ``hub.policies`` and ``hub.config-changes`` use it.
    """
    try:
        end = log.end_offsets(topic).get(0, 0)
    except TopicNotFound:
        return offset, False
    moved = False
    while offset < end:
        records = reader.read(topic, 0, offset, batch)
        if not records:
            break
        for rec in records:
            apply(rec)
            offset = rec["offset"] + 1
        moved = True
    return offset, moved
