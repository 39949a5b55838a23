"""Nightly SOC 2 evidence pack: verify the ledger, export yesterday's pack, check it independently.

Tasks (each a call to the hub's API, see hub_api.py):
1. verify_ledger   POST /v1/ledger/verify; fails the run when the ledger does not verify (a tamper
                   incident: no pack is cut over a broken ledger).
2. export_pack     POST /v1/evidence?from=<day>&to=<day+1>&controls=CC6,CC7,CC8,PI1, written to
                   $HUB_BATCH_OUTPUT/evidence/<day>.zip.
3. check_pack      audit/verify.py bundle <pack> --public-key <the ledger's key>: the pack's
                   manifest, checkpoints and proofs checked by the stand-alone verifier.
The day is the one before the run's logical date (a run on the 25th covers the 24th).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import hub_api
import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(minutes=5)}


def _day(logical_date: datetime) -> str:
    return (logical_date - timedelta(days=1)).date().isoformat()


@dag(
    dag_id="hub_nightly_evidence",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hub", "compliance"],
    doc_md=__doc__,
)
def hub_nightly_evidence() -> None:
    @task
    def verify_ledger() -> int:
        result = hub_api.call("POST", "/v1/ledger/verify")
        if not result["ok"]:
            raise hub_api.HubCallFailed(f"The ledger does not verify: {result['problems'][:5]}")
        return int(result["leaves"])

    @task
    def export_pack(leaves: int, logical_date: datetime | None = None) -> str:
        assert logical_date is not None
        day = _day(logical_date)
        until = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
        data = hub_api.call(
            "POST",
            "/v1/evidence",
            query={"from": day, "to": until, "controls": "CC6,CC7,CC8,PI1"},
            raw=True,
        )
        path = hub_api.output_dir("evidence") / f"{day}.zip"
        path.write_bytes(data)
        print(f"evidence pack for {day}: {path} ({len(data)} bytes, ledger of {leaves} leaves)")
        return str(path)

    @task
    def check_pack(pack: str) -> None:
        hub_api.verify_pack(Path(pack), hub_api.public_key(hub_api.output_dir("evidence")))

    check_pack(export_pack(verify_ledger()))


hub_nightly_evidence()
