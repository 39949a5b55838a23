"""Prediction events of a scored batch, built column by column.

A scored batch (``Scored``: the feature matrix, the scores and each row's variant) becomes the
``hub.PredictionRecorded`` records the per-event path (``Prediction.event`` then
``Publisher.prepare``) would give for the same rows and the same time, byte for byte:

1. the canonical JSON of each feature vector from one ``%``-template per view (``repr`` of a
   float is what ``json.dumps`` writes for it; rows holding NaN or an infinity go through
   ``json.dumps``), and its SHA-256 digest over one contiguous buffer of the rows;
2. the Avro values of the whole batch from Arrow columns joined row by row (``ml.flat_avro``);
3. envelope headers shared by the rows of one tenant, built once per tenant, with batch UUIDv7
   ids; the record key is the entity, as ``Prediction.event`` sets it. A prediction carries the
   tenant of the event it scored (``ce_tenant``), so a report on it can be cut per tenant.

``PredictionWriter.records`` falls back to the per-event path for a whole batch whenever the
vectorised one could differ: a schema version that encrypts PII or names a data subject, a
field type ``ml.flat_avro`` does not write, a value over the record size limit. The shipped
version does both since session 23 (the entity is the data subject, ``features`` PII sealed
under its key, so an erasure shreds the vector: docs/benchmarks/s23-trustleftb23.md), so the
hub's own batches take the per-event path; the column-wise one writes a version without PII.
``tests/unit/test_prediction_records.py`` compares both paths on random batches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from core.avro import serde
from core.events import OutgoingEvent
from core.pii import data_subject_field
from core.ports.eventlog import Headers, Record
from domain import envelope as env
from domain.envelope import Envelope
from ingest.ids import uuid7_bytes
from ingest.pipeline import gc_paused, new_records
from ingest.publish import Publisher
from ml.features import DEFAULT_TENANT, canonical
from ml.flat_avro import FlatAvro
from ml.models import ModelVersion

PREDICTIONS_TOPIC = "hub.predictions"
PREDICTION = "hub.PredictionRecorded"
PRODUCER = "ml.scoring"


@dataclass(frozen=True, slots=True)
class Prediction:
    model: str
    version: int
    variant: str
    entity: str
    subject: str
    source: str
    features: dict[str, float]
    feature_digest: str
    score: float
    decision: str
    latency_us: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "variant": self.variant,
            "entity": self.entity,
            "subject": self.subject,
            "source": self.source,
            "features": self.features,
            "feature_digest": self.feature_digest,
            "score": self.score,
            "decision": self.decision,
            "latency_us": self.latency_us,
        }

    def event(self, scored_at: datetime | None = None) -> OutgoingEvent:
        value = {**self.as_dict(), "features": canonical(self.features)}
        value["scored_at"] = (scored_at or datetime.now(UTC)).isoformat()
        return OutgoingEvent(value=value, event_type=PREDICTION, key=self.entity)


@dataclass(frozen=True, slots=True)
class Scored:
    """A batch scored by one model: row ``i`` is event ``i``. ``infos`` holds the version
    serving each variant; ``latency_us`` is the batch's (what each of its events waited)."""

    model: str
    text: VectorText  # of the matrix's columns
    matrix: NDArray[Any]
    scores: NDArray[Any]
    variants: Sequence[str]
    infos: Mapping[str, ModelVersion]
    entities: Sequence[str]
    subjects: Sequence[str]
    latency_us: int

    def __len__(self) -> int:
        return len(self.entities)

    def predictions(self, sources: Sequence[str]) -> list[Prediction]:
        """The batch as ``Prediction`` objects (the per-event form)."""
        digests = self.text.digests(self.text.rows(self.matrix))
        out = []
        names = self.text.names
        for i, (row, score) in enumerate(
            zip(self.matrix.tolist(), self.scores.tolist(), strict=True)
        ):
            info = self.infos[self.variants[i]]
            out.append(
                Prediction(
                    self.model,
                    info.version,
                    self.variants[i],
                    self.entities[i],
                    self.subjects[i],
                    sources[i],
                    dict(zip(names, row, strict=True)),
                    digests[i],
                    round(score, 9),
                    "alert" if score >= info.threshold else "pass",
                    self.latency_us,
                )
            )
        return out


