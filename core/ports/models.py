"""ModelRegistry: the port the ML service keeps model versions, aliases and lifecycle through.

Adapters (the ML issue builds them): an embedded registry, later MLflow. A model is named
(``"aml-risk"``); each registration makes a new version, numbered 1, 2, ... per name. An alias
(``"champion"``, ``"challenger"``) points at one version of a name at a time.

Contract
- ``register`` stores the artifact bytes with its metadata and returns the new version; versions
  of a name are dense and never reused; a stored artifact never changes.
- ``set_alias`` moves an alias to an existing version (``ModelNotFound`` otherwise) and returns
  the lifecycle event it caused; ``get_by_alias`` returns the version the alias names now, or
  raises ``ModelNotFound`` naming the name and alias.
- ``events`` lists the lifecycle events (registered, alias set, retired) of a name, oldest
  first; the ML service publishes them on ``hub.models`` so the ledger records them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from core.errors import NotFound

LifecycleKind = Literal["registered", "alias_set", "retired"]


class ModelNotFound(NotFound):
    code = "model_not_found"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    artifact_sha256: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    retired: bool = False


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    kind: LifecycleKind
    name: str
    version: int
    actor: str
    alias: str | None = None
    time_us: int = 0


@runtime_checkable
class ModelRegistry(Protocol):
    def register(
        self, name: str, artifact: bytes, metadata: Mapping[str, Any], *, actor: str
    ) -> ModelVersion:
        """Store a new version of ``name``."""
        ...

    def set_alias(self, name: str, alias: str, version: int, *, actor: str) -> LifecycleEvent:
        """Point ``alias`` of ``name`` at ``version``."""
        ...

    def get_by_alias(self, name: str, alias: str) -> ModelVersion: ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def load_artifact(self, name: str, version: int) -> bytes: ...

    def retire(self, name: str, version: int, *, actor: str) -> LifecycleEvent: ...

    def events(self, name: str) -> Sequence[LifecycleEvent]:
        """Lifecycle events of ``name``, oldest first."""
        ...
