"""The embedded EventLog: one SQLite file, the hub's default footprint.

- ``log``: ``SqliteEventLog``, the adapter (storage, concurrency and durability: its docstring);
- ``batch``: the stored batch format and an append prepared as per-partition batches;
- ``auth``: the MAC chain per partition, the partition seals and topic MACs;
- ``transactions``: ``SqliteTransaction``, one SQLite write transaction;
- ``handoff``: each committed append's stored batches handed on (``on_stored``: the ledger).
"""

from __future__ import annotations

from adapters.sqlite_log.log import SqliteEventLog

__all__ = ["SqliteEventLog"]
