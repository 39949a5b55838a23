"""The dataset catalog: every topic, projection and export with owner, schemas, classification,
retention and legal hold, computed from the log, the registry and ``hub.governance``.

- owner: the topic config ``hub.owner``, else ``DEFAULT_OWNER``;
- schemas: the registry subjects of the topic (TopicNameStrategy ``<topic>-value``, the event
  types of a RecordNameStrategy catalog topic, and ``<topic>-<record>`` subjects), each with its
  versions; a projection lists its input topics' subjects;
- classification: the highest field ``classification`` over every registered version (a past
  version's PII is still in the log); a projection takes the highest of its inputs;
- tables: a projection's views, each with its description, key and columns (name, type,
  description), from ``projections.catalog.describe``, and the named queries reading them
  (``mark_to_market``);
- exports: the datasets in the ``hub://exports`` namespace that a COMPLETE lineage event
  names as an output (a failed export wrote nothing), with the inputs of those runs; classified
  by the highest of their input topics and projections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core import lineage
from core.errors import HubError
from core.events import STRATEGY_CONFIG, classification_of
from core.ports.policy import HUB_TENANT
from domain.catalog import TOPICS, subject_for
from domain.envelope import CLASSIFICATIONS

if TYPE_CHECKING:
    from core.ports.eventlog import EventLog
    from governance.retention import Governance
    from registry.service import SchemaRegistry

DEFAULT_OWNER = "data-platform"
OWNER_CONFIG = "hub.owner"
Kind = Literal["topic", "projection", "export"]


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    subject: str
    versions: tuple[int, ...]
    classification: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "versions": list(self.versions),
            "classification": self.classification,
        }


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    kind: Kind
    owner: str
    classification: str
    schemas: tuple[SchemaInfo, ...] = ()
    retention: dict[str, Any] | None = None
    legal_hold: bool = False
    description: str = ""
    inputs: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        namespace = {"topic": lineage.TOPICS_NS, "projection": lineage.PROJECTIONS_NS}
        return f"{namespace.get(self.kind, lineage.EXPORTS_NS)}/{self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "owner": self.owner,
            "classification": self.classification,
            "schemas": [s.as_dict() for s in self.schemas],
            "retention": self.retention,
            "legal_hold": self.legal_hold,
            "description": self.description,
            "inputs": list(self.inputs),
            **self.extra,
        }


def _highest(levels: list[str]) -> str:
    ranked = [c for c in levels if c in CLASSIFICATIONS] or ["internal"]
    return max(ranked, key=CLASSIFICATIONS.index)


def _schema_info(registry: SchemaRegistry, subject: str) -> SchemaInfo | None:
    try:
        versions = registry.versions(subject)
    except HubError:
        return None
    if not versions:
        return None
    levels = []
    for v in versions:
        sv = registry.get_version(subject, v)
        levels.append(classification_of(registry.parsed(sv.id)))
    return SchemaInfo(subject, tuple(versions), _highest(levels))


def _topic_subjects(registry: SchemaRegistry, topic: str, strategy: str) -> list[str]:
    specs = {s.name: s for s in TOPICS}
    subjects = [subject_for(topic, "", "topic")]
    spec = specs.get(topic)
    if spec is not None and strategy != "topic":
        subjects += [subject_for(topic, t, spec.subject_strategy) for t in spec.event_types]
    subjects += registry.subjects(prefix=f"{topic}-")
    return list(dict.fromkeys(subjects))


class Catalog:
    """The dataset catalog of one hub (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        governance: Governance,
        lineage_log: lineage.LineageLog,
    ) -> None:
        self._log = log
        self._registry = registry
        self._governance = governance
        self._lineage = lineage_log

    def datasets(self, tenant_scope: str | None = None) -> list[Dataset]:
        """Every dataset, topics first, then projections and exports, each sorted by name. For
        a reader limited to ``tenant_scope`` (None: every tenant), ``legal_hold`` counts that
        tenant's holds only and the exports are its own runs' (as ``LineageLog.graph`` shows
        them): another tenant's hold names an investigation, its exports its files."""
        return _datasets(self._log, self._registry, self._governance, self._lineage, tenant_scope)


def _datasets(
    log: EventLog,
    registry: SchemaRegistry,
    governance: Governance,
    lineage_log: lineage.LineageLog,
    tenant_scope: str | None = None,
) -> list[Dataset]:
    state = governance.state()
    held = {
        h.scope for h in state.holds.values() if tenant_scope is None or h.tenant == tenant_scope
    }
    descriptions = {s.name: s.description for s in TOPICS}
    out: list[Dataset] = []
    topic_classes: dict[str, str] = {}
    projection_classes: dict[str, str] = {}
    topic_schemas: dict[str, tuple[SchemaInfo, ...]] = {}
    for info in log.topics():
        if info.name.startswith("_"):
            continue
        strategy = info.config.get(STRATEGY_CONFIG, "topic")
        subjects = _topic_subjects(registry, info.name, strategy)
        if tenant_scope is not None:  # another tenant's subject reads as absent (s19)
            subjects = [
                s for s in subjects if registry.owner(s) in (None, HUB_TENANT, tenant_scope)
            ]
        found = [_schema_info(registry, s) for s in subjects]
        schemas = tuple(s for s in found if s is not None)
        cls = _highest([s.classification for s in schemas])
        topic_classes[info.name], topic_schemas[info.name] = cls, schemas
        policy = state.policies.get(f"topic:{info.name}")
        out.append(
            Dataset(
                info.name,
                "topic",
                info.config.get(OWNER_CONFIG, DEFAULT_OWNER),
                cls,
                schemas,
                None if policy is None else policy.as_dict(),
                f"topic:{info.name}" in held,
                descriptions.get(info.name, ""),
                extra={"partitions": info.partitions},
            )
        )
    from projections.catalog import PROJECTIONS, describe, named_queries

    for p in PROJECTIONS:
        policy = state.policies.get(f"projection:{p.name}")
        pii = any(c.pii for t in p.tables for c in t.columns)
        cls = _highest([topic_classes.get(t, "internal") for t in p.topics] + (["pii"] * pii))
        projection_classes[p.name] = cls
        out.append(
            Dataset(
                p.name,
                "projection",
                DEFAULT_OWNER,
                cls,
                tuple(s for t in p.topics for s in topic_schemas.get(t, ())),
                None if policy is None else policy.as_dict(),
                f"projection:{p.name}" in held,
                p.doc,
                tuple(f"{lineage.TOPICS_NS}/{t}" for t in p.topics),
                extra={
                    "store": p.store,
                    "tables": describe(p),
                    "queries": named_queries(p.name),
                },
            )
        )
    exports: dict[str, set[str]] = {}
    for ev in lineage_log.events(tenant_scope=tenant_scope):
        if ev["event_type"] != "COMPLETE":
            continue
        for ds in ev["outputs"]:
            ns, name = lineage.split_id(ds)
            if ns == lineage.EXPORTS_NS:
                exports.setdefault(name, set()).update(ev["inputs"])
    classes = {lineage.TOPICS_NS: topic_classes, lineage.PROJECTIONS_NS: projection_classes}
    for name, inputs in sorted(exports.items()):
        levels = []
        for i in inputs:
            ns, source = lineage.split_id(i)
            if ns in classes:
                levels.append(classes[ns].get(source, "internal"))
        out.append(
            Dataset(name, "export", DEFAULT_OWNER, _highest(levels), inputs=tuple(sorted(inputs)))
        )
    return out
