"""A tenant's storage quota holds when its batches arrive together (session 24, quota24).

Before: ``HUB_STORED_MAX_BYTES_PER_TENANT`` (and the quarantine quota) checked a batch against
the tenant's count in ``decide`` and counted it only after the commit, so every batch decided in
one group commit (and the tenant's batches on other topics' committers at the same time) passed
the same check: the tenant overshot its quota by (concurrent batches x batch size). Now a batch's
bytes are reserved when it passes the check (every later check counts them), held once its write
commits, and released when it is not written; no failure path leaves a reservation behind (a
leak would refuse the tenant wrongly until the next start).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.errors import HubError, Retryable
from core.events import tenant_of
from core.tenant_quota import StoredQuota, TenantQuotaExceeded
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.pipeline import RawRecord
from tests.adversarial._api import QUOTE

LIMIT = 4000
TOPIC = "quotes"


@contextmanager
def limited(data_dir: Path, **env: str) -> Iterator[Hub]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_STORED_MAX_BYTES_PER_TENANT": str(LIMIT)}
    hub = bootstrap(load_settings(environ={**environ, **env}, data_dir=data_dir))
    try:
        yield hub
    finally:
        hub.close()


def _batch(tag: str, n: int = 20, **over: str) -> list[RawRecord]:
    """``n`` quotes whose names all have the same length (same bytes per batch for one tag
    length)."""
    out = []
    for i in range(n):
        value = {**QUOTE, "instrument": f"{tag}{i:03d}", **over}
        out.append(RawRecord(json.dumps(value).encode(), value=value))
    return out


def _ingest(hub: Hub, tag: str, tenant: str = "globex", **over: str) -> Any:
    return hub.ingest.ingest(TOPIC, _batch(tag, **over), source="s24", tenant=tenant)


def _stored_bytes(hub: Hub, tenant: str, topics: Sequence[str] = (TOPIC, "hub.quarantine")) -> int:
    """Bytes of ``tenant``'s values the log holds (read back from the log, not the count)."""
    total = 0
    for topic in topics:
        for p, start in hub.log.beginning_offsets(topic).items():
            for rec in hub.log.scan(topic, p, start):
                if (tenant_of(rec) or "default") == tenant:
                    total += len(rec.value or b"")
    return total


