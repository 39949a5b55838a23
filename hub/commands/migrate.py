"""``hub migrate``: one-off migrations of what the hub wrote before session 14.

    hub migrate erasure-journal            what signing the journal would change, and its digest
    hub migrate erasure-journal --apply    sign it, once a second person approved that digest
    hub migrate legacy                     list what reads as tenant default or keeps a clear
                                           digest (written before session 14; read-only)
    hub migrate kafka-seal [--apply]       seal the Kafka records written before record MACs
                                           (session 15; hub.migrate_kafka)

The erasure journal (``storage.erasures``) entries written before they carried a note signed by
the ledger's key are unsigned, and a restore refuses them (whoever can write the object store
could plant one). This command signs an unsigned entry only when the ledger confirms it: a
``subject.erase`` action on ``hub.audit`` naming the same subject (and the same ``audit_offset``
when the entry names one); the signed entry takes the ledger's offset and time, not the
entry's. An entry the ledger does not confirm is listed as refused and left as it is: signing
it would launder a planted entry into one a restore obeys (crypto-shredding someone's data).

The plan (every entry it would sign, with the ledger facts) has a SHA-256 digest; ``--apply``
needs ``migration:erasure-journal`` set to that digest, a change that always needs a second
person (``hub config propose migration:erasure-journal DIGEST --reason ...``, then ``hub config
approve`` by another principal), computes the plan again and refuses when the digest differs
(the store or the ledger changed since the approval), then signs and records
``migration.apply`` on the ledger. Both need ``backup.restore`` (decided hub-wide).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import click

from core.errors import Conflict, TopicNotFound
from core.ports.objectstore import ObjectNotFound, ObjectStore, ObjectTooLarge
from core.ports.policy import Principal
from hub.cli import Ctx, authorize_hub_wide, current_principal, main, run_safely

RESOURCE = "migration:erasure-journal"


@dataclass
class JournalPlan:
    """What ``--apply`` would do: ``sign`` (object key, subject, audit offset, erased at ms from
    the ledger) and ``refused`` (object key, why)."""

    sign: list[tuple[str, str, int, int]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        lines = [json.dumps(s) for s in sorted(self.sign)]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "sign": [
                {"object": k, "subject": s, "audit_offset": o, "erased_at_ms": t}
                for k, s, o, t in self.sign
            ],
            "refused": [{"object": k, "why": w} for k, w in self.refused],
            "digest": self.digest,
        }


def _erasures_on_ledger(h: Any) -> dict[str, list[tuple[int, int]]]:
    """subject -> [(hub.audit offset, timestamp ms)] of every ``subject.erase`` action."""
    from domain.envelope import H_ACTION, H_SUBJECT
    from governance.erasure_index import ACTION

    out: dict[str, list[tuple[int, int]]] = {}
    try:
        ends = h.log.end_offsets("hub.audit")
    except TopicNotFound:  # nothing recorded yet: nothing erased
        return out
    for partition in sorted(ends):
        for rec in h.log.scan("hub.audit", partition, 0):
            headers = dict(rec.headers)
            if headers.get(H_ACTION) != ACTION.encode():
                continue
            resource = headers.get(H_SUBJECT, b"").decode()
            if resource.startswith("subject:"):
                out.setdefault(resource[len("subject:") :], []).append(
                    (rec.offset, rec.timestamp_ms)
                )
    return out


def journal_plan(h: Any, store: ObjectStore) -> JournalPlan:
    """The unsigned journal entries, each to sign (confirmed by the ledger) or refused."""
    from storage.erasures import MAX_ENTRY_BYTES, PREFIX, journal_key

    plan = JournalPlan()
    erasures = _erasures_on_ledger(h)
    for key in store.list(PREFIX):
        try:
            d = json.loads(b"".join(store.stream(key, max_bytes=MAX_ENTRY_BYTES)))
        except ObjectNotFound:
            continue
        except (ObjectTooLarge, ValueError) as exc:
            plan.refused.append((key, f"not a readable entry ({exc})"))
            continue
        if not isinstance(d, dict) or "note" in d:
            if not isinstance(d, dict):
                plan.refused.append((key, "not a JSON object"))
            continue  # signed: the restore verifies it
        subject = d.get("subject")
        if not isinstance(subject, str) or key != journal_key(subject):
            plan.refused.append((key, "its subject is missing or is not the one its name hashes"))
            continue
        named = d.get("audit_offset")
        found = [(o, t) for o, t in erasures.get(subject, []) if named is None or o == named]
        if not found:
            why = "no subject.erase on the ledger names its subject"
            if named is not None:
                why += f" at hub.audit offset {named}"
            plan.refused.append((key, why))
            continue
        offset, at_ms = found[0]
        plan.sign.append((key, subject, offset, at_ms))
    return plan


def apply_journal_plan(h: Any, store: ObjectStore, principal: Principal) -> dict[str, Any]:
    """Sign the plan's entries when its digest is the approved one; records the migration."""
    from storage.erasures import JournalEntry, signed_text

    plan = journal_plan(h, store)
    approved = h.config_changes.resource(RESOURCE).current()
    if approved != plan.digest:
        raise Conflict(
            f"The erasure journal plan's digest is {plan.digest}, but {RESOURCE} is "
            f"{approved!r}: have it approved first (`hub config propose {RESOURCE} "
            f"{plan.digest} --reason ...`, then `hub config approve` by a second person); a "
            "plan that changed since its approval is not applied.",
            code="migration_not_approved",
        )
    for key, subject, offset, at_ms in plan.sign:
        entry = JournalEntry(subject, at_ms, offset)
        body = {
            "subject": subject,
            "erased_at_ms": at_ms,
            "audit_offset": offset,
            "note": h.ledger.signer.sign_note(signed_text(entry)).decode(),
        }
        store.put(key, json.dumps(body, sort_keys=True).encode())
    out = plan.as_dict()
    h.ledger.record_action(
        principal.id,
        "migration.apply",
        RESOURCE,
        details={"digest": plan.digest, "signed": len(plan.sign), "refused": len(plan.refused)},
        tenant=principal.tenant,
    )
    h.ledger.sync(force_checkpoint=True)
    return out


