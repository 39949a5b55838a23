"""The ObjectStore contract on Hadoop HDFS through WebHDFS (``adapters/webhdfs_objectstore.py``).

The server is Hadoop's MiniDFSCluster (one NameNode and one DataNode in a JVM) from the shaded
jars on Maven Central, run by ``infra/hdfs.sh`` (started when missing; skipped with the reason
locally when it cannot start, failed under ``CI=true``). Each test gets its own root folder.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from adapters.webhdfs_objectstore import WebHdfsObjectStore
from core.ports.objectstore import ObjectStore
from tests.contract.objectstore_contract import MakeStore, ObjectStoreContract

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
