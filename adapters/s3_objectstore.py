"""S3ObjectStore: the ObjectStore port on any S3-compatible server, through the ``minio`` client.

Tested against the server ``infra/s3.sh`` runs (versitygw, Apache-2.0); it works the same
against AWS S3, SeaweedFS or a MinIO deployment someone else runs. Objects live in one bucket
(created on first use) under an optional key prefix.

Write-once: ``put_if_absent`` is a conditional PutObject (``If-None-Match: *``), so the server
itself refuses to replace an object that exists (HTTP 412): two racing writers cannot both win,
and there is no check-then-write window. The bucket is probed once on open: a server that
ignores the header (it overwrites) is refused with ``ConfigError`` for a write-once store,
because the contract could not be kept.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error

from core.errors import ConfigError, HubError, InvalidInput
from core.ports.objectstore import (
    BLOCK_BYTES,
    ObjectExists,
    ObjectImmutable,
    ObjectNotFound,
    ObjectStore,
    check_key,
    read_bounded,
)

T = TypeVar("T")
_PROBE_PREFIX = ".hub-probe/"


class S3ObjectStore(ObjectStore):
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        prefix: str = "",
        secure: bool = False,
        region: str | None = None,
        write_once: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        if not bucket:
            raise ConfigError("The S3 bucket name is empty: set HUB_S3_BUCKET (e.g. 'hub').")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if prefix:
            check_key(prefix.rstrip("/"))
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.write_once = write_once
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503)),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._call(lambda: self._ensure_bucket(), what=f"open bucket {bucket!r}")
        if write_once:
            self._probe_conditional_put()

    # -- helpers ----------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run one client call, translating transport and server errors into ``HubError``."""
        try:
            return fn()
        except S3Error as exc:
            raise HubError(
                f"S3 at {self.endpoint} refused to {what}: {exc.code} ({exc.message}).",
                code="objectstore_io",
            ) from exc
        except ValueError as exc:  # the client's own checks (bucket names, ...)
            raise ConfigError(f"S3 at {self.endpoint} cannot {what}: {exc}.") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise HubError(
                f"S3 at {self.endpoint} cannot be reached to {what}: {exc}. Is the server "
                "running (infra/s3.sh status) and HUB_S3_ENDPOINT right?",
                code="objectstore_unavailable",
            ) from exc

    def _ensure_bucket(self) -> None:
        if not self._client.bucket_exists(self.bucket):
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:  # another process created it meanwhile
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def _probe_conditional_put(self) -> None:
        name = f"{self.prefix}{_PROBE_PREFIX}{uuid.uuid4().hex}"
        first = self._conditional_put(name, b"1")
        second = self._conditional_put(name, b"2")
        self._call(lambda: self._client.remove_object(self.bucket, name), what="remove a probe")
        if not (first and not second):
            raise ConfigError(
                f"The S3 server at {self.endpoint} ignores conditional writes (If-None-Match), "
                "so it cannot keep objects write-once; use a server that honours them "
                "(infra/s3.sh runs one) or a write_once=False store for scratch data."
            )

    def _conditional_put(self, name: str, data: bytes) -> bool:
        try:
            # The public put_object would turn If-None-Match into user metadata.
            self._client._put_object(
                self.bucket,
                name,
                data,
                headers={"If-None-Match": "*", "Content-Type": "application/octet-stream"},
            )
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    # -- the port ---------------------------------------------------------------------------
    def put_if_absent(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        return self._call(lambda: self._conditional_put(name, data), what=f"write {key!r}")

    def put(self, key: str, data: bytes) -> None:
        if self.write_once:
            if not self.put_if_absent(key, data):
                raise ObjectExists(
                    f"Object {key!r} already exists in the write-once bucket {self.bucket!r}; "
                    "objects there are never replaced."
                )
            return
        name = self._name(key)
        self._call(
            lambda: self._client.put_object(self.bucket, name, io.BytesIO(data), len(data)),
            what=f"write {key!r}",
        )

    def get(self, key: str) -> bytes:
        name = self._name(key)

        def fetch() -> bytes:
            response = self._client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return self._call(fetch, what=f"read {key!r}")
        except HubError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in ("NoSuchKey", "NotFound"):
                raise ObjectNotFound(
                    f"No object {key!r} in bucket {self.bucket!r} at {self.endpoint}."
                ) from None
            raise

    def stream(self, key: str, *, max_bytes: int, block: int = BLOCK_BYTES) -> Iterator[bytes]:
        name = self._name(key)
        try:
            response = self._call(
                lambda: self._client.get_object(self.bucket, name), what=f"read {key!r}"
            )
        except HubError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in ("NoSuchKey", "NotFound"):
                raise ObjectNotFound(
                    f"No object {key!r} in bucket {self.bucket!r} at {self.endpoint}."
                ) from None
            raise
        try:
            yield from read_bounded(response.read, key, max_bytes, block)
        except urllib3.exceptions.HTTPError as exc:
            raise HubError(
                f"Reading object {key!r} from {self.endpoint} broke off: {exc}.",
                code="objectstore_io",
            ) from exc
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        name = self._name(key)

        def stat() -> bool:
            try:
                self._client.stat_object(self.bucket, name)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NotFound", "NoSuchObject"):
                    return False
                raise
            return True

        return self._call(stat, what=f"look up {key!r}")

    def size(self, key: str) -> int:
        name = self._name(key)
        try:
            st = self._call(lambda: self._client.stat_object(self.bucket, name), what="stat")
        except HubError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in ("NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"No object {key!r} in bucket {self.bucket!r}.") from None
            raise
        return int(st.size or 0)

    def list(self, prefix: str = "", *, start_after: str = "") -> list[str]:
        for what in (prefix, start_after):
            if what and ("\x00" in what or "\\" in what):
                raise InvalidInput(f"Object key prefix {what!r} is invalid.")
        full = self.prefix + prefix
        cut = len(self.prefix)
        # ListObjectsV2's StartAfter: the server pages from there, so a reader that remembers
        # where it stopped pays for the new keys only. Filtered again here (a server that ignores
        # the parameter must not widen the answer).
        after = self.prefix + start_after if start_after else None

        def names() -> list[str]:
            objs = self._client.list_objects(
                self.bucket, prefix=full, recursive=True, start_after=after
            )
            return [
                o.object_name[cut:]
                for o in objs
                if o.object_name is not None
                and not o.object_name[cut:].startswith(_PROBE_PREFIX)
                and o.object_name[cut:] > start_after
            ]

        return sorted(self._call(names, what=f"list {prefix!r}"))

    def delete(self, key: str) -> None:
        if self.write_once:
            raise ObjectImmutable(
                f"Object {key!r} is in the write-once bucket {self.bucket!r}; it cannot be "
                "deleted through the hub."
            )
        name = self._name(key)
        self._call(lambda: self._client.remove_object(self.bucket, name), what=f"delete {key!r}")
