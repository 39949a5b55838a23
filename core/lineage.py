"""Lineage: OpenLineage run events of every hub job, stored as events on ``hub.lineage``.

Each event (``domain/schemas/LineageEventRecorded.avsc``) carries the whole OpenLineage
``RunEvent`` as JSON plus the fields the graph needs (run id, event type, job, input and output
dataset ids), so the graph folds without parsing JSON. Dataset ids are ``<namespace>/<name>``
with the namespaces ``hub://topics``, ``hub://projections``, ``hub://exports`` and
``hub://sources`` (systems outside the hub: files, databases, HTTP APIs; a source's name is a URI
and may itself hold ``/``, so an id splits at the first ``/`` after the namespace's ``://``);
jobs live in the ``hub`` namespace.

Wiring a job::

    with lineage.run(publisher, "ingest.files", inputs=[...], outputs=[topic_dataset("trades")]):
        ...  # START before, COMPLETE after, FAIL (with the error message) if it raises

``tracked`` is the same with a ``Run`` handle, for a job that learns a dataset while it runs (the
quarantine when a record is rejected, an export named by its content): the COMPLETE or FAIL
event names it. ``run``, ``tracked`` and ``emit`` take a Publisher, or anything with a
``publisher`` attribute (the ingest pipeline). ``LineageLog`` reads the stored events back (the
graph, one job's runs): the composition root builds one, ``hub.lineage``.

Contract: a START that cannot be recorded fails the job before it begins (it raises); a job that
raises gets a FAIL event and its own exception is re-raised, also when recording the FAIL fails
too (that failure is added to it as a note). A COMPLETE that cannot be recorded raises after the
job's writes are committed: nothing is lost, the job reports an error.

The jobs (``<job>``: inputs -> outputs, one run per ...):

- ``ingest.files.<topic>`` (``hub publish``, ``publish_file``): ``hub://sources/file:///<path>``
  -> the topic; per file. ``ingest.watch.<topic>``: the same per file a watched folder publishes.
- ``ingest.db.<connector>``: ``hub://sources/<database URL>#<table>`` -> the topic; per pull.
- ``ingest.http.<connector>``: ``hub://sources/<endpoint URL>`` -> the topic; per pull.
- ``ingest.replay``: ``hub://topics/hub.quarantine`` -> the topics replayed into; per replay.
- ``export.evidence``: the topics the controls cover -> ``hub://exports/<pack file name>``.
- ``export.query`` (``POST /v1/query``, ``hub query``, every format): the projections whose
  views the SQL reads (all of the store's when it does not parse) -> the store's one query
  dataset ``hub://exports/query:<store>``: a run per query, not a catalog dataset per query.
- Every ingest job also writes ``hub://topics/hub.quarantine`` when one of its records was
  quarantined; the START names only the target topic (rejections are not known yet), the
  COMPLETE or FAIL adds the quarantine.
- URLs lose their user, password, query and fragment (``redact_url``) before they are stored.
- Push ingest (``POST /v1/ingest/{topic}``, ``/avro``) records no run: a run per request would
  put two lineage events on ``hub.lineage`` for every small batch. Its per-source counts are in
  ``GET /v1/quality/stats``; its records carry their producer in every envelope.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from core.errors import TopicNotFound
from core.events import OutgoingEvent
from core.fold import RecordDecoder, TopicFold
from core.ports.eventlog import EventLog, StoredRecord

LINEAGE_TOPIC = "hub.lineage"
JOB_NAMESPACE = "hub"
TOPICS_NS = "hub://topics"
PROJECTIONS_NS = "hub://projections"
EXPORTS_NS = "hub://exports"
SOURCES_NS = "hub://sources"
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


def source_dataset(uri: str, table: str | None = None) -> Dataset:
    """An input outside the hub, named by its URI with the credentials removed
    (``redact_url``); ``table`` names a table of a database (``<url>#<table>``)."""
    name = redact_url(uri)
    return Dataset(SOURCES_NS, name if table is None else f"{name}#{table}")


def redact_url(url: str) -> str:
    """``url`` without user, password, query and fragment: what may be stored in lineage.

    ``postgresql://u:secret@db:5432/app?sslmode=require`` -> ``postgresql://db:5432/app``;
    ``https://api.example.com/v1/trades?api_key=k`` -> ``https://api.example.com/v1/trades``.
    A URL that does not parse keeps only its scheme (``<scheme>://<unparsable>``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        scheme = url.partition(":")[0] if ":" in url else ""
        return f"{scheme}://<unparsable>" if scheme.isalnum() else "<unparsable>"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if not parts.scheme:
        return parts.path
    if not url[len(parts.scheme) + 1 :].startswith("//"):  # no authority (mailto:, urn:)
        return f"{parts.scheme}:{parts.path}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def split_id(dataset_id: str) -> tuple[str, str]:
    """``(namespace, name)`` of a dataset id: it splits at the first ``/`` after ``://``."""
    scheme, sep, rest = dataset_id.partition("://")
    if not sep:
        ns, _, name = dataset_id.rpartition("/")
        return ns, name
    authority, _, name = rest.partition("/")
    return f"{scheme}://{authority}", name


class Publisher(Protocol):
    """What lineage needs of a publisher (``ingest.publish.Publisher`` is one)."""

    def publish(
        self, topic: str, events: Sequence[OutgoingEvent], producer: str, tenant: str = ...
    ) -> object: ...


class _HasPublisher(Protocol):
    @property
    def publisher(self) -> Publisher: ...


def _publisher(target: Publisher | _HasPublisher) -> Publisher:
    inner = getattr(target, "publisher", None)
    return target if inner is None else inner  # type: ignore[return-value]


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
    redact: Mapping[str, str] | None = None,
    tenant: str = "default",
) -> dict[str, Any]:
    """Publish one OpenLineage run event on ``hub.lineage``; returns the RunEvent document.
    ``tenant``: the tenant the run is done for (its ``ce_tenant``; a person's run is that
    person's tenant's, the hub's own jobs ``default``): see :meth:`LineageLog.events`.

    ``redact`` maps text that must not be stored (a URL with its password) to what is stored
    instead, in the error message."""
    now = datetime.now(UTC)
    run_facets: dict[str, Any] = {}
    if error is not None:
        message = f"{type(error).__name__}: {error}"
        for secret, shown in (redact or {}).items():
            if secret:
                message = message.replace(secret, shown)
        run_facets["errorMessage"] = {
            "_producer": PRODUCER,
            "_schemaURL": ERROR_FACET_URL,
            "message": message,
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
        LINEAGE_TOPIC, [OutgoingEvent(value=value, key=job)], producer=producer, tenant=tenant
    )
    return doc


