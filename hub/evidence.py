"""Evidence packs as the application exports them (HTTP ``POST /v1/evidence``, the console's
Ledger page, ``hub evidence export``): one lineage run of ``export.evidence`` that reads the
topics the controls cover and writes ``hub://exports/<pack file name>`` (content-addressed:
``evidence-<manifest digest>.zip``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.bootstrap import Hub
    from ledger.evidence import EvidencePack


def export_evidence_pack(
    hub: Hub,
    since: datetime,
    until: datetime,
    controls: Sequence[str],
    *,
    actor: str,
    tenant_scope: str | None = None,
) -> EvidencePack:
    """``export_pack`` as one lineage run of ``export.evidence`` (see the module docstring);
    the denials queued so far are flushed first, so they belong to the population.
    ``tenant_scope``: the tenant the ``evidence.export`` decision's ``row_filter`` limits the
    exporter to (``ledger.service.tenant_scope_of``), None for every tenant."""
    from core import lineage
    from core.policybundle import PolicyBundle
    from governance.decisions import RecordingPolicyEngine
    from ledger import controls as soc2
    from ledger.evidence import export_pack

    wanted = set(controls)
    read = sorted(  # the topics export_pack selects entries from (its step 2)
        t.name for t in hub.log.topics() if wanted & set(soc2.topic_controls(t.name))
    )
    if isinstance(hub.policy, RecordingPolicyEngine):
        hub.policy.committer.flush()  # denials queued so far belong to the population
    with lineage.tracked(
        hub,
        "export.evidence",
        [lineage.topic_dataset(t) for t in read],
        producer=actor,
        tenant=tenant_scope or "default",  # as its evidence.export action (ledger.evidence)
    ) as run:
        pack = export_pack(
            hub.ledger,
            since,
            until,
            controls,
            actor=actor,
            reader=hub.reader,
            default_policy=PolicyBundle.from_dir().version,
            tenant_scope=tenant_scope,
        )
        run.add_output(lineage.export_dataset(pack.filename))
    return pack
