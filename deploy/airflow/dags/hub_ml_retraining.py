"""Weekly model retraining (and on demand: trigger it with ``{"model": ..., "share": ...}``).

1. retrain   POST /v1/models/<model>/retrain {share, reason}: the hub trains a new version on a
             fresh cut of the log (its training set pinned to a ledger checkpoint), evaluates it
             beside the champion on the same holdout and makes it the challenger for ``share`` of
             the entity keys. The champion stays: promoting a challenger is a human, two-person
             decision (``hub ml promote`` then a second person approves); this DAG never promotes.
2. report    the new version's holdout metrics against the champion's, and the A/B report of the
             versions in force (GET /v1/models/<model>/ab), written as JSON to
             $HUB_BATCH_OUTPUT/ml/<day>/<model>.json for the people who decide.
Its key (HUB_ML_API_KEY_FILE) belongs to a person with role ml_engineer (model.train and
model.promote: the hub requires both to set a challenger); the batch key cannot train.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import hub_api
import pendulum
from airflow.sdk import dag, get_current_context, task

KEY = "HUB_ML_API_KEY_FILE"


@dag(
    dag_id="hub_ml_retraining",
    schedule="0 4 * * 1",  # Mondays 04:00 UTC
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=15)},
    params={"model": "payment_risk", "share": 0.1},
    tags=["hub", "ml"],
    doc_md=__doc__,
)
def hub_ml_retraining() -> None:
    @task
    def retrain() -> dict[str, Any]:
        params = get_current_context()["params"]
        model, share = str(params["model"]), float(params["share"])
        run_id = get_current_context()["run_id"]
        made: dict[str, Any] = hub_api.call(
            "POST",
            f"/v1/models/{model}/retrain",
            body={"share": share, "reason": f"scheduled retraining (airflow {run_id})"[:500]},
            key_env=KEY,
        )
        if made["stage"] == "CHAMPION":  # the hub never does this; the DAG must not either
            raise hub_api.HubCallFailed(f"{model} v{made['version']} became champion unasked.")
        print(f"{model} v{made['version']}: {made['stage']} (share {made['share']})")
        return made

    @task
    def report(made: dict[str, Any], logical_date: datetime | None = None) -> str:
        assert logical_date is not None
        model, metrics = made["model"], made["metrics"]
        champion = metrics.get("champion")
        mine = metrics.get("holdout", {})
        comparison: dict[str, Any] = {
            "model": model,
            "version": made["version"],
            "stage": made["stage"],
            "share": made["share"],
            "training_set": made["manifest"].get("checkpoint"),
            "holdout": mine,
            "champion": champion,
        }
        if champion:
            theirs = champion.get("holdout", {})
            comparison["delta"] = {
                k: round(float(mine[k]) - float(theirs[k]), 6)
                for k in sorted(set(mine) & set(theirs))
                if isinstance(mine[k], (int, float)) and isinstance(theirs[k], (int, float))
            }
            print(f"{model} v{made['version']} vs champion v{champion.get('version')}:")
            print(json.dumps(comparison["delta"], indent=2, sort_keys=True))
        else:
            print(f"{model} has no champion: v{made['version']} is registered only; two people")
            print(f"promote one with `hub ml promote {model} {made['version']} --reason WHY`.")
        comparison["ab"] = hub_api.call("GET", f"/v1/models/{model}/ab", key_env=KEY)
        path = hub_api.output_dir("ml", logical_date.date().isoformat()) / f"{model}.json"
        path.write_text(json.dumps(comparison, indent=2, sort_keys=True, default=str))
        print(f"evaluation written to {path}")
        return str(path)

    report(retrain())


hub_ml_retraining()
