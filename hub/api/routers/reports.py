"""Signed reports over HTTP (``hub.reports``), for batch workers on another host (the Airflow
DAG ``hub_daily_reports``): ``POST /v1/reports`` builds, signs, keeps and records one report
(``report.run``) and answers its id and manifest summary; ``GET /v1/reports/{report_id}`` returns
its signed pack (``report.read``), which ``audit/verify.py bundle`` checks offline with the
ledger's public key. Both keep to the reader's tenant scope (``report_scope``). The
console's pages under ``/ui/reports`` use the same functions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from core.ports.policy import Principal
from hub.api.deps import authorize, decision_context, hub_of, principal_of
from hub.api.models import binary

router = APIRouter(tags=["reports"])


def report_scope(request: Request) -> str | None:
    """The tenant the request's allowed ``report.run``/``report.read`` decision limits its
    reader to (``hub.reports.reader_scope``); None for every tenant. A report is cut to it, and
    only reports cut to it are listed and read (``hub.reports`` contract 4)."""
    from hub.reports import reader_scope

    return reader_scope(
        hub_of(request),
        principal_of(request),
        request.state.decision.row_filter,
        decision_context(request),
    )


REPORT_ID = Annotated[str, Path(min_length=36, max_length=36, pattern="^[0-9a-f-]{36}$")]


class ReportIn(BaseModel):
    kind: str = Field(
        pattern="^(compliance-daily|data-quality|trading-daily|access-review)$",
        description="compliance-daily, data-quality, trading-daily or access-review",
    )
    day: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="The UTC day of a compliance-daily or trading-daily report, the last day "
        "of an access-review's period (default yesterday).",
    )
    days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        description="The access review's period in days, ending with `day` (default 30); only "
        "for access-review.",
    )


class ReportMade(BaseModel):
    report_id: str
    kind: str
    day: str | None
    created_at: str
    checkpoint: dict[str, Any] = Field(description="The ledger checkpoint the report is cut at.")
    manifest_sha256: str
    summary: dict[str, Any]


@router.post("/v1/reports", status_code=201, response_model=ReportMade)
def run_report(
    body: ReportIn,
    request: Request,
    principal: Principal = Depends(authorize("report.run", "reports")),
) -> dict[str, Any]:
    from hub.reports import run_report as run

    made = run(
        hub_of(request),
        principal,
        body.kind,
        body.day,
        body.days,
        tenant_scope=report_scope(request),
    )
    head = json.loads(json.dumps(made.manifest, default=str))
    return {
        "report_id": made.report_id,
        "kind": made.kind,
        "day": head.get("day"),
        "created_at": head["created_at"],
        "checkpoint": head["checkpoint"],
        "manifest_sha256": made.manifest_sha256,
        "summary": head["summary"],
    }


@router.get("/v1/reports/{report_id}", response_class=Response, responses=binary("application/zip"))
def get_report(
    report_id: REPORT_ID,
    request: Request,
    _: Principal = Depends(authorize("report.read", "reports")),
) -> Response:
    from hub.reports import find_report

    data = find_report(hub_of(request), report_id, report_scope(request))[1]
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="report-{report_id}.zip"'},
    )