class VectorText:
    """The canonical JSON text and the digest (``ml.features.digest``) of matrix rows whose
    columns are ``names``."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.order = sorted(range(len(names)), key=names.__getitem__)
        ordered = [names[j] for j in self.order]
        self.sorted_names = ordered
        self.header = canonical(ordered).encode() + b"\n"
        keys = [json.dumps(n) for n in ordered]
        self.template = "{" + ",".join(f"{k.replace('%', '%%')}:%r" for k in keys) + "}"
        self.keys = [("{" if j == 0 else ",") + k + ":" for j, k in enumerate(keys)]

    def rows(self, matrix: NDArray[Any]) -> NDArray[Any]:
        """The rows with their columns in name order, as one contiguous little-endian buffer."""
        return np.ascontiguousarray(matrix[:, self.order], dtype="<f8")

    def texts(self, by_name: NDArray[Any]) -> list[str]:
        """Each row's canonical JSON, one ``%``-template per row."""
        rows = by_name.tolist()
        texts = list(map(self.template.__mod__, map(tuple, rows)))
        for i in np.flatnonzero(~np.isfinite(by_name).all(axis=1)).tolist():
            texts[i] = canonical(dict(zip(self.sorted_names, rows[i], strict=True)))
        return texts

    def text_array(self, by_name: NDArray[Any]) -> pa.Array:
        """``texts`` as an Arrow array, built column-wise: Arrow's float to string cast writes
        the same shortest round-trip digits as ``repr`` where both write them positionally
        (0, or 1e-4 <= |v| < 1e16, and Arrow chose no exponent), apart from ``repr``'s ".0" on
        integral values, added here. Rows with any other value are written by ``texts``."""
        n, k = by_name.shape
        if not k:
            return pa.array(self.texts(by_name), pa.string())
        parts: list[Any] = []
        other = np.zeros(n, dtype=np.bool_)
        for j in range(k):
            v = by_name[:, j]
            text = pc.cast(pa.array(v), pa.string())
            mag = np.abs(v)
            other |= ~(((mag >= 1e-4) & (mag < 1e16)) | (v == 0))
            other |= np.asarray(pc.match_substring(text, "e"), dtype=np.bool_)
            integral = pc.invert(pc.match_substring(text, "."))
            parts.append(self.keys[j])
            parts.append(pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text))
        parts.append("}")
        joined = pc.binary_join_element_wise(*parts, "")
        if other.any():
            rows = np.flatnonzero(other)
            fixed = pa.array(self.texts(by_name[rows]), pa.string())
            joined = pc.replace_with_mask(joined, pa.array(other), fixed)
        return joined

    def digests(self, by_name: NDArray[Any]) -> list[str]:
        width = 8 * by_name.shape[1]
        header, sha256 = self.header, hashlib.sha256
        if not width:
            return [sha256(header).hexdigest()] * len(by_name)
        buf = by_name.tobytes()
        return [
            sha256(header + buf[at : at + width]).hexdigest() for at in range(0, len(buf), width)
        ]


