"""Nightly backup: ``hub backup create`` then ``hub backup verify`` of the backup just made.

The hub's own CLI, not its API: a backup copies the hub's data folder (SQLite log, ledger, key
stores) into the object store, so it runs on the host (or in the pod) that holds that folder, and
its key-encryption key must never reach the API process. The worker that runs this DAG is pinned
there (an Airflow queue, e.g. ``queue="hub-data"``) and has the ``hub`` command installed.

1. create   hub backup create --kek-file $KEK: an incremental backup (only chunks the store
            lacks are uploaded), signed, recorded on the ledger as backup.create.
2. verify   hub backup verify <id> --kek-file $KEK: the signature, the sealed keys and every
            chunk's SHA-256, without restoring; fails the run naming the first bad object.

Settings (environment of the worker, or Airflow Variables of the same names):
  HUB_CLI              the hub command (default ``hub`` on PATH)
  HUB_DATA_DIR         the hub's data folder (default: the hub's own default)
  HUB_BACKUP_KEY_FILE  a file holding the API key of the person responsible for backups
                       (KEY_ID:SECRET; role admin: backup.create and backup.read)
  HUB_BACKUP_KEK_FILE  the key-encryption key (``hub backup kek FILE`` makes one); mount it from
                       Vault, apart from the data folder and the object store (the hub refuses a
                       KEK stored under either)
The object store is the hub's (HUB_OBJECT_STORE, HUB_OBJECT_STORE_DIR or HUB_S3_*), from the
same environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from typing import Any

import hub_api
import pendulum
from airflow.sdk import dag, task


def _setting(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    from airflow.sdk import Variable

    try:
        found = Variable.get(name, default=None)
    except Exception:  # no Variable store reachable: the environment is the only source
        found = None
    return str(found) if found else default


def _hub(*args: str) -> dict[str, Any]:
    kek = _setting("HUB_BACKUP_KEK_FILE")
    key = _setting("HUB_BACKUP_KEY_FILE")
    for name, value in (("HUB_BACKUP_KEK_FILE", kek), ("HUB_BACKUP_KEY_FILE", key)):
        if not value:
            raise hub_api.HubCallFailed(
                f"{name} is not set: give it as the worker's environment or an Airflow Variable "
                "(see this DAG's documentation)."
            )
    command = [_setting("HUB_CLI", "hub") or "hub"]
    data_dir = _setting("HUB_DATA_DIR")
    if data_dir:
        command += ["--data-dir", data_dir]
    command += ["--key-file", str(key), "backup", *args, "--kek-file", str(kek)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=6 * 3600)
    print(done.stderr[-4000:])
    if done.returncode != 0:
        raise hub_api.HubCallFailed(
            f"{' '.join([command[0], 'backup', *args])} failed ({done.returncode}): "
            f"{done.stderr[-2000:]}{done.stdout[-2000:]}"
        )
    print(done.stdout)
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@dag(
    dag_id="hub_backup",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=30)},
    tags=["hub", "backup"],
    doc_md=__doc__,
)
def hub_backup() -> None:
    @task
    def create() -> str:
        made = _hub("create")
        print(f"backup {made['id']}: ledger size {made['ledger_size']}, {made['bytes']} bytes")
        return str(made["id"])

    @task(retries=0)  # a backup that does not verify is an incident, not a transient failure
    def verify(backup_id: str) -> dict[str, Any]:
        checked = _hub("verify", backup_id)
        if not checked.get("ok"):
            raise hub_api.HubCallFailed(f"backup {backup_id} does not verify: {checked}")
        return checked

    verify(create())


hub_backup()
