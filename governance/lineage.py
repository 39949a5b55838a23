"""Lineage: OpenLineage run events of every hub job, stored as events on ``hub.lineage``.

Each event (``domain/schemas/LineageEventRecorded.avsc``) carries the whole OpenLineage
``RunEvent`` as JSON plus the fields the graph needs (run id, event type, job, input and output
dataset ids), so the graph folds without parsing JSON. Dataset ids are ``<namespace>/<name>``
with the namespaces ``hub://topics``, ``hub://projections`` and ``hub://exports``; jobs live in
the ``hub`` namespace.

Wiring a job::

    with lineage.run(hub, "ingest.files", inputs=[...], outputs=[topic_dataset("trades")]):
        ...  # START before, COMPLETE after, FAIL (with the error message) if it raises

``run`` and ``emit`` take the hub, or anything with a ``publisher`` attribute, or a Publisher.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from hub.errors import TopicNotFound
from hub.events import OutgoingEvent, Publisher

LINEAGE_TOPIC = "hub.lineage"
JOB_NAMESPACE = "hub"
TOPICS_NS = "hub://topics"
PROJECTIONS_NS = "hub://projections"
EXPORTS_NS = "hub://exports"
PRODUCER = "https://github.com/hub/hub/tree/main/governance/lineage.py"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ERROR_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


@dataclass(frozen=True, slots=True)
class Dataset:
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def as_openlineage(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "facets": {}}


def topic_dataset(name: str) -> Dataset:
    return Dataset(TOPICS_NS, name)


def projection_dataset(name: str) -> Dataset:
    return Dataset(PROJECTIONS_NS, name)


def export_dataset(name: str) -> Dataset:
    return Dataset(EXPORTS_NS, name)


class _HasPublisher(Protocol):
    @property
    def publisher(self) -> Publisher: ...


def _publisher(target: Publisher | _HasPublisher) -> Publisher:
    return target if isinstance(target, Publisher) else target.publisher


def emit(
    target: Publisher | _HasPublisher,
    event_type: EventType,
    job: str,
    run_id: str,
    inputs: Sequence[Dataset] = (),
    outputs: Sequence[Dataset] = (),
    *,
    error: BaseException | None = None,
    producer: str = "hub",
) -> dict[str, Any]:
    """Publish one OpenLineage run event on ``hub.lineage``; returns the RunEvent document."""
    now = datetime.now(UTC)
    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = {
            "_producer": PRODUCER,
            "_schemaURL": ERROR_FACET_URL,
            "message": f"{type(error).__name__}: {error}",
            "programmingLanguage": "python",
        }
    doc: dict[str, Any] = {
        "eventType": event_type,
        "eventTime": now.isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": JOB_NAMESPACE, "name": job, "facets": {}},
        "inputs": [d.as_openlineage() for d in inputs],
        "outputs": [d.as_openlineage() for d in outputs],
    }
    value = {
        "run_id": run_id,
        "event_type": event_type,
        "event_time": now.isoformat(),
        "job_namespace": JOB_NAMESPACE,
        "job_name": job,
        "inputs": [d.id for d in inputs],
        "outputs": [d.id for d in outputs],
        "openlineage": json.dumps(doc, sort_keys=True),
    }
    _publisher(target).publish(
        LINEAGE_TOPIC, [OutgoingEvent(value=value, key=job)], producer=producer
    )
    return doc


@contextmanager
def run(
    target: Publisher | _HasPublisher,
    job: str,
    inputs: Sequence[Dataset] = (),
    outputs: Sequence[Dataset] = (),
    *,
    producer: str = "hub",
) -> Iterator[str]:
    """START on entry, COMPLETE on normal exit, FAIL (then re-raise) on an exception; yields
    the run id."""
    run_id = str(uuid.uuid4())
    emit(target, "START", job, run_id, inputs, outputs, producer=producer)
    try:
        yield run_id
    except BaseException as exc:
        emit(target, "FAIL", job, run_id, inputs, outputs, error=exc, producer=producer)
        raise
    emit(target, "COMPLETE", job, run_id, inputs, outputs, producer=producer)


# -- reading --------------------------------------------------------------------------------------
def events(hub: Any, job: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Stored lineage events (indexed fields), oldest first; one job's, or the last ``limit``."""
    out: list[dict[str, Any]] = []
    try:
        ends = hub.log.end_offsets(LINEAGE_TOPIC)
    except TopicNotFound:
        return out
    starts = hub.log.beginning_offsets(LINEAGE_TOPIC)
    for part in sorted(ends):
        for rec in hub.log.scan(LINEAGE_TOPIC, part, starts.get(part, 0)):
            value = hub.reader.decode(rec).get("value")
            if isinstance(value, dict) and (job is None or value.get("job_name") == job):
                out.append(value)
    return out[-limit:] if limit else out


def graph(hub: Any) -> dict[str, Any]:
    """Nodes (datasets and jobs) and edges (dataset -reads-> job, job -writes-> dataset)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    for ev in events(hub):
        job_id = f"job:{ev['job_namespace']}/{ev['job_name']}"
        node = nodes.setdefault(
            job_id,
            {"id": job_id, "kind": "job", "namespace": ev["job_namespace"], "name": ev["job_name"]},
        )
        node["last_run"] = {
            "run_id": ev["run_id"],
            "state": ev["event_type"],
            "at": ev["event_time"],
        }
        for ds, relation in [(d, "reads") for d in ev["inputs"]] + [
            (d, "writes") for d in ev["outputs"]
        ]:
            ns, _, name = ds.rpartition("/")
            nodes.setdefault(
                f"dataset:{ds}", {"id": f"dataset:{ds}", "kind": "dataset", "namespace": ns}
            ).setdefault("name", name)
            if relation == "reads":
                edges.add((f"dataset:{ds}", job_id, "reads"))
            else:
                edges.add((job_id, f"dataset:{ds}", "writes"))
    return {
        "nodes": sorted(nodes.values(), key=lambda n: str(n["id"])),
        "edges": [{"from": a, "to": b, "kind": k} for a, b, k in sorted(edges)],
    }
