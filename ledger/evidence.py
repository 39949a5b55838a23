"""Evidence packs: one zip of signed checkpoints, entries with proofs and a readable report.

The layout and the offline verifier are in ``audit.bundle`` (format ``hub-evidence/v1``).
:func:`export_pack` works in numbered steps:
    1. sync the ledger and sign a checkpoint covering everything synced (``force_checkpoint``);
    2. select the entries whose log time is in ``[since, until)`` and whose topic/action maps
       to a requested control (``ledger.controls``): each control's whole population;
       describe each from its event (``ledger.populations``: actor, action, resource,
       outcome, policy version, and for changes the diff and approver);
    3. prove each entry against the FIRST checkpoint that includes it (which bounds when it
       was committed), and take the consecutive run of checkpoints from the earliest of those
       to the latest, with a consistency proof per consecutive pair;
    4. render the reports (``report.html``, ``report.pdf``: populations with counts per
       control, checkpoints summarised; the full list in ``checkpoints.csv``; each control's
       population in ``populations/<control>.csv``), write the manifest (file digests) and
       sign it;
    5. record the export itself as an ``evidence.export`` audit action (its leaf lands in the
       ledger at the next sync, so the next pack proves this export happened).
Record keys and values appear as SHA-256 digests only; the display ``resource`` shows a key as
text only for control-plane topics (``controls.shows_key``), otherwise ``sha256:<prefix>``.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from audit import bundle
from audit import leaf as leaf_format
from audit.bundle import checkpoint_summary  # hub-verify recomputes it from the notes
from audit.controls import AUDIT_TOPIC, DECISIONS_UNRECORDED, MAPPING
from audit.reportcheck import REPORT_FIGURES, tally
from core.errors import InvalidInput
from core.ports.eventlog import StoredRecord
from core.ports.ledgerstore import LeafRow, StoredCheckpoint
from ledger import controls as soc2
from ledger.errors import CheckpointNotFound, LedgerIntegrityError
from ledger.populations import Describer, ingest_counts
from ledger.report import checkpoints_csv, population_csv, render
from ledger.report_pdf import render_pdf
from ledger.service import Ledger, check_row, entry_fields

if TYPE_CHECKING:
    from ingest.publish import EventReader

CHECKPOINTS_CSV = "checkpoints.csv"
REPORT_PDF = "report.pdf"


@dataclass(frozen=True, slots=True)
class EvidencePack:
    data: bytes
    entries: int
    checkpoints: list[int]
    manifest_sha256: str

    @property
    def filename(self) -> str:
        return f"evidence-{self.manifest_sha256[:12]}.zip"


def parse_time(text: str, what: str) -> datetime:
    """An ISO date or RFC 3339 time (UTC when no offset is given)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{what}={text!r} is not an ISO date or time (e.g. 2026-01-31 or "
            "2026-01-31T12:00:00Z).",
            code="invalid_time",
        ) from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _resource(e: dict[str, Any]) -> str | None:
    if soc2.shows_key(e["topic"]) or any(h[0] == "ce_subject" for h in e.get("headers", [])):
        return e.get("resource")
    ks = e.get("key_sha256")
    return None if ks is None else f"sha256:{ks[:16]}"


def _unrecorded_starts(
    ledger: Ledger, since_ms: int, until_ms: int, tenant_scope: str | None, below: int
) -> list[LeafRow]:
    """The starts of the hub that recorded no access decision (``DECISIONS_UNRECORDED``) that
    a CC6 population over ``[since_ms, until_ms)`` leaves out: the newest one before the range
    (a process started then may have decided all through the range), and for a tenant's pack
    (``tenant_scope``) those inside the range too (each is the hub's, tenant ``default``)."""
    out: list[LeafRow] = []
    after = -1
    while True:
        page = ledger.store.query(
            topic=AUDIT_TOPIC,
            action=DECISIONS_UNRECORDED,
            until_ms=until_ms if tenant_scope is not None else since_ms,
            after=after,
            limit=10_000,
        )
        if not page:
            break
        out += [r for r in page if r[0] < below]
        after = page[-1][0]
    before = [r for r in out if r[4] < since_ms]
    return before[-1:] + [r for r in out if r[4] >= since_ms]


def _log_time(e: dict[str, Any]) -> tuple[int, int]:
    return e["timestamp_ms"], e["index"]


