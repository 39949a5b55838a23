"""``hub migrate kafka-seal``: make a Kafka deployment written before record MACs readable again,
without making anything else readable (adapters.kafka_log.seals has the design and the why).

The plan, per partition that holds records without a valid ``__hub.mac`` no seal vouches for
yet (on the hub's own topics, ``hub.*`` and ``_*``, every such record; on data topics those that
carry ``ce_tenant`` and precede the hub's first MAC'd record there: without a seal the header is
dropped, so acme's old records would read as tenant ``default``'s and no longer match their
ledger leaves), judges each such record the way the old hub could:

- on a topic the ledger follows, the record's leaf (``audit.leaf``, recomputed from the record as
  the ledger read it) MUST equal the ledger's leaf at (topic, partition, offset); a record the
  ledger has no leaf for, or whose leaf differs, is *refused*: it was planted or changed, or the
  old release never synced it (then sync the ledger with the old release first);
- on the log's internal topics (``_hub_topics``, ``_hub_producer_state``: adapter state the
  ledger never followed and the old hub trusted as it was) the record is *listed*: only the
  approval of the plan's digest vouches for it, so the plan shows every one of them.

``sealed_from`` N is one past the partition's last such record; the plan's digest commits to
every (topic, partition, N, offset, ``seal_digest``) and to the refusals. ``--apply`` needs
``migration:kafka-seal`` set to that digest (two people: ``hub config propose``, then ``hub
config approve`` by another principal), computes the plan again, refuses while it differs or
refuses any record or the ledger does not verify (``verify_ledger``, full: the leaves vouch,
so they must be the ones the signed checkpoints commit to), writes the seals and records
``migration.apply`` on the ledger.

While the command runs (and only then) the log also reads unsealed hub records the ledger (or,
for the internal topics, the plan) vouches for, by ``ledger_vouch``: the command has to
authenticate its caller and read the approval on a deployment that is not sealed yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from adapters.kafka_log import KafkaEventLog
from adapters.kafka_log.auth import Vouch, claims_tenant, mac_required
from adapters.kafka_log.batch import strip_idem
from adapters.kafka_log.log import is_internal
from adapters.kafka_log.seals import PartitionSeal, seal_digest
from audit.leaf import encode as leaf_input
from audit.merkle import leaf_hash
from audit.printable import printable
from core.errors import Conflict, InvalidInput
from core.ports.eventlog import EventLog, StoredRecord
from core.ports.ledgerstore import LedgerStore
from core.ports.policy import Principal
from domain.envelope import H_TENANT

RESOURCE = "migration:kafka-seal"
_SHOWN = 20  # offsets listed per partition and kind (the counts are whole)


def ledger_verdict(leaves: LedgerStore, r: StoredRecord) -> str | None:
    """None when the ledger vouches for a stored record (its leaf matches), else why not."""
    index = leaves.index_of(r.topic, r.partition, r.offset)
    if index is None:
        return "the ledger has no entry for it (planted, or never synced by the old release)"
    row = leaves.leaf(index)
    s = strip_idem(r)  # the ledger read it without the idempotence header
    want = leaf_hash(
        leaf_input(s.topic, s.partition, s.offset, s.timestamp_ms, s.key, s.headers, s.value)
    )
    if row is None or bytes(row[9]) != want:
        return f"it differs from ledger entry {index} (changed after the ledger covered it)"
    return None


def ledger_vouch(leaves: LedgerStore) -> Vouch:
    """What the log reads unsealed while the migration runs: a record of an internal topic (the
    old hub's trust, listed in the plan) or one whose ledger leaf matches."""

    def vouch(r: StoredRecord) -> bool:
        return is_internal(r.topic) or ledger_verdict(leaves, r) is None

    return vouch


@dataclass
class PartitionPlan:
    topic: str
    partition: int
    sealed_from: int = 0
    on_ledger: int = 0  # records the ledger vouches for
    carried: int = 0  # records an earlier seal already vouched for
    # internal topics: the approval alone vouches, so the approvers see what they vouch for
    listed: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    digests: dict[int, bytes] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)  # data topics: the claims kept
    dropped: int = 0  # data topics: claims after the hub's first MAC'd record (not kept)

    def digest(self) -> str:
        h = hashlib.sha256()
        for offset in sorted(self.digests):
            h.update(offset.to_bytes(8, "big") + self.digests[offset])
        return h.hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "sealed_from": self.sealed_from,
            "records": len(self.digests),
            "on_ledger": self.on_ledger,
            "sealed_before": self.carried,
            "listed_only": {"count": len(self.listed), "first": self.listed[:_SHOWN]},
            "refused": [{"offset": o, "why": w} for o, w in self.refused[:_SHOWN]],
            "refused_count": len(self.refused),
            "records_sha256": self.digest(),
            **(
                {}
                if mac_required(self.topic)
                else {"tenant_claims": self.tenants, "claims_not_kept": self.dropped}
            ),
        }


