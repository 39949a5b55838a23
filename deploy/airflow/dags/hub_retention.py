"""Nightly retention: archive to the cold tier, then apply the retention policies after a dry run.

1. plan     POST /v1/retention/run {"dry_run": true}: what would be deleted, logged for review.
2. archive  POST /v1/tier/offload (as ``hub tier offload``): every closed segment of the domain
            topics (HUB_TIER_SEGMENT_RECORDS offsets, all on the ledger) is copied to the object
            store, so what retention then cuts from the hot log is already archived. With
            HUB_TIER_TRIM_HOT=true on the worker it also cuts the hot log at the cold tier's end
            (recorded on the ledger; the hub reads past it when it runs with HUB_COLD_TIER=true).
3. apply    POST /v1/retention/run: deletes what expired; each deletion is a retention.delete
            entry on the ledger; legal holds block deletion (they are reported as skipped).
Model retraining has its own DAG (hub_ml_retraining).
"""

from __future__ import annotations

import json
import os
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
    def archive(planned: dict[str, Any]) -> dict[str, int]:
        trim = os.environ.get("HUB_TIER_TRIM_HOT", "false").lower() == "true"
        rows = hub_api.call(
            "POST", "/v1/tier/offload", query={"trim_hot": "true" if trim else "false"}
        )
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return {
            "segments": sum(int(r["segments_offloaded"]) for r in rows),
            "records": sum(int(r["records_offloaded"]) for r in rows),
        }

    @task
    def apply(archived: dict[str, int]) -> dict[str, Any]:
        done: dict[str, Any] = hub_api.call("POST", "/v1/retention/run")
        print(json.dumps(done, indent=2, sort_keys=True))
        return {"deleted": len(done["deleted"]), "skipped": len(done["skipped"])}

    apply(archive(plan()))


hub_retention()
