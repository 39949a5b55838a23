"""WebHdfsObjectStore: the ObjectStore port on Hadoop HDFS through its REST API (WebHDFS).

Why REST and not ``pyarrow.fs.HadoopFileSystem``: pyarrow's HDFS client loads the native
``libhdfs.so`` (JNI), which only Hadoop's binary tarball ships (pyarrow's wheels do not, Debian
has no package, Maven Central has the JVM side only). WebHDFS is served by every NameNode
(``dfs.webhdfs.enabled``, on by default) and needs nothing but HTTP.

Layout: an object ``a/b/c`` is the HDFS file ``<root>/a/b/c``. Write-once (the default):
``put_if_absent`` writes a temporary file ``<dir>/.tmp-<uuid>`` (CREATE, the NameNode redirects
to a DataNode) and RENAMEs it onto the key: HDFS's rename refuses an existing destination
atomically in the NameNode, so two racing writers cannot both win and a reader never sees a
partial object. ``write_once=False`` (scratch) writes the key with ``overwrite=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import requests

from core.errors import HubError
from core.ports.objectstore import (
    BLOCK_BYTES,
    ObjectExists,
    ObjectImmutable,
    ObjectNotFound,
    ObjectStore,
    check_key,
    folder_after,
    too_large,
)

TMP = ".tmp-"


class WebHdfsObjectStore(ObjectStore):
    def __init__(
        self,
        namenode_url: str,
        root: str = "/hub",
        *,
        user: str = "hub",
        write_once: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        self.base = namenode_url.rstrip("/") + "/webhdfs/v1"
        self.root = "/" + root.strip("/")
        self.user = user
        self.write_once = write_once
        self._timeout = timeout_s
        self._http = requests.Session()

    # -- plumbing -------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _call(
        self,
        method: str,
        path: str,
        op: str,
        *,
        data: bytes | None = None,
        stream: bool = False,
        **params: Any,
    ) -> requests.Response:
        query = {"op": op, "user.name": self.user, **params}
        try:
            if data is None:
                return self._http.request(
                    method, self.base + path, params=query, timeout=self._timeout, stream=stream
                )
            # two steps, as the API asks: the NameNode answers 307 with a DataNode's URL
            first = self._http.request(
                method, self.base + path, params=query, allow_redirects=False, timeout=self._timeout
            )
            if first.status_code != 307:
                return first
            return self._http.request(
                method, first.headers["Location"], data=data, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise HubError(
                f"The HDFS NameNode at {self.base} did not answer {op} {path}: {exc}. Check "
                "that it runs (infra/hdfs.sh status) and the URL.",
                code="objectstore_io",
            ) from exc

    def _fail(self, r: requests.Response, what: str) -> HubError:
        try:
            remote = r.json()["RemoteException"]
            message = str(remote.get("message", "")).splitlines()[0][:300]
            reason = f"{remote.get('exception')}: {message}"
        except (ValueError, KeyError, TypeError):
            reason = r.text[:200]
        return HubError(
            f"HDFS refused to {what} ({r.status_code} {reason}).", code="objectstore_io"
        )

    def _status(self, key: str) -> dict[str, Any] | None:
        r = self._call("GET", self._path(key), "GETFILESTATUS")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._fail(r, f"stat {key!r}")
        status: dict[str, Any] = r.json()["FileStatus"]
        return status if status.get("type") == "FILE" else None

    # -- the port -------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        if not self.write_once:
            path = self._path(key)
            r = self._call("PUT", path, "CREATE", data=data, overwrite="true")
            if r.status_code != 201:
                raise self._fail(r, f"write {key!r}")
            return
        if not self.put_if_absent(key, data):
            raise ObjectExists(
                f"The object {key!r} already exists in the write-once store {self.root} on "
                "HDFS; it is never replaced."
            )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        parent = path.rsplit("/", 1)[0]
        tmp = f"{parent}/{TMP}{uuid.uuid4().hex}"
        r = self._call("PUT", tmp, "CREATE", data=data, overwrite="false")
        if r.status_code != 201:
            raise self._fail(r, f"write {key!r}")
        r = self._call("PUT", tmp, "RENAME", destination=path)
        if r.status_code != 200:
            raise self._fail(r, f"rename onto {key!r}")
        if r.json().get("boolean") is True:
            return True
        self._call("DELETE", tmp, "DELETE")
        return False

    def stream(self, key: str, *, max_bytes: int, block: int = BLOCK_BYTES) -> Iterator[bytes]:
        r = self._call("GET", self._path(key), "OPEN", stream=True)
        with r:
            if r.status_code == 404:
                raise ObjectNotFound(f"No object {key!r} in {self.root} on HDFS.")
            if r.status_code != 200:
                raise self._fail(r, f"read {key!r}")
            seen = 0
            try:
                for data in r.iter_content(chunk_size=block):
                    seen += len(data)
                    if seen > max_bytes:
                        raise too_large(key, max_bytes)
                    yield data
            except requests.RequestException as exc:
                raise HubError(
                    f"Reading object {key!r} from HDFS at {self.base} broke off: {exc}.",
                    code="objectstore_io",
                ) from exc

    def get(self, key: str) -> bytes:
        r = self._call("GET", self._path(key), "OPEN")
        if r.status_code == 404:
            raise ObjectNotFound(f"No object {key!r} in {self.root} on HDFS.")
        if r.status_code != 200:
            raise self._fail(r, f"read {key!r}")
        return r.content

    def exists(self, key: str) -> bool:
        return self._status(key) is not None

    def size(self, key: str) -> int:
        status = self._status(key)
        if status is None:
            raise ObjectNotFound(f"No object {key!r} in {self.root} on HDFS.")
        return int(status["length"])

    def list(self, prefix: str = "", *, start_after: str = "") -> list[str]:
        if ".." in prefix.split("/"):
            return []
        start = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        out: list[str] = []
        stack = [start]
        while stack:
            rel = stack.pop()
            r = self._call("GET", f"{self.root}/{rel}".rstrip("/"), "LISTSTATUS")
            if r.status_code == 404:
                continue
            if r.status_code != 200:
                raise self._fail(r, f"list {prefix!r}")
            for st in r.json()["FileStatuses"]["FileStatus"]:
                name = st["pathSuffix"]
                key = f"{rel}/{name}" if rel else name
                if st["type"] == "DIRECTORY":
                    near = key.startswith(prefix) or prefix.startswith(key + "/")
                    if near and folder_after(key + "/", start_after):
                        stack.append(key)
                elif not name.startswith(TMP) and key.startswith(prefix) and key > start_after:
                    out.append(key)
        return sorted(out)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.write_once:
            if self.exists(key):
                raise ObjectImmutable(
                    f"The object {key!r} is in the write-once store {self.root} on HDFS; it "
                    "cannot be deleted."
                )
            return
        r = self._call("DELETE", path, "DELETE")
        if r.status_code not in (200, 404):
            raise self._fail(r, f"delete {key!r}")
