"""Daily reports from the projection views: trading volumes, payment corridors, data quality.

Each report is one guarded query (POST /v1/query, the caller's tenant and masking apply) written as
CSV to $HUB_BATCH_OUTPUT/reports/<day>/<name>.csv, plus the ingest quality counters as JSON.
Every query is a lineage run of ``export.query`` in the hub, so the catalog shows who read what.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import hub_api
import pendulum
from airflow.sdk import dag, task

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

    query_report.expand(name=sorted(REPORTS))
    quality()


hub_daily_reports()