@dataclass(slots=True)
class Run:
    """A run in progress: its id and datasets. Datasets added while it runs are named by the
    COMPLETE or FAIL event (the START names those known at the start)."""

    id: str
    job: str
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)

    def add_output(self, dataset: Dataset) -> None:
        if dataset not in self.outputs:
            self.outputs.append(dataset)


@contextmanager
def tracked(
    target: Publisher | _HasPublisher,
    job: str,
    inputs: Sequence[Dataset] = (),
    outputs: Sequence[Dataset] = (),
    *,
    producer: str = "hub",
    redact: Mapping[str, str] | None = None,
    tenant: str = "default",
) -> Iterator[Run]:
    """START on entry, COMPLETE on normal exit, FAIL (then re-raise) on an exception; yields
    the ``Run`` (see the module docstring for what happens when an event cannot be recorded).
    ``redact`` is applied to the FAIL event's error message (see ``emit``)."""
    r = Run(str(uuid.uuid4()), job, list(dict.fromkeys(inputs)), list(dict.fromkeys(outputs)))
    emit(target, "START", job, r.id, r.inputs, r.outputs, producer=producer, tenant=tenant)
    try:
        yield r
    except BaseException as exc:
        try:
            emit(
                target,
                "FAIL",
                job,
                r.id,
                r.inputs,
                r.outputs,
                error=exc,
                producer=producer,
                redact=redact,
                tenant=tenant,
            )
        except Exception as emit_exc:
            # The job's own error is what the caller must see; the lost FAIL rides along.
            exc.add_note(f"Recording the lineage FAIL event of run {r.id} failed: {emit_exc!r}")
        raise
    emit(target, "COMPLETE", job, r.id, r.inputs, r.outputs, producer=producer, tenant=tenant)


