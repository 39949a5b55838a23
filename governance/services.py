"""What governance's operations on the whole hub (retention runs, the catalog, erasure) need
from the services the composition root built: named ports and lower services, never the
application object itself."""

from __future__ import annotations

from typing import Any, Protocol

from core.ports.eventlog import EventLog
from core.ports.keystore import KeyStore
from ingest.publish import EventReader, Publisher
from ledger.service import Ledger
from registry.service import SchemaRegistry


class Services(Protocol):
    """The ports and services governance reads and writes through (``hub.bootstrap.Hub`` has
    them all)."""

    @property
    def log(self) -> EventLog: ...

    @property
    def registry(self) -> SchemaRegistry: ...

    @property
    def reader(self) -> EventReader: ...

    @property
    def publisher(self) -> Publisher: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def keystore(self) -> KeyStore: ...

    @property
    def projections(self) -> Any: ...  # projections.service.ProjectionService, once built
