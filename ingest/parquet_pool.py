"""Long-lived Parquet decoder processes (``ingest.parquet_child``), bounded in time and memory.

A file is decoded in a child process (pyarrow crashes on some damaged files: see
``ingest.parquet_child``). Starting one per file cost ~0.4 s (Python and pyarrow's import), so
``ParquetDecoders`` keeps at most ``size`` children, started when first needed, each serving one
file at a time and reused, and replaced after a crash, a refusal past the time or memory bound,
a consumer that stopped part way, or ``max_files`` files / ``max_bytes`` bytes.

Per file (``batches``):

1. take an idle child, or start one when fewer than ``size`` run (else wait for one);
2. make a pipe for this file alone and send the request with the file's descriptor and the
   pipe's write end (``SCM_RIGHTS``); the parent keeps only the read end;
3. read the IPC stream, waiting on the child at most the file's budget (``seconds`` plus
   ``seconds_per_mib`` per MiB of the file; time the consumer spends on a batch is not
   counted), yielding each batch;
4. read the reply: the file is whole only on ``ok`` with this request's id. A refusal is the
   child's message; no reply (the child died) is a crash naming its signal or exit status;
5. give the child back, or end it when it must not serve another file. A child past the
   budget is killed and the file refused naming the bound.

Streams of concurrent files never meet: each has its own pipe and its own child until step 5.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from core.childenv import child_environment
from core.errors import Retryable
from ingest.localfile import FileUnreadable

MIB = 1 << 20
PIPE_BYTES = 1 << 20  # each file's pipe (Linux's default most, pipe-max-size)


@dataclass(frozen=True)
class DecoderLimits:
    """The bounds of ``ParquetDecoders`` (``HUB_PARQUET_*`` settings)."""

    size: int = 2  # most children at once
    seconds: float = 60.0  # waited on any one file, at least
    seconds_per_mib: float = 2.0  # and this much more per MiB of the file
    memory_mib: int = 2048  # each child's data segment (RLIMIT_DATA)
    max_files: int = 1000  # files one child serves before it is replaced
    max_bytes: int = 8 << 30  # file bytes one child decodes before it is replaced

    def budget(self, size: int) -> float:
        return self.seconds + self.seconds_per_mib * size / MIB


class DecodersBusy(Retryable):
    """Every decoder stayed busy with other files for the wait bound (``ParquetDecoders._take``);
    the file was not read: send it again later (over HTTP: a 503 with ``Retry-After``)."""

    code = "parquet_decoders_busy"


class _Stalled(Exception):
    """The child did not give the next bytes of a file within its budget."""


class _Pipe(io.RawIOBase):
    """The read end of a file's pipe, each read waiting at most what is left of the budget;
    ``read(n)`` returns ``n`` bytes unless the stream ends (what Arrow's reader expects)."""

    def __init__(self, fd: int, budget: float) -> None:
        super().__init__()
        self.fd = fd
        self.left = budget
        self.stalled = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytearray:
        """``size`` bytes, fewer only at the stream's end; no copy past the one read (Arrow
        takes any buffer). Arrow's reader asks for each message's size: never ``-1``."""
        if size < 0:
            raise ValueError("a decoder stream is read by the message, never whole")
        buf = bytearray(size)
        got = self.readinto(buf)
        if got < size:
            del buf[got:]
        return buf

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        got = 0
        while got < len(view):
            try:  # the pipe is non-blocking: wait (and count the wait) only when it is empty
                n = os.readv(self.fd, [view[got:]])
            except BlockingIOError:
                start = time.monotonic()
                # poll, not select: a hub (or a test process) with over 1,024 descriptors open
                # gets pipe numbers that select() refuses ("filedescriptor out of range")
                waiter = select.poll()
                waiter.register(self.fd, select.POLLIN)
                ready = waiter.poll(max(self.left, 0.0) * 1000.0)
                self.left -= time.monotonic() - start
                if not ready:
                    self.left = 0.0
                    self.stalled = True
                    raise _Stalled from None
                continue
            if n == 0:
                break
            got += n
        return got


class _Child:
    """One decoder process and its end of the socket."""

    def __init__(self, memory_mib: int, ready_seconds: float) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ingest.parquet_child",
                    str(child.fileno()),
                    str(memory_mib),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(child.fileno(),),
                env=child_environment(),  # hostile files: none of the hub's secrets
            )
        finally:
            child.close()
        self.sock = parent
        self.files = 0
        self.bytes = 0
        self.next_id = 0
        hello = self.receive(ready_seconds)
        if hello is None or "ready" not in hello:
            self.kill()
            raise FileUnreadable(
                "The Parquet decoder did not start (exit status "
                f"{self.proc.returncode}): Parquet files cannot be read until it does."
            )

    def receive(self, seconds: float) -> dict[str, Any] | None:
        """The next message, or None when the child is gone (or silent for ``seconds``)."""
        self.sock.settimeout(max(seconds, 0.001))
        try:
            msg = self.sock.recv(1 << 16)
        except OSError:  # timeout included
            return None
        if not msg:
            return None
        try:
            value = json.loads(msg)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def kill(self) -> int:
        """End the process (killed if it has not exited) and return its status."""
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def status(self) -> int:
        """The exit status of a child that stopped answering: it closed its socket because it
        is dying, so wait a moment for it before killing it."""
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return self.kill()


