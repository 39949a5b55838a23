"""The ModelRegistry contract on an MLflow tracking server backed by PostgreSQL (the distributed
footprint: ``infra/mlflow.sh`` starts it, with ``infra/postgres.sh``); skipped loudly locally when
it cannot start, required under CI. Each test uses its own model names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from core.errors import HubError
from core.ports.ml import ModelRegistry, StoredModel
from tests import infra
from tests.contract.ml_contract import ModelRegistryContract


@pytest.fixture(scope="module")
def mlflow_url() -> str:
    return infra.mlflow_url("the MLflow-server ModelRegistry contract")


class _Prefixed(ModelRegistry):
    """Gives each test its own registered-model names on the shared server."""

    def __init__(self, inner: ModelRegistry, prefix: str) -> None:
        self._inner, self._prefix = inner, prefix

    def put(
        self, name: str, version: int, artifact: bytes, metadata: Mapping[str, Any]
    ) -> StoredModel:
        stored = self._inner.put(self._prefix + name, version, artifact, metadata)
        return StoredModel(name, stored.version, stored.sha256, stored.size, stored.metadata)

    def get(self, name: str, version: int, sha256: str | None = None) -> bytes:
        return self._inner.get(self._prefix + name, version, sha256)

    def versions(self, name: str) -> list[StoredModel]:
        return [
            StoredModel(name, v.version, v.sha256, v.size, v.metadata)
            for v in self._inner.versions(self._prefix + name)
        ]

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        self._inner.set_alias(self._prefix + name, alias, version)

    def aliases(self, name: str) -> dict[str, int]:
        return self._inner.aliases(self._prefix + name)


class TestMlflowServerModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, mlflow_url: str) -> Iterator[ModelRegistry]:
        from adapters.mlflow_models import MlflowModelRegistry

        r = MlflowModelRegistry(mlflow_url)
        yield _Prefixed(r, f"t{uuid.uuid4().hex[:10]}-")
        r.close()


def test_an_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.mlflow_models import MlflowModelRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(HubError, match=r"infra/mlflow\.sh start"):
        MlflowModelRegistry("http://127.0.0.1:1")
