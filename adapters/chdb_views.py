"""ChdbViewStore: analytics views in chDB, the ClickHouse engine in-process (embedded default).

The SQL is ``adapters.clickhouse_views``'s, so a ClickHouse server runs the same statements (the
retention cut, ``delete_rows_before``, included: a lightweight DELETE, synchronous here). A
persistent session lives under ``<data dir>/views/chdb``. chDB allows one session path per
process: a second store on another path raises ``ConfigError`` until the first is closed, and a
second *process* cannot open a path in use (use the HTTP API of the running ``hub serve``).

Analyst queries (``query``) and the projection writes of every tenant share that one session,
and chDB deadlocks on concurrent queries of a session, so they take turns under one lock. A
query therefore runs here for at most ``inline_seconds`` (0.25 s: most answer in a few ms);
one that needs longer is stopped and run again in a reader process (``adapters.chdb_reader``)
on a hard-linked snapshot of the folder taken at the same step boundary, with what is left of
its time bound, while the writes go on. The query is the same text in both places: rewritten
once by ``core.sqlguard`` (grants, tenant scope, masks) with ``readonly = 1`` and its time,
memory and row bounds. At most ``readers`` reader processes run; a query that finds none free
within its time bound is refused (``query_readers_busy``, retry).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from adapters import chdb_reader
from adapters.clickhouse_views import DB, ClickHouseSqlViews, bounded, query_error, timed_out
from adapters.view_setaside import set_aside
from core.childenv import child_environment
from core.errors import ConfigError, HubError, Retryable
from core.ports.views import SetAside, ViewGrant

_OPEN: dict[str, Any] = {}  # path -> [session, users]
_OPEN_LOCK = threading.Lock()
# chDB's session is not safe for concurrent queries: two projection threads querying at once
# deadlock inside chDB (seen with 4.4 under ``hub serve``). Every query takes this lock.
_QUERY_LOCK = threading.RLock()
# ``select_over`` runs a batch smaller than this on one thread (a live batch; a replay's batches
# of tens of thousands of rows keep the engine's default fan-out)
SINGLE_THREAD_ROWS = 20_000
# An analyst query runs in the writers' session for at most this long; past it, in a reader
# process on a snapshot (``query``). Bounds how long one query holds every tenant's writes.
INLINE_SECONDS = 0.25
READERS = 2  # reader processes at most, per store
# After a query of a tenant fell over to a reader, that tenant's queries skip the writers'
# session for this long (``_fell_over``)
SLOW_MEMORY_S = 10.0
# Seconds a reader may run past a query's own bound (chDB stops it there) before it is killed:
# a reader stuck in chDB never holds a caller longer than this
READER_GRACE_S = 5.0


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
    broken = _broken_definitions(path, said)
    if broken:
        # chDB's message quotes the text it failed on: kept out of the reason (it goes to the
        # log and `hub status`), since a metadata file may be a link to a file the hub can read
        # and whoever wrote the link cannot (a key)
        kind = _KIND.search(said)
        what = kind[1].strip() if kind else "the definition cannot be parsed"
        reason = f"chDB: {what} in {', '.join(broken)}"
        return ViewsUnreadable(
            f"chDB cannot read the definitions {', '.join(broken)} of its data folder {path}: "
            f"{what}",
            files=broken,
            reason=reason,
        )
    return ConfigError(f"chDB cannot open its data folder {path}: {first}")


class ViewsUnreadable(ConfigError):
    """chDB could not read a stored definition (a metadata ``.sql`` file) of its folder."""

    def __init__(self, message: str, files: Sequence[str], reason: str) -> None:
        super().__init__(message, code="views_unreadable")
        self.files = tuple(files)
        self.reason = reason


# the kind of parse failure only ("Empty query", "Syntax error"), never the text it quotes
_KIND = re.compile(r"DB::Exception: ((?:Empty query|Syntax error)) \(in file")
_NAMED = re.compile(r"(?:in|metadata) file (\S+?\.sql)")


def _broken_definitions(path: str, said: str) -> list[str]:
    """The metadata files of ``path`` chDB named as unreadable in ``said`` (its own message)
    and any other that is empty or does not hold an ``ATTACH`` statement (``path``-relative).
    Empty when chDB named none: the failure was something else (kept as it is)."""
    named = set(_NAMED.findall(said))
    if not named:
        return []
    root = Path(path)
    for f in [*root.glob("metadata/*.sql"), *root.glob("store/*/*/*.sql")]:
        try:
            with open(f, "rb") as fh:
                head = fh.read(64).lstrip()
        except OSError:
            continue
        if not head.startswith(b"ATTACH"):
            named.add(str(f.relative_to(root)))
    return sorted(named)


def _only_views(files: Sequence[str], views: Callable[[str], bool]) -> bool:
    """Whether every one of ``files`` (folder-relative) is the metadata file of a table of the
    views' database that the hub keeps as a view (``views``): ``store/<x>/<uuid>/<name>.sql``;
    the database's own file (``metadata/...``) never is."""
    return bool(files) and all(
        len(Path(f).parts) == 4 and Path(f).parts[0] == "store" and views(Path(f).stem)
        for f in files
    )


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