# (topic, event type or None for every record) of the records session 14 began to tag with
# their tenant: older ones read as tenant ``default``.
_TENANTED = (
    ("hub.governance", "hub.LegalHoldPlaced", "legal_holds"),
    ("hub.predictions", None, "predictions"),
    ("hub.quarantine", None, "quarantine_entries"),
)
_SHOWN = 20  # offsets listed per kind (the count is whole)


def legacy_report(h: Any) -> dict[str, Any]:
    """What an admin should know before trusting tenant-scoped reads of old data: the records
    without a tenant header (they read as tenant ``default``, so ``default``'s readers see them
    and their own tenant's do not), and the quarantine entries sealed for a subject whose digest
    is still in clear (a SHA-256 of a small personal record confirms a guess of it, erased or
    not). The log is immutable: nothing here is rewritten; the list is the evidence to review
    (e.g. re-place a hold in its tenant, release the old one)."""
    from domain.envelope import H_TENANT, H_TYPE
    from ingest.quarantine import entries

    untagged: dict[str, dict[str, Any]] = {}
    for topic, event_type, kind in _TENANTED:
        offsets: list[tuple[int, int]] = []
        try:
            ends = h.log.end_offsets(topic)
        except TopicNotFound:
            ends = {}
        for partition in sorted(ends):
            for rec in h.log.scan(topic, partition, 0):
                headers = dict(rec.headers)
                if rec.value is None or H_TENANT in headers:
                    continue
                if event_type is None or headers.get(H_TYPE) == event_type.encode():
                    offsets.append((partition, rec.offset))
        untagged[kind] = {
            "topic": topic,
            "count": len(offsets),
            "first": [{"partition": p, "offset": o} for p, o in offsets[:_SHOWN]],
        }
    clear = [
        e["offset"]
        for e in entries(h.ingest, 0, 10**9)
        if "sealed_for" in e and e["original_sha256"] not in ("sealed", "")
    ]
    return {
        "read_as_default_tenant": untagged,
        "quarantine_clear_digests": {"count": len(clear), "first_offsets": clear[:_SHOWN]},
    }


@main.group("migrate")
def migrate() -> None:
    """One-off migrations of data written before session 14 (two-person approved)."""


@migrate.command("erasure-journal")
@click.option("--apply", "apply_", is_flag=True, help="Sign the approved plan's entries.")
@click.pass_obj
def migrate_erasure_journal(obj: Ctx, apply_: bool) -> None:
    """Sign the unsigned erasure journal entries the ledger confirms (a subject.erase of the
    same subject); without --apply, list the plan and its digest to have approved."""
    from hub.bootstrap import build_object_store

    def go() -> None:
        with obj.hub() as h:
            principal = current_principal(h)
            authorize_hub_wide(h, "backup.restore", RESOURCE, principal)
            store = build_object_store(h.settings, write_once=False)
            if apply_:
                out = apply_journal_plan(h, store, principal)
            else:
                out = journal_plan(h, store).as_dict()
                out["approve_with"] = (
                    f"hub config propose {RESOURCE} {out['digest']} --reason WHY; "
                    "hub config approve CHANGE_ID (another principal)"
                )
            click.echo(json.dumps(out, indent=2, sort_keys=True))

    run_safely(go)


@migrate.command("legacy")
@click.pass_obj
def migrate_legacy(obj: Ctx) -> None:
    """List the records written before session 14 that read as tenant default (legal holds,
    predictions, quarantine entries) and the quarantine entries whose digest is in clear;
    changes nothing (the log is immutable)."""

    def go() -> None:
        with obj.hub() as h:
            authorize_hub_wide(h, "backup.restore", RESOURCE, current_principal(h))
            click.echo(json.dumps(legacy_report(h), indent=2, sort_keys=True))

    run_safely(go)


@migrate.command("kafka-seal")
@click.option("--apply", "apply_", is_flag=True, help="Write the approved plan's seals.")
@click.pass_obj
def migrate_kafka_seal(obj: Ctx, apply_: bool) -> None:
    """Seal the hub-topic records of a Kafka deployment written before record MACs: each one
    checked against its ledger leaf (hub.migrate_kafka); without --apply, show the plan and the
    digest to have approved."""
    from hub.migrate_kafka import RESOURCE as SEAL
    from hub.migrate_kafka import apply_seal_plan, kafka_log_of, seal_plan

    def go() -> None:
        with obj.hub(kafka_migration=True) as h:
            principal = current_principal(h)
            authorize_hub_wide(h, "backup.restore", SEAL, principal)
            if apply_:
                out = apply_seal_plan(h, principal)
            else:
                out = seal_plan(kafka_log_of(h.ledger.log), h.ledger.store).as_dict()
                out["approve_with"] = (
                    f"hub config propose {SEAL} {out['digest']} --reason WHY; "
                    "hub config approve CHANGE_ID (another principal)"
                )
            click.echo(json.dumps(out, indent=2, sort_keys=True))

    run_safely(go)
