"""The hub's own JVM functions for the Flink jobs: Java sources in ``projections/flink/java``,
compiled by ``infra/flink.sh setup`` into a jar in the connector jars' cache (never committed).

Why Java at all: a Python function in a source table's computed rowtime column stops Flink pushing
the watermark into the Kafka source (FLINK-22984: the planner's rule skips computed columns with a
Python call), so the watermark would be per subtask instead of per partition, and the engines
would disagree (``projections.pattern_state``, contract 1). ``hub_tenant_ok`` checks a record's
tenant MAC there (``projections.flink.cep``).

The jar's name carries a digest of the sources (``jar_name``; ``infra/flink.sh`` computes the same
one), so a checkout never runs another checkout's build from the shared cache, and a changed
source is a missing jar (``hub.flink`` says to run the setup) rather than a stale one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from core.errors import ConfigError

SOURCES: Final = Path(__file__).with_name("java")
TENANT_OK: Final = "hub_tenant_ok"  # the pattern jobs' function (its SQL name)
TENANT_OK_CLASS: Final = "hub.flink.TenantOk"


def sources() -> list[Path]:
    """The Java sources, in the byte order of their names (``LC_ALL=C sort`` in the script)."""
    return sorted(SOURCES.glob("*.java"), key=lambda p: p.name.encode())


def jar_name() -> str:
    """``hub-flink-functions-<first 16 hex of the SHA-256 of the sources, concatenated>.jar``."""
    found = sources()
    if not found:
        raise ConfigError(
            f"The Java sources of the hub's Flink functions are not in {SOURCES}: install the hub "
            "with its package data (pip install of the repository, or an editable install)."
        )
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in found)).hexdigest()
    return f"hub-flink-functions-{digest[:16]}.jar"