@dataclass
class SealPlan:
    partitions: list[PartitionPlan] = field(default_factory=list)
    ledger_size: int = 0

    @property
    def refused(self) -> int:
        return sum(len(p.refused) for p in self.partitions)

    @property
    def digest(self) -> str:
        lines = [
            json.dumps(
                [p.topic, p.partition, p.sealed_from, p.digest(), sorted(p.refused)],
                separators=(",", ":"),
            )
            for p in self.partitions
        ]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def seals(self) -> list[PartitionSeal]:
        return [
            PartitionSeal(p.topic, p.partition, p.sealed_from, self.digest, dict(p.digests))
            for p in self.partitions
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "partitions": [p.as_dict() for p in self.partitions],
            "refused": self.refused,
            "ledger_size": self.ledger_size,
            "digest": self.digest,
        }


def _shown(r: StoredRecord) -> dict[str, Any]:
    """An internal state record as the approvers review it (key and the start of the value:
    JSON documents the log adapter wrote; printable text only)."""
    value = r.value or b""
    return {
        "offset": r.offset,
        "key": printable((r.key or b"").decode(errors="replace")),
        "value": printable(value[:300].decode(errors="replace")),
        "value_bytes": len(value),
        "value_sha256": hashlib.sha256(value).hexdigest(),
    }


def kafka_log_of(log: EventLog) -> KafkaEventLog:
    if not isinstance(log, KafkaEventLog):
        raise InvalidInput(
            "`hub migrate kafka-seal` is for the Kafka event log (HUB_EVENT_LOG=kafka); the "
            "embedded log has carried its MAC chain from the start and needs no seal.",
            code="not_kafka",
        )
    return log


def seal_plan(log: KafkaEventLog, leaves: LedgerStore) -> SealPlan:
    """The partitions holding hub records without a valid MAC that no seal vouches for yet,
    each record judged (module docstring). Reads every hub partition once."""
    plan = SealPlan(ledger_size=leaves.tree_size())
    seals = log.seals()
    for topic, partition in log.sealable_partitions():
        earlier = seals.get((topic, partition))
        part = PartitionPlan(topic, partition)
        new = 0
        hub_topic = mac_required(topic)
        mac_seen = False
        for r in log.scan_stored(topic, partition):
            if log.has_valid_mac(r):
                mac_seen = True
                continue
            if not hub_topic:
                # A data record without a MAC reads as an external producer's, ce_tenant
                # dropped; only one that carries it needs the seal. Records after the
                # hub's first MAC'd record here were written since the upgrade by a producer
                # without the key: their claims stay dropped.
                if not claims_tenant(r):
                    continue
                if mac_seen:
                    part.dropped += 1
                    continue
                tenant = dict(r.headers)[H_TENANT].decode(errors="replace")
                part.tenants[tenant] = part.tenants.get(tenant, 0) + 1
            part.sealed_from = r.offset + 1
            part.digests[r.offset] = seal_digest(r)
            if earlier is not None and earlier.vouches(r):
                part.carried += 1  # approved before: kept in the new seal
                continue
            new += 1
            if is_internal(topic):
                part.listed.append(_shown(r))
                continue
            why = ledger_verdict(leaves, r)
            if why is None:
                part.on_ledger += 1
            else:
                part.refused.append((r.offset, why))
        if new:
            plan.partitions.append(part)
    return plan


def apply_seal_plan(h: Any, principal: Principal) -> dict[str, Any]:
    """Write the seals of the plan when its digest is the approved one and it refuses nothing;
    records the migration on the ledger."""
    log = kafka_log_of(h.ledger.log)
    plan = seal_plan(log, h.ledger.store)
    approved = h.config_changes.resource(RESOURCE).current()
    if approved != plan.digest:
        raise Conflict(
            f"The Kafka seal plan's digest is {plan.digest}, but {RESOURCE} is {approved!r}: "
            f"have it approved first (`hub config propose {RESOURCE} {plan.digest} --reason "
            "...`, then `hub config approve` by a second person); a plan that changed since its "
            "approval is not applied.",
            code="migration_not_approved",
        )
    if plan.refused:
        first = next(p for p in plan.partitions if p.refused)
        offset, why = first.refused[0]
        raise Conflict(
            f"The Kafka seal plan refuses {plan.refused} record(s), e.g. {first.topic!r} "
            f"partition {first.partition} offset {offset}: {why}. Nothing is sealed while a "
            "record is refused: sealing it would make the hub read a record nobody vouches "
            "for. Remove those records (or move the partition's start past them) and plan again.",
            code="migration_refused_records",
        )
    # The leaves are what vouch for the old records: one rewritten in the ledger store (to
    # match a changed record) breaks the tree under the signed checkpoints. Full check first.
    from ledger.verify import verify_ledger

    report = verify_ledger(h.ledger)
    problem = report.first
    if not report.ok and problem is not None:
        raise Conflict(
            f"The ledger does not verify ({problem.describe()}); its leaves are what vouch "
            "for the old records, so nothing is sealed. Run `hub ledger verify --full` and "
            "restore the ledger from a backup first.",
            code="migration_ledger_invalid",
        )
    meta = log.write_seals(plan.seals())
    out = plan.as_dict()
    out["seal_records"] = len(meta)
    h.ledger.record_action(
        principal.id,
        "migration.apply",
        RESOURCE,
        details={
            "digest": plan.digest,
            "partitions": len(plan.partitions),
            "records": sum(len(p.digests) for p in plan.partitions),
        },
        tenant=principal.tenant,
    )
    h.ledger.sync(force_checkpoint=True)
    return out
