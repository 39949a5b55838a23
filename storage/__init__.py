"""Storage tiers and recovery: backups and their restore, the erasure journal, the cold tier
of the event log, the lake (Iceberg). Imports ``core`` and ``audit`` only: callers pass ports."""
