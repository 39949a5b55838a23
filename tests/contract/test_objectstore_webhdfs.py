"""The ObjectStore contract on Hadoop HDFS through WebHDFS (``adapters/webhdfs_objectstore.py``).

The server is Hadoop's MiniDFSCluster (one NameNode and one DataNode in a JVM) from the shaded
jars on Maven Central, run by ``infra/hdfs.sh`` (started when missing; skipped with the reason
locally when it cannot start, failed under ``CI=true``). Each test gets its own root folder.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from adapters.webhdfs_objectstore import WebHdfsObjectStore
from core.ports.objectstore import ObjectStore
from hub.settings import load_settings
from tests.contract.objectstore_contract import MakeStore, ObjectStoreContract
from tests.integration.test_backup import (
    backup_create,
    ledger_root,
    make_env,
    publish_accounts,
    restore_args,
    run,
)

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "hdfs.sh"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def hdfs_url() -> str:
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=400
        )
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, output = False, str(exc)
    if not ok:
        reason = f"HDFS NOT AVAILABLE: 'infra/hdfs.sh start' failed.\n{output[-3000:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return f"http://127.0.0.1:{os.environ.get('HUB_HDFS_HTTP_PORT', '19070')}"


@pytest.fixture(scope="module")
def namenode() -> str:
    return hdfs_url()


class TestWebHdfsObjectStore(ObjectStoreContract):
    @pytest.fixture
    def make_store(self, namenode: str) -> MakeStore:
        root = f"/hub-tests/{uuid.uuid4().hex[:12]}"

        def make(*, write_once: bool = True) -> ObjectStore:
            return WebHdfsObjectStore(
                namenode,
                f"{root}/{'once' if write_once else 'scratch'}",
                user=getpass.getuser(),  # the MiniDFSCluster's superuser: the JVM's user
                write_once=write_once,
            )

        return make


# -- a backup and restore through this store (HUB_OBJECT_STORE=hdfs) ---------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data folder, an object folder and a KEK apart from both (as in test_backup.py)."""
    return make_env(tmp_path, monkeypatch)


def test_backup_and_restore_through_hdfs(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HUB_OBJECT_STORE=hdfs``: the backup's chunks, sealed keys, manifest and signature go to
    Hadoop's MiniDFSCluster (``infra/hdfs.sh``) through WebHDFS; the restore reads them back,
    with every check, and a changed chunk on HDFS fails it naming the object. (Here, not in
    tests/integration/test_backup.py, so that it runs in the process that started the cluster.)"""
    import getpass

    from hub.bootstrap import build_object_store
    from storage.backup import CHUNKS

    root = f"/hub-backup-tests/{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HUB_OBJECT_STORE", "hdfs")
    monkeypatch.setenv("HUB_HDFS_URL", hdfs_url())
    monkeypatch.setenv("HUB_HDFS_ROOT", root)
    monkeypatch.setenv("HUB_HDFS_USER", getpass.getuser())  # the MiniDFSCluster's superuser
    publish_accounts(env["data"], ["ACC-7001", "ACC-7002"])
    made = backup_create(env)
    assert not env["objects"].exists()  # nothing went to the local folder
    store = build_object_store(load_settings(data_dir=env["data"]))
    assert type(store).__name__ == "WebHdfsObjectStore"
    chunks = store.list(CHUNKS)
    assert chunks and store.list(f"backups/{made['id']}/")
    r = run(*restore_args(env))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ledger"]["root"] == made["ledger_root"]
    assert ledger_root(env["restored"], made["ledger_size"])[1] == made["ledger_root"]
    # one changed byte in a chunk held by HDFS: the restore names it and leaves nothing behind
    scratch = build_object_store(load_settings(data_dir=env["data"]), write_once=False)
    victim = chunks[0]
    data = bytearray(scratch.get(victim))
    data[len(data) // 2] ^= 1
    scratch.put(victim, bytes(data))
    again = env["restored"].parent / "hub-2"
    r = run(*restore_args({**env, "restored": again}))
    assert r.exit_code != 0 and victim in r.output, r.output
    assert not again.exists()