class ParquetDecoders:
    """A small pool of long-lived Parquet decoder processes (see the module docstring)."""

    def __init__(self, limits: DecoderLimits | None = None) -> None:
        self.limits = limits or DecoderLimits()
        self.starts = 0  # children started, over the pool's life
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._running = 0  # children started and not yet ended, idle or busy
        self._cond = threading.Condition()
        self._closed = False
        self._pid = os.getpid()

    def pids(self) -> list[int]:
        """The process ids of the children, idle or busy (tests, operators)."""
        with self._cond:
            return [c.proc.pid for c in (*self._idle, *self._busy)]

    def _take(self) -> _Child:
        """A child for one file: an idle one, a new one under ``size``, or the first given back
        within ``seconds`` (else ``DecodersBusy``: a file whose consumer is still publishing
        holds its child for as long as that takes, and that time is on no budget)."""
        deadline = time.monotonic() + self.limits.seconds
        with self._cond:
            if self._pid != os.getpid():  # a forked copy of the hub: its parent's children
                for inherited in (*self._idle, *self._busy):  # are not this one's
                    inherited.sock.close()  # this copy's descriptor only: nothing is sent
                self._idle, self._busy, self._running = [], set(), 0
                self._pid = os.getpid()
            while True:
                if self._closed:
                    raise FileUnreadable("The Parquet decoders are closed: the hub is stopping.")
                if self._idle:
                    child = self._idle.pop()
                    self._busy.add(child)
                    return child
                if self._running < self.limits.size:
                    self._running += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodersBusy(
                        f"All {self.limits.size} Parquet decoders (HUB_PARQUET_DECODERS) stayed "
                        f"busy with other files for {self.limits.seconds:g} s "
                        "(HUB_PARQUET_DECODE_SECONDS); nothing of this file was read: send it "
                        "again later."
                    )
                self._cond.wait(left)
        try:
            child = _Child(self.limits.memory_mib, self.limits.seconds)
        except BaseException:
            with self._cond:
                self._running -= 1
                self._cond.notify()
            raise
        with self._cond:
            self.starts += 1
            self._busy.add(child)
        return child

    def start_early(self) -> threading.Thread | None:
        """Start one child now, in the background, and leave it idle: a running hub (``hub
        serve``, ``hub watch``) then spares its first Parquet file the child's start (~0.4 s,
        Python and pyarrow's import), at the cost of the child's memory when no Parquet comes.
        Nothing (``None``) when a child already runs or is starting, or the pool is closed or
        sized 0. A child that fails to start is dropped: the first file starts its own and its
        refusal says why. Returns the starting thread (tests join it)."""
        with self._cond:
            if self._closed or self._running or self.limits.size < 1:
                return None
            self._running += 1  # counted while starting: a file meanwhile waits for it

        def start() -> None:
            try:
                child = _Child(self.limits.memory_mib, self.limits.seconds)
            except Exception:
                with self._cond:
                    self._running -= 1
                    self._cond.notify()
                return
            with self._cond:
                self.starts += 1
                keep = not self._closed and self._pid == os.getpid()
                if keep:
                    self._idle.append(child)
                else:
                    self._running -= 1
                self._cond.notify()
            if not keep:
                child.kill()

        thread = threading.Thread(target=start, name="parquet-decoder-start", daemon=True)
        thread.start()
        return thread

    def _give_back(self, child: _Child, keep: bool) -> None:
        keep = (
            keep
            and child.files < self.limits.max_files
            and child.bytes < self.limits.max_bytes
            and child.proc.poll() is None
        )
        if not keep:
            child.kill()
        with self._cond:
            self._busy.discard(child)
            if keep and not self._closed:
                self._idle.append(child)
            else:
                if keep:
                    child.kill()
                self._running -= 1
            self._cond.notify()

    def batches(self, f: BinaryIO, name: str, request: dict[str, Any]) -> Iterator[Any]:
        """The record batches of the opened Parquet file ``f`` (read from its start), decoded by
        a child under ``request``'s bounds (``parquet_child.read_batches``' arguments).
        ``FileUnreadable`` when the child refuses the file, dies on it, or passes its budget
        (after the batches it already gave, which stay the caller's)."""
        import pyarrow as pa

        size = os.fstat(f.fileno()).st_size
        budget = self.limits.budget(size)
        child = self._take()
        keep = False
        r = w = -1
        try:  # the pipe too: out of descriptors (EMFILE), the child is still given back
            r, w = os.pipe()
            os.set_blocking(r, False)
            with contextlib.suppress(OSError):  # fewer, larger writes and reads than 64 KiB
                fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            child.next_id += 1
            child.files += 1
            child.bytes += size
            ask = {**request, "id": child.next_id, "name": name}
            with contextlib.suppress(OSError):  # 2. (a child dead while idle: 4 sees no reply)
                socket.send_fds(child.sock, [json.dumps(ask).encode()], [f.fileno(), w])
            os.close(w)
            w = -1
            pipe = _Pipe(r, budget)
            broken: Exception | None = None
            try:  # 3.
                reader = pa.ipc.open_stream(pipe)
                while True:
                    try:
                        rb = reader.read_next_batch()
                    except StopIteration:
                        break
                    yield rb
            except (pa.ArrowException, OSError, _Stalled) as exc:
                broken = exc
            if pipe.stalled:
                child.kill()
                raise FileUnreadable(
                    f"Parquet file {name!r}: the Parquet decoder took more than {budget:.1f} s "
                    f"on this file of {size} bytes (HUB_PARQUET_DECODE_SECONDS plus "
                    "HUB_PARQUET_DECODE_SECONDS_PER_MIB per MiB) and was stopped; nothing "
                    "after the records already published was read: split the file or raise "
                    "the bound."
                )
            reply = child.receive(max(pipe.left, 5.0))  # 4.
            if reply is not None and reply.get("id") == ask["id"]:
                if reply.get("ok") is True:
                    if broken is None:
                        keep = True
                        return
                    raise FileUnreadable(  # never expected: the child wrote a whole stream
                        f"Parquet file {name!r}: the Parquet decoder's output was cut short "
                        f"({broken}); nothing after the records already published was read."
                    )
                if "refused" in reply:
                    keep = not reply.get("retire")
                    raise FileUnreadable(str(reply["refused"]))
            raise _crashed(name, child.status(), broken)
        finally:  # 5. (also when the consumer stopped early: the child may be mid-stream)
            if r >= 0:
                os.close(r)
            if w >= 0:
                os.close(w)
            self._give_back(child, keep)

    def close(self) -> None:
        """End the idle children (closing their socket ends them) and refuse new files."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._running -= len(idle)
            self._cond.notify_all()
        for child in idle:
            child.sock.close()
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()


def _crashed(name: str, status: int, broken: Exception | None) -> FileUnreadable:
    """The refusal of a file whose decoder ended without a reply."""
    if status == -signal.SIGKILL:  # not the pool's doing: it kills only past the time bound
        return FileUnreadable(
            f"Parquet file {name!r}: the Parquet decoder was killed while decoding this file "
            "(signal 9: the host ran out of memory, or an operator stopped it); nothing after "
            "the records already published was read: retry it, or split the file."
        )
    if status < 0:
        return FileUnreadable(
            f"Parquet file {name!r}: the Parquet decoder crashed on this file (signal {-status}): "
            "the file is damaged; nothing after the records already published was read."
        )
    return FileUnreadable(
        f"Parquet file {name!r}: the Parquet decoder failed on this file (exit status {status}"
        + (f"; its stream: {broken}" if broken is not None else "")
        + "): the file is damaged or too large to decode; nothing after the records already "
        "published was read."
    )


_shared: ParquetDecoders | None = None
_shared_lock = threading.Lock()


def shared() -> ParquetDecoders:
    """The process's default pool (default bounds), for callers without a hub's pipeline
    (tools, tests); the hub builds its own from its settings (``hub.bootstrap``)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = ParquetDecoders()
            atexit.register(_shared.close)
        return _shared
