"""Nightly retention: apply the retention policies (hub retention set ...) after a dry run.

1. plan     POST /v1/retention/run {"dry_run": true}: what would be deleted, logged for review.
2. apply    POST /v1/retention/run: deletes what expired; each deletion is a retention.delete
            entry on the ledger; legal holds block deletion (they are reported as skipped).
Archival to the cold tier before deletion is added here when object storage tiers land (#16),
and model retraining gets its own DAG when the ML service lands (#14).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import hub_api
import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="hub_retention",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["hub", "retention"],
    doc_md=__doc__,
)
def hub_retention() -> None:
    @task
    def plan() -> dict[str, Any]:
        planned: dict[str, Any] = hub_api.call(
            "POST", "/v1/retention/run", query={"dry_run": "true"}
        )
        print(json.dumps(planned, indent=2, sort_keys=True))
        return planned

    @task
    def apply(planned: dict[str, Any]) -> dict[str, Any]:
        done: dict[str, Any] = hub_api.call("POST", "/v1/retention/run")
        print(json.dumps(done, indent=2, sort_keys=True))
        return {"deleted": len(done["deleted"]), "skipped": len(done["skipped"])}

    apply(plan())


hub_retention()