def _together(hub: Hub, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads queued behind the topic's held dedupe section, so the first to
    lead takes all of them into one group commit; their results or errors, in order."""
    committer = hub.ingest.committer(TOPIC)
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except BaseException as exc:  # the test reads each outcome
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with hub.ingest.deduping(TOPIC):
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(committer._queue) < len(calls):
            assert time.monotonic() < deadline, "the batches never queued"
            time.sleep(0.01)
    for t in threads:
        t.join(60)
    return out


def _batch_bytes(hub: Hub) -> int:
    """Bytes one ``_batch`` stores (measured on a tenant of its own)."""
    _ingest(hub, "P00-", tenant="probe")
    return hub.ingest.stored_quota.held("probe")


def test_batches_decided_in_one_group_commit_never_pass_the_storage_quota(
    tmp_path: Path,
) -> None:
    with limited(tmp_path / "d") as hub:
        b = _batch_bytes(hub)
        fit = LIMIT // b
        assert 1 <= fit < 8, b
        n = fit + 4
        before = hub.ingest.committer(TOPIC).commits
        out = _together(hub, [lambda k=k: _ingest(hub, f"G{k:02d}-") for k in range(n)])
        ok = [r for r in out if not isinstance(r, BaseException)]
        refused = [r for r in out if isinstance(r, TenantQuotaExceeded)]
        assert hub.ingest.committer(TOPIC).commits - before == 1  # one group commit
        assert len(ok) == fit and len(refused) == n - fit, out
        assert all("HUB_STORED_MAX_BYTES_PER_TENANT" in str(e) for e in refused)
        assert _stored_bytes(hub, "globex") == fit * b <= LIMIT
        assert hub.ingest.stored_quota.held("globex") == fit * b


def test_the_quarantine_quota_holds_in_one_group_commit(tmp_path: Path) -> None:
    with limited(tmp_path / "d", HUB_STORED_MAX_BYTES_PER_TENANT="0") as hub:
        # one batch of 20 rejects: measure its quarantine bytes on a tenant of its own
        _ingest(hub, "P00-", tenant="probe", bid="bad")
        b = _stored_bytes(hub, "probe", ("hub.quarantine",))
    with limited(
        tmp_path / "e",
        HUB_STORED_MAX_BYTES_PER_TENANT="0",
        HUB_QUARANTINE_MAX_BYTES_PER_TENANT=str(3 * b + b // 2),
    ) as hub:
        out = _together(hub, [lambda k=k: _ingest(hub, f"B{k:02d}-", bid="bad") for k in range(6)])
        refused = [r for r in out if isinstance(r, TenantQuotaExceeded)]
        assert len(refused) == 3, out
        assert all("HUB_QUARANTINE_MAX_BYTES_PER_TENANT" in str(e) for e in refused)
        assert _stored_bytes(hub, "globex", ("hub.quarantine",)) == 3 * b


def _failing(hub: Hub, error: Callable[[], BaseException], times: int = 1) -> list[int]:
    """Make the topic's next ``times`` log transactions fail with ``error()`` (nothing of them
    written); returns the sizes of the groups that failed."""
    committer = hub.ingest.committer(TOPIC)
    real = committer.commit_group
    failed: list[int] = []

    def commit_group(source: str, staged: Sequence[Any]) -> Any:
        if len(failed) < times:
            failed.append(len(staged))
            raise error()
        return real(source, staged)

    committer.commit_group = commit_group  # type: ignore[method-assign]
    return failed


def _fills_exactly(hub: Hub, b: int) -> None:
    """No reservation was left behind: the tenant still stores every batch that fits its quota
    (what it holds now plus whole batches up to the quota), and the next one is refused."""
    held = hub.ingest.stored_quota.held("globex")
    assert held == _stored_bytes(hub, "globex")
    for k in range((LIMIT - held) // b):
        _ingest(hub, f"F{k:02d}-")
    with pytest.raises(TenantQuotaExceeded):
        _ingest(hub, "F99-")
    assert _stored_bytes(hub, "globex") <= LIMIT


@pytest.mark.parametrize(
    "error", [lambda: HubError("disk said no"), lambda: Retryable("broker timed out")]
)
def test_a_lone_batch_whose_commit_fails_leaves_no_reservation(
    tmp_path: Path, error: Callable[[], BaseException]
) -> None:
    with limited(tmp_path / "d") as hub:
        b = _batch_bytes(hub)
        failed = _failing(hub, error)
        with pytest.raises(HubError):
            _ingest(hub, "X00-")
        assert failed == [1]
        _fills_exactly(hub, b)


def test_a_group_retried_one_by_one_reserves_each_batch_once(tmp_path: Path) -> None:
    """The group's transaction is refused: each batch is decided again alone (``_alone``); the
    first reservations are released, not counted twice."""
    with limited(tmp_path / "d") as hub:
        b = _batch_bytes(hub)
        failed = _failing(hub, lambda: HubError("disk said no"))
        out = _together(hub, [lambda k=k: _ingest(hub, f"R{k:02d}-") for k in range(2)])
        assert failed == [2]
        assert not any(isinstance(r, BaseException) for r in out), out
        assert hub.ingest.stored_quota.held("globex") == 2 * b
        _fills_exactly(hub, b)


def test_a_group_retried_alone_whose_retry_fails_leaves_no_reservation(tmp_path: Path) -> None:
    with limited(tmp_path / "d") as hub:
        b = _batch_bytes(hub)
        failed = _failing(hub, lambda: HubError("disk said no"), times=3)
        out = _together(hub, [lambda k=k: _ingest(hub, f"S{k:02d}-") for k in range(2)])
        assert failed == [2, 1, 1]
        assert all(isinstance(r, HubError) for r in out), out
        assert hub.ingest.stored_quota.held("globex") == 0
        _fills_exactly(hub, b)


def test_a_batch_refused_by_one_quota_leaves_nothing_reserved_in_the_other(
    tmp_path: Path,
) -> None:
    """Rejects pass the quarantine quota, the whole batch fails the storage quota: the
    quarantine reservation is released too."""
    with limited(tmp_path / "d", HUB_QUARANTINE_MAX_BYTES_PER_TENANT="100000") as hub:
        b = _batch_bytes(hub)
        fit = LIMIT // b
        for k in range(fit):
            _ingest(hub, f"G{k:02d}-")
        with pytest.raises(TenantQuotaExceeded, match="HUB_STORED_MAX_BYTES_PER_TENANT"):
            _ingest(hub, "B00-", bid="bad")
        q = hub.ingest.quarantine_quota
        assert q.held("globex") == 0
        q.check("globex", 100000)  # the whole quarantine quota is still free


def test_reservations_made_at_once_in_many_threads_never_pass_the_quota() -> None:
    """The check and the reservation are one step: threads of other topics' committers (each
    holding only its own topic's section) cannot all pass the same count."""
    quota = StoredQuota(1000, lambda: {"globex": 100})
    start = threading.Barrier(8)
    won: list[int] = []

    def run() -> None:
        start.wait()
        for _ in range(20):
            try:
                quota.reserve("globex", 30)
            except TenantQuotaExceeded:
                continue
            won.append(30)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(won) == 900 == quota.reserved("globex")
    for n in won:
        quota.settle("globex", n, written=True)
    assert quota.reserved("globex") == 0 and quota.held("globex") == 1000