def _proven_entry(
    ledger: Ledger, row: LeafRow, sizes: Sequence[int]
) -> tuple[dict[str, Any], StoredRecord]:
    """Entry ``row`` as a pack holds it (its columns checked against its log record), proven
    against the first checkpoint that includes it (of ``sizes``, ascending); and its record."""
    record = ledger.record_at(row[1], row[2], row[3])
    if record is None:
        raise LedgerIntegrityError(
            f"Entry {row[0]} ({row[1]}, {row[2]}, {row[3]}) is no longer readable in the "
            "log; run `hub ledger verify`."
        )
    size = sizes[bisect.bisect_right(sizes, row[0])]
    e = entry_fields(row, record)
    e["resource"] = _resource(e)
    # the ledger's own columns, kept apart from the description (which reads the event's
    # value): hub-verify checks them against the hashed headers and key
    e["leaf_columns"] = {k: e[k] for k in ("actor", "action", "resource")}
    e["checkpoint"] = size
    e["proof"] = [p.hex() for p in ledger.store.inclusion_proof(row[0], size)]
    return e, record


def export_pack(
    ledger: Ledger,
    since: datetime,
    until: datetime,
    controls: Sequence[str],
    *,
    actor: str,
    reader: EventReader | None = None,
    default_policy: str = "",
    tenant_scope: str | None = None,
) -> EvidencePack:
    """An evidence pack of ``controls`` over ``[since, until)``. With ``reader``, entries of
    control-plane topics are described from their events (``ledger.populations``);
    ``default_policy`` is the bundle version in force before the first activation. With
    ``tenant_scope`` (an exporter limited to that tenant, ``service.tenant_scope_of``), the
    populations and ingest counts hold that tenant's entries and those with no tenant only,
    and the manifest's ``tenant_scope`` names it (null: every tenant)."""
    if until <= since:
        raise InvalidInput(
            f"The range is empty: --to ({until.isoformat()}) must be after --from "
            f"({since.isoformat()}).",
            code="invalid_range",
        )
    # 1. everything synced and signed
    ledger.sync(force_checkpoint=True)
    latest = ledger.store.latest_checkpoint()
    if latest is None:
        raise CheckpointNotFound("The ledger is empty: there is nothing to export yet.")
    # 2. entries in range for the controls
    wanted = set(controls)
    topics = [t.name for t in ledger.log.topics() if wanted & set(soc2.topic_controls(t.name))]
    since_ms, until_ms = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    rows = []
    after = -1
    while topics:
        page = ledger.store.query(
            topics=topics,
            since_ms=since_ms,
            until_ms=until_ms,
            tenant_scope=tenant_scope,
            after=after,
            limit=10_000,
        )
        if not page:
            break
        for r in page:
            if r[0] >= latest.size:
                continue
            if wanted & set(soc2.controls_of(r[1], r[6])):
                rows.append(r)  # its columns are checked with its record below (entry_fields)
            elif (record := ledger.record_at(r[1], r[2], r[3])) is not None:
                # Left out for its stored action: a forged action must not drop an entry from
                # the population of a pack that still verifies, so that action is the log's.
                check_row(r, record)
        after = page[-1][0]
    # 2b. the starts that recorded no access decision which the populations leave out
    context_rows = (
        _unrecorded_starts(ledger, since_ms, until_ms, tenant_scope, latest.size)
        if "CC6" in wanted
        else []
    )
    # 3. proofs against the first covering checkpoint; the checkpoint run and its links
    cps = ledger.store.checkpoints()
    entries: list[dict[str, Any]] = []
    describer = None if reader is None else Describer(ledger, reader, default_policy, tenant_scope)
    sizes = [c.size for c in cps]
    for row in rows:
        e, record = _proven_entry(ledger, row, sizes)
        e["controls"] = [c for c in soc2.controls_of(row[1], row[6]) if c in wanted]
        e["control"] = e["controls"][0]
        if describer is not None:
            describer.describe(e, record)
        entries.append(e)
    context = [_proven_entry(ledger, row, sizes)[0] for row in context_rows]
    first_cp = min([latest.size] + [e["checkpoint"] for e in [*entries, *context]])
    chain: list[StoredCheckpoint] = [c for c in cps if first_cp <= c.size <= latest.size]
    links = [
        {
            "from": a.size,
            "to": b.size,
            "proof": [p.hex() for p in ledger.store.consistency_proof(a.size, b.size)],
        }
        for a, b in itertools.pairwise(chain)
    ]
    # 4. reports, manifest, signature
    created = datetime.now(UTC).isoformat()
    public_key = ledger.public_key()
    by_control: dict[str, list[int]] = {c: [] for c in controls}
    for e in entries:
        for c in e["controls"]:
            by_control[c].append(e["index"])
    cp_rows = [
        {"size": c.size, "time_us": c.time_us, "root": c.root.hex(), "hash": c.hash.hex()}
        for c in chain
    ]
    summary = checkpoint_summary(cp_rows)
    counts = {c: tally([e for e in entries if c in e["controls"]]) for c in controls}
    ingested = ingest_counts(ledger, since_ms, until_ms, tenant_scope) if "PI1" in wanted else {}
    report_args: dict[str, Any] = {
        "origin": ledger.config.origin,
        "public_key": public_key,
        "range_from": since.isoformat(),
        "range_to": until.isoformat(),
        "controls": list(controls),
        "entries": entries,
        "counts": counts,
        "ingested": ingested,
        "checkpoints": summary,
        "created_at": created,
        "exported_by": actor,
        # a range ending after the newest checkpoint (a date to come) holds nothing later:
        # said in the reports as hub-verify says it (audit.bundle._covered)
        "unrecorded": [  # hub-verify names them too (audit.bundle._decisions_unrecorded)
            e["time"]
            for e in sorted({e["index"]: e for e in [*entries, *context]}.values(), key=_log_time)
            if e["topic"] == AUDIT_TOPIC and e["leaf_columns"]["action"] == DECISIONS_UNRECORDED
        ],
        "covered_to": (
            datetime.fromtimestamp(latest.time_us / 1e6, tz=UTC).isoformat()
            if latest.time_us < until_ms * 1000
            else None
        ),
    }
    files: dict[str, bytes] = {
        bundle.PUBLIC_KEY: (public_key + "\n").encode(),
        bundle.ENTRIES: "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode(),
        bundle.CONSISTENCY: "".join(json.dumps(x) + "\n" for x in links).encode(),
        bundle.REPORT: render(**report_args).encode(),
        REPORT_PDF: render_pdf(**report_args),
        CHECKPOINTS_CSV: checkpoints_csv(cp_rows).encode(),
    }
    if context:
        files[bundle.CONTEXT] = "".join(
            json.dumps(e, sort_keys=True) + "\n" for e in context
        ).encode()
    for c in controls:
        rows_c = [e for e in entries if c in e["controls"]]
        files[f"populations/{c}.csv"] = population_csv(rows_c).encode()
    for c in chain:
        files[bundle.checkpoint_name(c.size)] = c.note
    manifest = {
        "format": bundle.FORMAT,
        "leaf_format": leaf_format.VERSION,
        "origin": ledger.config.origin,
        "created_at": created,
        "exported_by": actor,
        "range": {"from": since.isoformat(), "to": until.isoformat()},
        "claims": MAPPING,  # what hub-verify checks range, scope and populations by
        "report": REPORT_FIGURES,  # report.html's figures, checked by hub-verify
        "tenant_scope": tenant_scope,
        "controls": by_control,
        "populations": {c: len(v) for c, v in by_control.items()},
        "checkpoint_summary": {k: v for k, v in summary.items() if k != "gaps"}
        | {"gaps": len(summary["gaps"])},
        "public_key": public_key,
        "checkpoints": [c.size for c in chain],
        "entries": len(entries),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    signature = ledger.signer.sign_note(bundle.manifest_note_text(manifest_bytes))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(bundle.MANIFEST, manifest_bytes)
        zf.writestr(bundle.SIGNATURE, signature)
        for name in sorted(files):
            zf.writestr(name, files[name])
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    # 5. the export is itself an audit action
    ledger.record_action(
        actor,
        "evidence.export",
        f"evidence/{since.date().isoformat()}..{until.date().isoformat()}",
        tenant=tenant_scope or "default",  # a tenant's pack is that tenant's action
        details={
            "controls": list(controls),
            "entries": len(entries),
            "checkpoints": [c.size for c in chain],
            "manifest_sha256": digest,
        },
    )
    return EvidencePack(buf.getvalue(), len(entries), [c.size for c in chain], digest)
