"""Reconciliation every six hours: the log against the ledger, the views against the log.

1. ledger          POST /v1/ledger/verify: every record of every topic has its leaf, no record
                   changed, dropped or reordered (the ledger's own fsck); fails on any problem.
2. projections     GET /v1/projections: every projection's lag (records of the log not yet in its
                   views) under HUB_MAX_PROJECTION_LAG (default 100000); fails naming the laggards.
The run's outcome is itself evidence: ledger verification runs are in the CC7 population.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import hub_api
import pendulum
from airflow.sdk import dag, task


def _lag(status: dict[str, Any]) -> int:
    lag = status.get("lag")
    if isinstance(lag, dict):
        return sum(int(v) for v in lag.values() if isinstance(v, (int, float)))
    return int(lag or 0)


@dag(
    dag_id="hub_reconciliation",
    schedule="0 */6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["hub", "compliance"],
    doc_md=__doc__,
)
def hub_reconciliation() -> None:
    @task
    def ledger() -> dict[str, int]:
        result = hub_api.call("POST", "/v1/ledger/verify")
        if not result["ok"]:
            raise hub_api.HubCallFailed(f"The ledger does not verify: {result['problems'][:5]}")
        return {"leaves": int(result["leaves"]), "checkpoints": int(result["checkpoints"])}

    @task
    def projections() -> dict[str, int]:
        limit = int(os.environ.get("HUB_MAX_PROJECTION_LAG", "100000"))
        lags = {s["projection"]: _lag(s) for s in hub_api.call("GET", "/v1/projections")}
        behind = {name: lag for name, lag in lags.items() if lag > limit}
        if behind:
            raise hub_api.HubCallFailed(f"Projections lag by more than {limit} records: {behind}")
        return lags

    ledger()
    projections()


hub_reconciliation()