@contextmanager
def run(
    target: Publisher | _HasPublisher,
    job: str,
    inputs: Sequence[Dataset] = (),
    outputs: Sequence[Dataset] = (),
    *,
    producer: str = "hub",
    tenant: str = "default",
) -> Iterator[str]:
    """``tracked`` for a job whose datasets are known up front; yields the run id."""
    with tracked(target, job, inputs, outputs, producer=producer, tenant=tenant) as r:
        yield r.id


# -- reading --------------------------------------------------------------------------------------
class LineageLog:
    """The stored lineage events, folded once from ``hub.lineage`` and followed from there (a
    ``TopicFold``: each read folds only what was appended since the previous one). Events that
    retention removed from the topic are left out. Thread-safe.

    Each event keeps the tenant it was recorded for (``core.events.tenant_of``: a person's run
    is that person's tenant's, the hub's own jobs ``default``). A reader limited to one tenant
    (``tenant_scope``) gets that tenant's events only; the graph keeps every job and every
    topic, projection and source edge (the hub's shape, the same for every tenant) but the last
    run of a job and the exported files only from that tenant's runs."""

    def __init__(self, log: EventLog, reader: RecordDecoder) -> None:
        self._log = log
        self._reader = reader
        # Per partition, (offset, indexed fields, tenant) in offset order.
        self._events: dict[int, list[tuple[int, dict[str, Any], str | None]]] = {}
        self._fold = TopicFold(log, LINEAGE_TOPIC, self._apply)

    def _apply(self, rec: StoredRecord) -> None:
        from core.events import tenant_of

        value = self._reader.decode(rec).get("value")
        if isinstance(value, dict):
            row = (rec.offset, value, tenant_of(rec))
            self._events.setdefault(rec.partition, []).append(row)

    def events(
        self, job: str | None = None, limit: int | None = None, tenant_scope: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored lineage events (indexed fields), oldest first per partition; one job's, or the
        last ``limit``; with ``tenant_scope``, that tenant's only."""
        rows = self._rows(job)
        out = [v for v, t in rows if tenant_scope is None or t == tenant_scope]
        return out[-limit:] if limit else out

    def _rows(self, job: str | None = None) -> list[tuple[dict[str, Any], str | None]]:
        with self._fold.lock:
            self._fold.catch_up()
            try:
                starts = self._log.beginning_offsets(LINEAGE_TOPIC)
            except TopicNotFound:
                return []
            out: list[tuple[dict[str, Any], str | None]] = []
            for part in sorted(self._events):
                kept = self._events[part]
                first = starts.get(part, 0)
                if kept and kept[0][0] < first:  # retention cut the topic: forget those too
                    kept = self._events[part] = [e for e in kept if e[0] >= first]
                out += [(v, t) for _, v, t in kept if job is None or v.get("job_name") == job]
        return out

    def graph(self, tenant_scope: str | None = None) -> dict[str, Any]:
        """Nodes (datasets and jobs) and edges (dataset -reads-> job, job -writes-> dataset);
        with ``tenant_scope``, runs and exported files of that tenant only (see the class)."""
        rows = self._rows()
        return graph_of(
            [v for v, _ in rows], [tenant_scope is None or t == tenant_scope for _, t in rows]
        )


def graph_of(
    events: Sequence[Mapping[str, Any]], shown: Sequence[bool] | None = None
) -> dict[str, Any]:
    """The lineage graph of ``events`` (``LineageLog.events``). ``shown[i]`` False: event ``i``
    adds its job and its edges but no last run and no exported file (another tenant's run)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    for i, ev in enumerate(events):
        job_id = f"job:{ev['job_namespace']}/{ev['job_name']}"
        node = nodes.setdefault(
            job_id,
            {"id": job_id, "kind": "job", "namespace": ev["job_namespace"], "name": ev["job_name"]},
        )
        mine = shown is None or shown[i]
        if mine:
            node["last_run"] = {
                "run_id": ev["run_id"],
                "state": ev["event_type"],
                "at": ev["event_time"],
            }
        outputs = [d for d in ev["outputs"] if mine or split_id(d)[0] != EXPORTS_NS]
        for ds, relation in [(d, "reads") for d in ev["inputs"]] + [(d, "writes") for d in outputs]:
            ns, name = split_id(ds)
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
