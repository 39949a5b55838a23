"""Analytics views from Flink into the hub's ClickHouse-SQL store (chDB embedded, ClickHouse).

There is no Flink 2.x ClickHouse sink, so a Flink job writes each analytics table's partial rows
(one per view key and source partition, a running total: ``projections.flink.compile``) to a
*result topic* ``flink.<table>`` with the ``upsert-kafka`` connector (key: the partial row's key,
JSON; value: the row, JSON, decimals as plain numbers), and ``ResultLoader`` folds the topics
into the analytics ``ViewStore`` under the target ``Target(<projection>, "flink")``, whose read
views merge the partial rows exactly as the embedded runner's do (``adapters.clickhouse_views``):
the digests compare byte for byte.

Why a topic and a loader rather than a sink of our own inside Flink: the hub's store is chDB
inside the hub's process (one process may open it), so only the hub can write it; a result topic
is replayable (the loader can rebuild the views from it at any time), and the same loader works
against a ClickHouse server.

``load(projection, tables)``, per call:
  1. read each result topic up to its end offsets; the newest value per key wins, a tombstone
     removes the key (compaction semantics, done here);
  2. convert the partial rows to the store's physical columns (aggregate: source range columns;
     entity: ``src_offsets`` JSON);
  3. write them into ``Target(projection, "flink_next")`` with the result topics' end offsets as
     its positions (one commit point, the store's write protocol);
  4. swap it in as ``Target(projection, "flink")``: readers see the old or the new views, never
     half of a load.
A full reload per call keeps the loader stateless and exactly as correct as the topic; its cost
grows with the view (rows, not events): fine for the bounded runs and backfills it serves now; a
continuous loader would apply only the keys changed since its positions (not built).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from core.ports.eventlog import EventLog
from core.ports.views import Checkpoint, Position, Target, ViewStore
from core.projection import Projection, Row, Table
from projections.digest import digest

RESULT_PREFIX = "flink."
LIVE, NEXT = "flink", "flink_next"


def result_topic(t: Table) -> str:
    """The topic (without the hub's prefix) a Flink job writes ``t``'s partial rows to."""
    return f"{RESULT_PREFIX}{t.name}"


class ResultLoader:
    def __init__(self, log: EventLog, store: ViewStore, batch: int = 5000) -> None:
        self.log = log
        self.store = store
        self.batch = batch

    def ensure_topics(self, tables: Sequence[Table]) -> None:
        """Create the result topics before a job writes them (the broker does not auto-create
        topics). One partition: the loader reads each topic whole."""
        for t in tables:
            self.log.create_topic(result_topic(t), 1)

    def _latest(self, t: Table) -> tuple[list[dict[str, Any]], dict[tuple[str, int], Position]]:
        """Step 1: the newest partial row per key, and the end offsets read up to."""
        topic = result_topic(t)
        latest: dict[bytes | None, dict[str, Any] | None] = {}
        positions = {}
        for partition, end in sorted(self.log.end_offsets(topic).items()):
            offset = self.log.beginning_offsets(topic).get(partition, 0)
            while offset < end:
                records = self.log.read(topic, partition, offset, self.batch)
                if not records:
                    break
                for r in records:
                    latest[r.key] = (
                        None if r.value is None else json.loads(r.value, parse_float=Decimal)
                    )
                offset = records[-1].offset + 1
            positions[(topic, partition)] = Position(end)
        return [v for v in latest.values() if v is not None], positions

    def load(self, p: Projection, tables: Sequence[Table]) -> dict[str, int]:
        """Steps 1-4 of the module docstring; the rows loaded per table."""
        live, nxt = Target(p.name, LIVE), Target(p.name, NEXT)
        self.store.ensure(live, tables)
        self.store.drop(nxt, tables)
        self.store.ensure(nxt, tables)
        rows: dict[str, list[Row]] = {}
        positions: dict[tuple[str, int], Position] = {}
        for t in tables:
            partials, at = self._latest(t)
            positions |= at
            rows[t.name] = [_physical(t, r) for r in partials]  # 2.
        self.store.write(nxt, tables, rows, Checkpoint(1, positions))  # 3.
        self.store.swap(live, nxt, tables)  # 4.
        return {name: len(r) for name, r in rows.items()}

    def rows(self, p: Projection, t: Table) -> list[Row]:
        return self.store.rows(Target(p.name, LIVE), t)

    def digest(self, p: Projection, t: Table) -> dict[str, Any]:
        d, n = digest(t, self.rows(p, t))
        return {"digest": d, "rows": n}


def _physical(t: Table, partial: dict[str, Any]) -> Row:
    """A partial row from a result topic in the store's row form (``rows_to_arrow`` input)."""
    row: Row = {c.name: partial.get(c.name) for c in t.columns if c.agg != "derived"}
    for c in t.columns:
        v = row.get(c.name)
        if c.type == "decimal" and v is not None:
            row[c.name] = Decimal(v).quantize(Decimal(1).scaleb(-(c.scale or 0)))
    if t.kind == "aggregate":
        for name in ("src_topic", "src_partition", "src_first", "src_last"):
            row[name] = partial[name]
    else:
        row["src_offsets"] = [
            [
                partial["src_topic"],
                partial["src_partition"],
                partial["src_first"],
                partial["src_last"],
                partial["src_events"],
            ]
        ]
    return row
