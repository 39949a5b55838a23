"""ChdbViewStore: analytics views in chDB, the ClickHouse engine in-process (embedded default).

The SQL is ``adapters.clickhouse_views``'s, so a ClickHouse server runs the same statements (the
retention cut, ``delete_rows_before``, included: a lightweight DELETE, synchronous here). A
persistent session lives under ``<data dir>/views/chdb``. chDB allows one session path per
process: a second store on another path raises ``ConfigError`` until the first is closed, and a
second *process* cannot open a path in use (use the HTTP API of the running ``hub serve``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from adapters.clickhouse_views import ClickHouseSqlViews
from core.errors import ConfigError, HubError

_OPEN: dict[str, Any] = {}  # path -> [session, users]
_OPEN_LOCK = threading.Lock()
# chDB's session is not safe for concurrent queries: two projection threads querying at once
# deadlock inside chDB (seen with 4.4 under ``hub serve``). Every query takes this lock.
_QUERY_LOCK = threading.RLock()
# ``select_over`` runs a batch smaller than this on one thread (a live batch; a replay's batches
# of tens of thousands of rows keep the engine's default fan-out)
SINGLE_THREAD_ROWS = 20_000


def _open(path: str) -> Any:
    with _OPEN_LOCK:
        if path in _OPEN:
            _OPEN[path][1] += 1
            return _OPEN[path][0]
        if _OPEN:
            other = next(iter(_OPEN))
            raise ConfigError(
                f"chDB already has a session open at {other} in this process and cannot open "
                f"{path} too; close the other view store first."
            )
        try:
            from chdb import session
        except ImportError as exc:
            raise ConfigError(
                "The embedded analytics views need chDB: pip install chdb==4.4.0"
            ) from exc
        with _stderr_captured() as said:
            try:
                sess = session.Session(path)  # type: ignore[no-untyped-call]
            except Exception as exc:
                failed: Exception | None = exc
            else:
                failed = None
        if failed is not None:
            raise _open_error(path, failed, said()) from failed
        _OPEN[path] = [sess, 1]
        return sess


@contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """Hold what native code writes to file descriptor 2 (chDB prints its own ``Code: 76.
    DB::Exception ...`` there before raising) and give it back: written through afterwards when
    the block succeeds, read by the caller when it fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        text: list[str] = []
        ok = False
        try:
            yield lambda: "".join(text)
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text.append(held.read().decode("utf-8", "replace"))
            if ok and text[0] and not _is_lock_message(text[0]):
                sys.stderr.write(text[0])


def _is_lock_message(text: str) -> bool:
    return "Cannot lock file" in text or "CANNOT_OPEN_FILE" in text


def _open_error(path: str, exc: Exception, said: str) -> ConfigError:
    """chDB's own error, translated: a held folder (ClickHouse code 76, its ``status`` file
    locked) means another process, usually ``hub serve``, has the views open."""
    text = f"{exc}\n{said}"
    if _is_lock_message(text) or _status_locked(path):
        return ConfigError(
            f"The analytics views folder {path} is held by another process (a running `hub "
            "serve`?); chDB lets only one process open it. Query through that server's HTTP "
            "API (POST /v1/query), or stop `hub serve` and try again.",
            code="views_locked",
        )
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"chDB cannot open its data folder {path}: {first}")


def _status_locked(path: str) -> bool:
    """True when another process holds the lock on ``<path>/status`` (ClickHouse's own)."""
    try:
        with open(Path(path) / "status", "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _release(path: str) -> None:
    with _OPEN_LOCK:
        entry = _OPEN.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _OPEN[path]
            with _QUERY_LOCK:
                entry[0].close()


class ChdbViewStore(ClickHouseSqlViews):
    shared = False  # one process's own files: one writer by construction (no fence needed)

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        Path(path).mkdir(parents=True, exist_ok=True)
        self._path = str(Path(path).resolve())
        self._session = _open(self._path)
        self._closed = False

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        try:
            with _QUERY_LOCK:
                # checked under the lock that ``close`` takes: a thread that checked before a
                # close and ran after it would query a destroyed session (the process aborts)
                if self._closed:
                    raise HubError("The chDB view store is closed.", code="views_closed")
                try:
                    if params:
                        return self._session.query(sql, fmt, params=dict(params))
                    return self._session.query(sql, fmt)
                except Exception:
                    # chDB 4.4 leaves a query stopped at its time bound half-answered: the
                    # session's next Arrow answer is then unreadable ("Unexpected empty message
                    # in IPC file format"). One text query reads the rest away.
                    with contextlib.suppress(Exception):  # the first error is the one to tell
                        self._session.query("SELECT 1", "CSV")
                    raise
        except HubError:
            raise
        except Exception as exc:  # chDB raises ChdbError / RuntimeError
            raise HubError(
                f"chDB failed on {sql[:200]!r}: {str(exc).strip()[:500]}", code="views_error"
            ) from exc

    def _run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "CSV", params)

    def _arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        result: pa.Table = self._query(sql, "ArrowTable", params)
        return result

    def _insert(self, table: str, columns: Sequence[str], data: pa.Table) -> None:
        """One INSERT of ``data``: its rows are committed together when it returns.

        The rows go in as Arrow IPC bytes through chDB's streaming insert (``send_insert``), not
        as ``INSERT ... SELECT FROM Python(...)``: a live batch makes one insert per table plus
        the positions insert, each of a few hundred rows, and measured with the market bars
        that costs about 7 ms per insert against 17 ms (the Python() table function's setup).
        ``finish`` commits; leaving the ``with`` block without it (an error) cancels the insert.
        """
        sql = f"INSERT INTO {table} ({', '.join(columns)})"
        data = data.select(list(columns))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        payload = sink.getvalue().to_pybytes()
        try:
            with _QUERY_LOCK:
                if self._closed:  # under the lock, as in ``_query``
                    raise HubError("The chDB view store is closed.", code="views_closed")
                with self._session.send_insert(sql, "ArrowStream") as inserter:
                    inserter.append(payload)
                    inserter.finish()
        except HubError:
            raise
        except Exception as exc:  # chDB raises RuntimeError
            raise HubError(
                f"chDB failed on {sql[:200]!r}: {str(exc).strip()[:500]}", code="views_error"
            ) from exc

    def _arrow_with(self, sql: str, probe: pa.Table) -> pa.Table:
        __probe__ = probe  # noqa: F841 - read by chDB's Python() table function
        result: pa.Table = self._query(sql, "ArrowTable", None)
        return result

    can_select_over = True

    def select_over(self, sql: str, data: pa.Table) -> pa.Table:
        # the projection's SQL folds; chDB's Python() reads ``__batch__`` from this frame.
        # A live batch (a few hundred rows) runs on one thread: fanned out, the query waits for
        # every pipeline thread to be scheduled, which on a loaded machine costs more than the
        # work (SINGLE_THREAD_ROWS).
        __batch__ = data  # noqa: F841
        if data.num_rows < SINGLE_THREAD_ROWS:
            sql = f"{sql}\nSETTINGS max_threads = 1"
        result: pa.Table = self._query(sql, "ArrowTable", None)
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._path)