class ReadersBusy(Retryable):
    code = "query_readers_busy"


class _Reader:
    """One reader process (``adapters.chdb_reader``) and its pipes; one request at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", chdb_reader.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the hub is the parent's to handle
            env=child_environment(),  # an analyst's SQL: none of the hub's secrets
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, path: str, sql: str, timeout: float) -> tuple[bytes, bytes] | None:
        """(status, payload) of ``sql`` over snapshot ``path``, or None when the reader died or
        ran past ``timeout`` (it is killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        body = json.dumps({"path": path, "sql": sql}).encode()
        killer = threading.Timer(timeout, self.proc.kill)
        killer.start()
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
            self.proc.stdin.flush()
            head = self.proc.stdout.read(9)
            if len(head) < 9:
                return None
            n = struct.unpack(">Q", head[1:])[0]
            payload = self.proc.stdout.read(n)
            if len(payload) < n:
                return None
            return head[:1], payload
        except (BrokenPipeError, OSError):
            return None
        finally:
            killer.cancel()

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


class ChdbViewStore(ClickHouseSqlViews):
    shared = False  # one process's own files: one writer by construction (no fence needed)

    def __init__(
        self,
        path: str | Path,
        may_set_aside: Callable[[str, Sequence[str]], None] | None = None,
        views: Callable[[str], bool] | None = None,
    ) -> None:
        """``may_set_aside(reason, files)``, asked before an unreadable folder is moved aside,
        raises to keep it where it is (the composition root's: a rebuild from the log would
        lose rows retention cut from it); the error then stops the store from opening.
        ``views(name)``: whether the hub keeps table ``name`` as a view (a definition, no
        rows: an aggregate's ``<t>__p``, every read view): when only such definitions are
        unreadable, those files alone are moved aside and ``ensure`` makes them again; no
        row is lost and nothing is folded again."""
        super().__init__()
        Path(path).mkdir(parents=True, exist_ok=True)
        self._path = str(Path(path).resolve())
        # snapshots of the analyst queries' readers: a sibling folder (hard links need the same
        # file system); one left by a crash may link erased values, so it goes now
        self._snapshots = f"{self._path}.read"
        shutil.rmtree(self._snapshots, ignore_errors=True)
        self.set_aside: SetAside | None = None
        try:
            try:
                self._session = _open(self._path)
            except ViewsUnreadable as exc:
                # only view definitions broken (a start on a full disk left one empty): those
                # files go aside, the folder opens without them, ``ensure`` makes them again
                if views is None or not _only_views(exc.files, views):
                    raise
                self.set_aside = set_aside(
                    [Path(self._path) / f for f in exc.files],
                    exc.files,
                    exc.reason,
                    beside=Path(self._path + "-definitions"),
                    then="only view definitions were unreadable: the store opened without "
                    "them and made them again; every row kept, nothing folded again",
                )
                self._session = _open(self._path)
        except ViewsUnreadable as exc:
            # derived state: the unreadable folder goes aside whole (its definitions, parts and
            # positions only make sense together) and the projections fold a new one from the
            # log; better than a hub that does not start until someone moves it by hand
            if may_set_aside is not None:
                may_set_aside(exc.reason, exc.files)
            self.set_aside = set_aside([Path(self._path)], exc.files, exc.reason)
            Path(self._path).mkdir(parents=True, exist_ok=True)
            self._session = _open(self._path)
        else:
            # asked only by the store that opened the session: another store object of this
            # process already uses the folder (and asked when it opened it)
            with _OPEN_LOCK:
                first = _OPEN[self._path][1] == 1
            broken = self._broken_parts() if first else []
            if broken:
                # chDB opened, but without parts it found damaged (it detaches them at start,
                # silently): the views would answer without their rows while their positions
                # say they are up to date. The same remedy as an unreadable definition.
                _release(self._path)
                reason = (
                    f"chDB detached {len(broken)} damaged data part(s) at start (view rows "
                    f"missing): {', '.join(broken[:5])}"
                )
                if may_set_aside is not None:
                    may_set_aside(reason, broken)
                self.set_aside = set_aside([Path(self._path)], broken, reason)
                Path(self._path).mkdir(parents=True, exist_ok=True)
                self._session = _open(self._path)
        self._closed = False
        self.inline_seconds = INLINE_SECONDS
        self.readers = READERS
        self.reader_queries = 0  # answered by a reader process (for tests and metrics)
        self._slow: dict[frozenset[str], float] = {}  # scope -> inline skipped until (monotonic)
        self._idle: list[_Reader] = []
        self._started = 0  # reader processes running, idle or busy
        self._pool = threading.Condition()

    def _broken_parts(self) -> list[str]:
        """The data parts of the views' database chDB detached as broken when it opened
        (``store/.../detached/broken-on-start_*``: a file of the part short or unreadable)."""
        got = self._session.query(
            "SELECT concat(table, '/detached/', name) AS part FROM system.detached_parts "
            f"WHERE database = '{DB}' AND startsWith(name, 'broken') ORDER BY part",
            "CSV",
        )
        return [ln.strip().strip('"') for ln in got.bytes().decode().splitlines() if ln.strip()]

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

    # -- analyst queries -------------------------------------------------------------------------
    def query(self, sql: str, grants: Sequence[ViewGrant]) -> pa.Table:
        """``ClickHouseSqlViews.query``, its rewrite and bounds unchanged; held in the writers'
        session at most ``inline_seconds``, then answered by a reader process on a snapshot."""
        seconds, memory = self.query_seconds, int(self.query_memory_bytes)
        inline = min(seconds, self.inline_seconds)
        started = time.monotonic()
        # whose query: the tenants its grants scope it to (None: every tenant's rows)
        who = frozenset(g.tenant or "" for g in grants)
        if self._slow.get(who, 0.0) > started:
            inline = 0.0  # this scope's last query fell over: straight to a reader
        with self._lock:
            rewritten = self._rewrite(sql, grants)
            if inline > 0:  # (0 would be no bound at all to ClickHouse: readers only)
                try:
                    return self._arrow(bounded(rewritten, inline, memory))
                except HubError as exc:
                    if not (timed_out(exc) and seconds > inline):
                        raise query_error(exc, seconds, memory) from exc
                    self._fell_over(who, started)
            # 1. a snapshot of the committed parts, taken under the writers' lock: between two
            #    batches, never inside one (the write protocol's steps 1-2)
            snap = self._snapshot()
        try:
            # 2. the same guarded text, with what is left of the query's time bound
            left = seconds - (time.monotonic() - started)
            if left <= 0:
                raise query_error(HubError("TIMEOUT_EXCEEDED"), seconds, memory)
            return self._read(snap, bounded(rewritten, left, memory), seconds, memory, left)
        finally:
            # 3. the snapshot goes with its query: erased or expired values it links are kept
            #    no longer than the one query that was running when they went
            shutil.rmtree(snap, ignore_errors=True)

    def _fell_over(self, who: frozenset[str], now: float) -> None:
        """Send ``who``'s queries straight to a reader for ``SLOW_MEMORY_S``: a tenant looping
        queries just past ``inline_seconds`` then holds the writers once per that time, not
        once per query (its own small queries pay a reader's start meanwhile, no one else's)."""
        if len(self._slow) >= 10_000:  # forget the lapsed ones: the map stays small
            self._slow = {k: v for k, v in self._slow.items() if v > now}
        self._slow[who] = now + SLOW_MEMORY_S

    def _snapshot(self) -> str:
        with _QUERY_LOCK:  # no insert of another store object on this session runs meanwhile
            if self._closed:
                raise HubError("The chDB view store is closed.", code="views_closed")
            Path(self._snapshots).mkdir(mode=0o700, exist_ok=True)
            snap = os.path.join(self._snapshots, uuid.uuid4().hex)
            try:
                chdb_reader.snapshot(self._path, snap)
            except OSError as exc:
                shutil.rmtree(snap, ignore_errors=True)
                raise HubError(
                    f"Could not snapshot the analytics views for a query reader: {exc}",
                    code="views_error",
                ) from exc
            return snap

    def _read(self, snap: str, sql: str, seconds: float, memory: int, left: float) -> pa.Table:
        reader = self._take(left)
        self.reader_queries += 1
        answer = None
        try:
            answer = reader.ask(snap, sql, left + READER_GRACE_S)
        finally:
            self._give(reader, ok=answer is not None)
        if answer is None:  # killed past its bound, or died: the next query starts another
            raise query_error(HubError("TIMEOUT_EXCEEDED"), seconds, memory)
        status, payload = answer
        if status == b"A":
            return pa.ipc.open_stream(payload).read_all()
        text = payload.decode("utf-8", "replace").strip()
        raise query_error(HubError(f"chDB failed on {sql[:200]!r}: {text[:500]}"), seconds, memory)

    def _take(self, wait_s: float) -> _Reader:
        deadline = time.monotonic() + wait_s
        with self._pool:
            while True:
                if self._closed:
                    raise HubError("The chDB view store is closed.", code="views_closed")
                while self._idle:
                    reader = self._idle.pop()
                    if reader.alive():
                        return reader
                    reader.stop()
                    self._started -= 1
                if self._started < self.readers:
                    self._started += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReadersBusy(
                        f"All {self.readers} analytics query readers stayed busy for the "
                        f"query's whole time bound ({wait_s:.1f} s left of it); send it again "
                        "in a few seconds.",
                        code="query_readers_busy",
                    )
                self._pool.wait(left)
        try:
            return _Reader()
        except OSError:
            with self._pool:
                self._started -= 1
                self._pool.notify()
            raise

    def _give(self, reader: _Reader, ok: bool) -> None:
        with self._pool:
            if ok and not self._closed:
                self._idle.append(reader)
            else:
                reader.stop()
                self._started -= 1
            self._pool.notify()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._pool:
                idle, self._idle = self._idle, []
                self._started -= len(idle)
                self._pool.notify_all()
            for reader in idle:
                reader.stop()
            _release(self._path)
            shutil.rmtree(self._snapshots, ignore_errors=True)
