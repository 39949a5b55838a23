"""Daily reports: the hub's signed reports, plus CSV extracts from the projection views.

1. signed_report   for compliance-daily (the day before the run's logical date) and data-quality:
                   POST /v1/reports {kind, day} builds, signs (the ledger's key), keeps and records
                   the report on hub.reports; GET /v1/reports/<id> fetches its pack, written to
                   $HUB_BATCH_OUTPUT/reports/<day>/<kind>.zip, then checked offline by the
                   stand-alone verifier (audit/verify.py bundle --public-key <the ledger's key>).
                   A pack that does not verify fails the run.
2. query_report    one guarded query (POST /v1/query, the caller's tenant and masking apply)
                   written as CSV to $HUB_BATCH_OUTPUT/reports/<day>/<name>.csv; every query is a
                   lineage run of ``export.query`` in the hub, so the catalog shows who read what.
3. quality         the ingest quality counters (GET /v1/quality/stats) as JSON.
The batch key needs report.run and report.read (role compliance_officer).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import hub_api
import pendulum
from airflow.sdk import dag, task

SIGNED = ["compliance-daily", "data-quality"]  # hub/reports.py KINDS
REPORTS = {
    "volumes_by_instrument": (
        "SELECT instrument, currency, sum(volume) AS volume, count() AS bars "
        "FROM ohlcv_1h GROUP BY instrument, currency ORDER BY instrument, currency",
        "analytics",
    ),
    "payment_status": (
        "SELECT status, currency, count(*) AS payments FROM payment_status "
        "GROUP BY status, currency ORDER BY status, currency",
        "transactional",
    ),
}


@dag(
    dag_id="hub_daily_reports",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["hub", "reports"],
    doc_md=__doc__,
)
def hub_daily_reports() -> None:
    @task
    def signed_report(kind: str, logical_date: datetime | None = None) -> str:
        assert logical_date is not None
        day = (logical_date - timedelta(days=1)).date().isoformat()
        body = {"kind": kind, "day": day} if kind == "compliance-daily" else {"kind": kind}
        made = hub_api.call("POST", "/v1/reports", body=body)
        folder = hub_api.output_dir("reports", logical_date.date().isoformat())
        path = folder / f"{kind}.zip"
        path.write_bytes(hub_api.call("GET", f"/v1/reports/{made['report_id']}", raw=True))
        hub_api.verify_pack(path, hub_api.public_key(folder))
        print(
            f"{kind} report {made['report_id']} (day {made['day']}, ledger checkpoint "
            f"{made['checkpoint']['size']}): {path}; summary "
            f"{json.dumps(made['summary'], sort_keys=True)[:2000]}"
        )
        return str(path)

    @task
    def query_report(name: str, logical_date: datetime | None = None) -> str:
        assert logical_date is not None
        sql, store = REPORTS[name]
        data = hub_api.call(
            "POST", "/v1/query", body={"sql": sql, "format": "csv", "store": store}, raw=True
        )
        path = hub_api.output_dir("reports", logical_date.date().isoformat()) / f"{name}.csv"
        path.write_bytes(data)
        rows = data.count(b"\n") - 1
        print(f"{name}: {path} ({rows} rows)")
        return str(path)

    @task
    def quality(logical_date: datetime | None = None) -> str:
        assert logical_date is not None
        stats = hub_api.call("GET", "/v1/quality/stats")
        path = hub_api.output_dir("reports", logical_date.date().isoformat()) / "quality.json"
        path.write_text(json.dumps(stats, indent=2, sort_keys=True))
        return str(path)

    signed_report.expand(kind=SIGNED)
    query_report.expand(name=sorted(REPORTS))
    quality()


hub_daily_reports()
