"""MlflowModelRegistry: the ModelRegistry port on MLflow's model registry.

Embedded: MLflow's SQLAlchemy store in one SQLite file under the data folder, artifacts in a
folder beside it, no server. Distributed: an MLflow tracking server (``infra/mlflow.sh``: its
backend store on PostgreSQL, artifacts proxied by the server), named by an ``http://`` URI.

Mapping. A hub model ``name`` is an MLflow registered model of the same name; a hub version is an
MLflow model version tagged ``hub.version`` (MLflow numbers its versions itself, so the tag, not
MLflow's number, is the key). The artifact is logged as ``model/artifact.bin`` on a run of the
``hub-models`` experiment, with its SHA-256 and size as tags, and the version's source is that
folder. Aliases (champion, challenger) are MLflow aliases on the tagged versions: the hub sets them
after the governed ``hub.models`` event; MLflow users see them, but the ledger stays the record of
truth (``ml.models.Models.alias_mismatches`` reports an alias moved in MLflow behind the hub's
back).

MLflow is imported when the adapter is built, never at CLI start-up (it costs seconds).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import Conflict, HubError, NotFound
from core.ports.ml import ModelRegistry, StoredModel

EXPERIMENT = "hub-models"
ARTIFACT = "artifact.bin"
TAG_VERSION = "hub.version"
TAG_SHA = "hub.sha256"
TAG_SIZE = "hub.size"
TAG_META = "hub.metadata"


def embedded_uri(folder: Path) -> str:
    """The SQLite store URI of an embedded registry under ``folder``."""
    return f"sqlite:///{(folder / 'mlflow.sqlite').resolve()}"


class MlflowModelRegistry(ModelRegistry):
    """``tracking_uri``: ``sqlite:///...`` (embedded) or ``http://127.0.0.1:PORT`` (a server).
    ``artifact_root``: where an embedded store keeps artifacts (ignored for a server)."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:  # pragma: no cover - the lock installs it
            raise HubError(
                "HUB_MODEL_REGISTRY=mlflow needs the mlflow package: run `make setup`."
            ) from exc
        self._uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._lock = threading.Lock()
        try:
            exp = self._client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                location = None
                if artifact_root is not None and not tracking_uri.startswith("http"):
                    artifact_root.mkdir(parents=True, exist_ok=True)
                    location = artifact_root.resolve().as_uri()
                self._experiment = self._client.create_experiment(
                    EXPERIMENT, artifact_location=location
                )
            else:
                self._experiment = exp.experiment_id
        except Exception as exc:  # MLflow raises its own types (and requests' for a server)
            if isinstance(exc, HubError):
                raise
            raise HubError(
                f"The MLflow model registry at {_safe(tracking_uri)} cannot be opened: {exc}. "
                "Start it (`bash infra/mlflow.sh start`) or set HUB_MLFLOW_TRACKING_URI."
            ) from exc

    # -- helpers ---------------------------------------------------------------------------------
    def _registered(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def _mlflow_versions(self, name: str) -> list[Any]:
        if not self._registered(name):
            return []
        return list(self._client.search_model_versions(f"name = '{_quote(name)}'"))

    def _tagged(self, name: str, version: int) -> list[Any]:
        """The MLflow versions tagged as hub ``version``, oldest (the hub's own first) first:
        an MLflow user can tag another version alike."""
        found = [
            mv for mv in self._mlflow_versions(name) if mv.tags.get(TAG_VERSION) == str(version)
        ]
        return sorted(found, key=lambda mv: int(mv.version))

    def _find(self, name: str, version: int) -> Any | None:
        found = self._tagged(name, version)
        return found[0] if found else None

    # -- the port --------------------------------------------------------------------------------
    def put(
        self, name: str, version: int, artifact: bytes, metadata: Mapping[str, Any]
    ) -> StoredModel:
        sha = hashlib.sha256(artifact).hexdigest()
        with self._lock:
            existing = self._find(name, version)
            if existing is not None:
                if existing.tags.get(TAG_SHA) != sha:
                    raise Conflict(
                        f"Model {name!r} version {version} is already stored in MLflow with other "
                        f"bytes (sha256 {existing.tags.get(TAG_SHA, '?')[:12]}...): register a "
                        "new version instead."
                    )
                return StoredModel(name, version, sha, len(artifact), dict(metadata))
            if not self._registered(name):
                self._client.create_registered_model(
                    name, description="Registered by the hub; its ledger (hub.models) governs it."
                )
            meta = json.dumps(dict(metadata), sort_keys=True, default=str)
            tags = {
                TAG_VERSION: str(version),
                TAG_SHA: sha,
                TAG_SIZE: str(len(artifact)),
                TAG_META: meta,
            }
            run = self._client.create_run(
                self._experiment, tags=tags, run_name=f"{name}-v{version}"
            )
            run_id = run.info.run_id
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / ARTIFACT
                path.write_bytes(artifact)
                self._client.log_artifact(run_id, str(path), "model")
            self._client.set_terminated(run_id)
            source = f"{run.info.artifact_uri}/model"
            self._client.create_model_version(name, source, run_id=run_id, tags=tags)
        return StoredModel(name, version, sha, len(artifact), dict(metadata))

    def get(self, name: str, version: int, sha256: str | None = None) -> bytes:
        """The bytes of the version tagged ``version`` that hash to ``sha256`` (a version
        another MLflow user tagged alike is passed over), else the oldest tagged one's."""
        with self._lock:
            found = self._tagged(name, version)
            if not found:
                raise NotFound(
                    f"Model {name!r} has no stored version {version} in MLflow: see "
                    "`hub ml models`."
                )
            datas = []
            for mv in found:
                with tempfile.TemporaryDirectory() as tmp:
                    local = self._client.download_artifacts(mv.run_id, f"model/{ARTIFACT}", tmp)
                    data = Path(local).read_bytes()
                if sha256 is None or hashlib.sha256(data).hexdigest() == sha256:
                    return data
                datas.append(data)
            return datas[0]  # no candidate matches: the caller's hash check names the change

    def versions(self, name: str) -> list[StoredModel]:
        with self._lock:
            found = self._mlflow_versions(name)
        out = [
            StoredModel(
                name,
                int(mv.tags[TAG_VERSION]),
                mv.tags.get(TAG_SHA, ""),
                int(mv.tags.get(TAG_SIZE, "0")),
                json.loads(mv.tags.get(TAG_META, "{}")),
            )
            for mv in found
            if TAG_VERSION in mv.tags
        ]
        return sorted(out, key=lambda m: m.version)

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        with self._lock:
            if version is None:
                if alias in self._aliases(name):
                    self._client.delete_registered_model_alias(name, alias)
                return
            mv = self._find(name, version)
            if mv is None:
                raise NotFound(
                    f"Model {name!r} has no stored version {version} in MLflow to name {alias!r}."
                )
            self._client.set_registered_model_alias(name, alias, mv.version)

    def _aliases(self, name: str) -> dict[str, int]:
        """MLflow's aliases mapped back to hub versions (an alias on an untagged version: -1)."""
        if not self._registered(name):
            return {}
        model = self._client.get_registered_model(name)
        by_number = {str(mv.version): mv for mv in self._mlflow_versions(name)}
        out: dict[str, int] = {}
        for alias, number in model.aliases.items():
            mv = by_number.get(str(number))
            tag = None if mv is None else mv.tags.get(TAG_VERSION)
            out[alias] = int(tag) if tag is not None else -1
        return out

    def aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            return self._aliases(name)

    def close(self) -> None:
        """MLflow's client holds no connection the hub must release."""


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _safe(uri: str) -> str:
    """A URI without its password, for messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
