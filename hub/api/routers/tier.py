"""The cold tier over HTTP (``hub.tiering``): ``POST /v1/tier/offload`` copies every closed log
segment (all on the ledger) to the object store, as ``hub tier offload`` does
(``retention.write``); ``trim_hot=true`` then cuts the hot log at the cold tier's end and records
the cut on the ledger. The ``hub_retention`` DAG calls it before applying retention, so what
retention deletes from the hot log has already been archived."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from core.ports.policy import Principal
from hub.api.deps import authorize_hub_wide, hub_of

router = APIRouter(tags=["governance"])


class Offloaded(BaseModel):
    topic: str
    partition: int
    segments_offloaded: int
    records_offloaded: int
    hot_start: int | None = None


@router.post("/v1/tier/offload", response_model=list[Offloaded])
def offload(
    request: Request,
    topic: str | None = Query(
        None, min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$", description="One topic"
    ),
    trim_hot: bool = Query(False, description="Then cut the hot log at the cold tier's end."),
    # Every tenant's records (topics are shared): offloading counts them and trim_hot deletes
    # them from the hot log, so decided as the hub's own tenant's, like the retention run.
    who: Principal = Depends(authorize_hub_wide("retention.write", "retention")),
) -> list[dict[str, Any]]:
    from hub.tiering import offload as run

    return run(hub_of(request), who, topic, trim_hot)
