"""``POST /v1/erasures``: crypto-shred a data subject (``governance.erasure``); needs
``subject.erase``. Body ``{"subject": "ACC-1", "reason": "DSR-2026-17"}``; 409 under a legal
hold, 403 for a subject another tenant named too (unless the officer has ``tenant.all``);
the answer names the ``hub.audit`` record and the checkpoint that prove it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import authorize, decision_context, hub_of
from hub.api.models import Erasure
from hub.recovery import journal_erasure
from hub.reports import reader_scope

router = APIRouter(tags=["governance"])
log = logging.getLogger(__name__)


class ErasureIn(BaseModel):
    subject: str = Field(min_length=1, max_length=1024)
    reason: str = Field(min_length=1)


@router.post("/v1/erasures", status_code=201, response_model=Erasure)
def post_erasure(
    body: ErasureIn, request: Request, who: Principal = Depends(authorize("subject.erase"))
) -> dict[str, Any]:
    h = hub_of(request)
    # keys are per tenant: an officer limited to its tenant erases that tenant's subject only
    scope = reader_scope(h, who, {}, decision_context(request), f"subject:{body.subject}")
    done = h.eraser.erase(who, body.subject, body.reason, tenant_scope=scope)
    # so that no restored backup brings the subject back
    warning = journal_erasure(h.settings, done, h.ledger.signer)
    if warning:  # the erasure is done; the operator must learn it is not witnessed
        log.warning("%s", warning)
    return done.as_dict()
