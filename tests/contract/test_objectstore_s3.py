"""The ObjectStore contract on S3 through the ``minio`` client, against the real S3-compatible
server ``infra/s3.sh`` runs (versitygw; started when needed: skipped with the reason locally when
it cannot start, a failure under ``CI=true``). Every test uses its own key prefix in one bucket.
"""

from __future__ import annotations

import os
import uuid

import pytest

from adapters.s3_objectstore import S3ObjectStore
from core.errors import ConfigError, HubError
from core.ports.objectstore import ObjectStore
from tests import infra
from tests.contract.objectstore_contract import MakeStore, ObjectStoreContract


def s3_settings() -> dict[str, str]:
    infra.require("s3", "the S3 ObjectStore contract")
    return {
        "endpoint": f"127.0.0.1:{os.environ.get('HUB_S3_PORT', '19333')}",
        "access_key": os.environ.get("HUB_S3_ACCESS_KEY", "hub-dev"),
        "secret_key": os.environ.get("HUB_S3_SECRET_KEY", "hub-dev-secret"),
    }


@pytest.fixture(scope="module")
def s3() -> dict[str, str]:
    return s3_settings()


class TestS3ObjectStore(ObjectStoreContract):
    @pytest.fixture
    def make_store(self, s3: dict[str, str]) -> MakeStore:
        prefix = f"contract-{uuid.uuid4().hex[:12]}"

        def make(*, write_once: bool = True) -> ObjectStore:
            return S3ObjectStore(
                **s3,
                bucket="hub-contract",
                prefix=f"{prefix}/{'once' if write_once else 'scratch'}",
                write_once=write_once,
            )

        return make

    def test_wrong_credentials_are_named(self, s3: dict[str, str]) -> None:
        with pytest.raises(HubError) as err:
            S3ObjectStore(
                s3["endpoint"], s3["access_key"], "not-the-secret", "hub-contract", prefix="x"
            )
        assert s3["endpoint"] in err.value.message

    def test_unreachable_server_is_named(self) -> None:
        with pytest.raises(HubError) as err:
            S3ObjectStore("127.0.0.1:9", "a", "b", "hub", timeout_s=1.0)
        assert err.value.code == "objectstore_unavailable"
        assert "127.0.0.1:9" in err.value.message

    def test_bad_bucket_name_is_refused(self, s3: dict[str, str]) -> None:
        with pytest.raises((ConfigError, HubError)):
            S3ObjectStore(**s3, bucket="")