class PredictionWriter:
    """Builds the prediction records of scored batches (see the module docstring)."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._plans: dict[int, FlatAvro | None] = {}

    def records(
        self,
        batch: Scored,
        sources: Sequence[str],
        scored_at: datetime | None = None,
        tenants: str | Sequence[str] = DEFAULT_TENANT,
    ) -> list[Record]:
        """The batch's prediction records, ready for one append; ``tenants`` the tenant of
        each scored event (one for all, or one per row), written as each record's tenant."""
        if not len(batch):
            return []
        per_row = [tenants] * len(batch) if isinstance(tenants, str) else list(tenants)
        if len(per_row) != len(batch):
            raise ValueError(f"{len(per_row)} tenants for a batch of {len(batch)} predictions.")
        at = scored_at or datetime.now(UTC)
        with gc_paused():  # tens of thousands of young tuples, none in a cycle
            found = self._vectorised(batch, sources, at, per_row)
        if found is not None:
            return found
        events = [p.event(at) for p in batch.predictions(sources)]
        out: list[Record | None] = [None] * len(events)
        for tenant in dict.fromkeys(per_row):  # one prepare per tenant, in first-seen order
            rows = [i for i, t in enumerate(per_row) if t == tenant]
            got = self._publisher.prepare(
                PREDICTIONS_TOPIC, [events[i] for i in rows], PRODUCER, tenant
            )
            for i, record in zip(rows, got, strict=True):
                out[i] = record
        return [r for r in out if r is not None]

    def _plan(self, schema_id: int, parsed: Any) -> FlatAvro | None:
        if schema_id not in self._plans:
            self._plans[schema_id] = FlatAvro.of(parsed)
        return self._plans[schema_id]

    def _vectorised(
        self, batch: Scored, sources: Sequence[str], at: datetime, tenants: Sequence[str]
    ) -> list[Record] | None:
        target = self._publisher.targets.resolve(PREDICTIONS_TOPIC, PREDICTION)
        if target.encrypts or data_subject_field(target.schema.text) is not None:
            return None
        encoder = self._plan(target.schema_id, target.schema.parsed)
        if encoder is None:
            return None
        n = len(batch)
        vt = batch.text
        by_name = vt.rows(batch.matrix)
        scores = batch.scores
        infos = batch.infos
        if len(infos) == 1:
            (info,) = infos.values()
            version: Any = info.version
            alerts = scores >= info.threshold
        else:
            version = np.empty(n, dtype=np.int64)
            thresholds = np.empty(n, dtype=np.float64)
            for name, info in infos.items():
                rows = np.fromiter((v == name for v in batch.variants), np.bool_, n)
                version[rows] = info.version
                thresholds[rows] = info.threshold
            alerts = scores >= thresholds
        variants = batch.variants
        columns = {
            "model": batch.model,
            "version": version,
            "variant": variants[0] if len(infos) == 1 else pa.array(variants, pa.string()),
            "entity": pa.array(batch.entities, pa.string()),
            "subject": pa.array(batch.subjects, pa.string()),
            "source": pa.array(sources, pa.string()),
            "feature_digest": pa.array(vt.digests(by_name), pa.string()),
            "features": vt.text_array(by_name),
            "score": np.asarray([round(s, 9) for s in scores.tolist()], dtype=np.float64),
            "decision": pa.array(np.where(alerts, "alert", "pass"), pa.string()),
            "latency_us": batch.latency_us,
            "scored_at": (at - _EPOCH) // _US,
        }
        values = encoder.encode(n, serde.wire_header(target.schema_id), columns)
        if values is None or max(map(len, values)) > self._publisher.max_record_bytes:
            return None  # the per-event path encodes it, or raises naming the record
        shared = {t: _headers(target.name, target.classification, at, t) for t in set(tenants)}
        h_id, h_corr = env.H_ID, env.H_CORRELATION
        headers = []
        for tenant, e in zip(tenants, uuid7_bytes(n), strict=True):
            first, middle, last = shared[tenant]
            headers.append((*first, (h_id, e), *middle, (h_corr, e), *last))
        keys = [e.encode() for e in batch.entities]
        return new_records(values, keys, headers)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _headers(
    name: str, classification: str, at: datetime, tenant: str
) -> tuple[Headers, Headers, Headers]:
    """The envelope headers every record of a batch in ``tenant`` shares, around its id and
    correlation id (``Envelope.to_headers`` order; ``ce_time`` is the batch's time, as
    ``Publisher.prepare`` writes a batch's receipt time)."""
    h = Envelope(
        event_type=name,
        producer=PRODUCER,
        tenant=tenant,
        classification=classification,
        occurred_at=at,
        event_id="-",
    ).to_headers()
    assert h[1][0] == env.H_ID and h[5][0] == env.H_CORRELATION
    return h[:1], h[2:5], h[6:]
