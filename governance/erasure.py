"""Erasure of a data subject by crypto-shredding (``hub erase SUBJECT --reason ...``).

The subject's PII was encrypted under its own key before it entered the log
(``governance.shredding``), so erasing it never rewrites the log: the audit ledger's leaves,
which commit to the stored bytes, keep verifying. ``erase`` (the caller has asked the policy
decision point for ``subject.erase`` first):

1. refuses without a reason, and refuses a subject under a legal hold (``subject:<id>``);
2. destroys every version of the subject's key (``KeyStore.destroy``: irreversible, idempotent).
   From here on every log read, quarantine entry and projection fold sees ``"[erased]"`` where
   the PII was, and a late event naming the subject is refused at ingest;
3. rebuilds the projections that store PII columns (replay into a new table and swap, as
   ``hub projection rebuild`` does), so no view row still holds the subject's plaintext;
   exports are queries of the views, so they hold none either;
4. records ``subject.erase`` on the audit ledger (actor, reason, whether a key existed, the
   projections rebuilt) and signs a checkpoint at once, so the erasure itself is provable.

A crash between 2 and 4 leaves the key destroyed but the erasure unrecorded; running the same
command again is safe (step 2 is idempotent) and completes 3 and 4. Other processes that cache
keys stop decrypting within the KeyStore's documented cache lifetime (``keystore_cache_ttl_s``);
a projection running in another process (``hub serve``) keeps the rows it already wrote until it
is rebuilt there, so run ``hub erase`` against the serving hub's API (``POST /v1/erasures``)
when one is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.errors import Conflict, InvalidInput
from hub.ports.keystore import check_subject

if TYPE_CHECKING:
    from hub.bootstrap import Hub
    from hub.ports.policy import Principal

ACTION = "subject.erase"


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did; ``audit_offset`` is the ``hub.audit`` record naming it and
    ``checkpoint_size`` the size of the signed checkpoint that covers it."""

    subject: str
    reason: str
    actor: str
    key_existed: bool
    projections_rebuilt: tuple[str, ...] = ()
    audit_offset: int | None = None
    checkpoint_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "reason": self.reason,
            "actor": self.actor,
            "key_existed": self.key_existed,
            "projections_rebuilt": list(self.projections_rebuilt),
            "audit_offset": self.audit_offset,
            "checkpoint_size": self.checkpoint_size,
        }


def pii_projections() -> list[str]:
    """The projections whose tables store PII columns (rebuilt by an erasure)."""
    from projections.catalog import PROJECTIONS

    return [p.name for p in PROJECTIONS if any(c.pii for t in p.tables for c in t.columns)]


def erase(hub: Hub, principal: Principal, subject: str, reason: str) -> Erasure:
    """Erase ``subject`` (see the module docstring); raises ``Conflict`` under a legal hold."""
    from governance.retention import Governance

    check_subject(subject)
    if not reason.strip():
        raise InvalidInput(
            "An erasure needs a reason (--reason), e.g. the data subject's request id.",
            code="reason_required",
        )
    if Governance(hub).is_held(f"subject:{subject}"):  # 1.
        raise Conflict(
            f"Data subject {subject!r} is under a legal hold: erasure is refused until the hold "
            "is released (`hub legal-hold list`).",
            code="legal_hold",
        )
    existed = hub.keystore.exists(subject)
    hub.keystore.destroy(subject)  # 2.
    rebuilt = []
    for name in pii_projections():  # 3.
        hub.projections.rebuild(name)
        rebuilt.append(name)
    meta = hub.ledger.record_action(  # 4.
        principal.id,
        ACTION,
        f"subject:{subject}",
        details={"reason": reason, "key_existed": existed, "projections_rebuilt": rebuilt},
        tenant=principal.tenant,
    )
    synced = hub.ledger.sync(force_checkpoint=True)
    return Erasure(
        subject=subject,
        reason=reason,
        actor=principal.id,
        key_existed=existed,
        projections_rebuilt=tuple(rebuilt),
        audit_offset=meta.offset,
        checkpoint_size=synced.size,
    )
