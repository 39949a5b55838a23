"""``core.tenant_quota``: the per-tenant token buckets and the quarantine quota (pure)."""

from __future__ import annotations

import pytest

from core.tenant_quota import (
    IngestRateLimiter,
    IngestRates,
    QuarantineQuota,
    StoredQuota,
    TenantQuotaExceeded,
    TenantRateLimited,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_off_takes_nothing_and_refuses_nothing() -> None:
    lim = IngestRateLimiter(IngestRates())
    assert not lim.on
    for _ in range(1000):
        lim.check("b", 10**9, 10**12)
        lim.take("b", 10**9, 10**12)
    assert lim._buckets == {}


def test_a_tenant_over_its_bucket_is_refused_with_when_to_come_back() -> None:
    clock, refused = Clock(), []
    lim = IngestRateLimiter(
        IngestRates(records_per_s=10, records_burst=100),
        clock=clock,
        refused=lambda t, limit: refused.append((t, limit)),
    )
    lim.take("b", 100, 0)
    with pytest.raises(TenantRateLimited) as e:
        lim.check("b", 30, 0)
    assert e.value.retry_after == 3  # 30 records at 10 a second
    assert "HUB_INGEST_RECORDS_PER_S_PER_TENANT" in e.value.message
    assert refused == [("b", "ingest_records")]
    lim.check("a", 100, 0)  # another tenant: its own bucket, full
    clock.t += 3
    lim.check("b", 30, 0)  # refilled


def test_a_batch_above_the_burst_needs_a_full_bucket_and_leaves_a_debt() -> None:
    clock = Clock()
    lim = IngestRateLimiter(IngestRates(bytes_per_s=100, bytes_burst=1000), clock=clock)
    lim.take("b", 1, 5000)  # full: admitted
    with pytest.raises(TenantRateLimited) as e:
        lim.check("b", 1, 1)
    assert e.value.retry_after == 41  # 4000 of debt and 1 byte, at 100 a second
    clock.t += 40
    with pytest.raises(TenantRateLimited):
        lim.check("b", 1, 5000)  # the burst (1000) needed, the bucket back at 0
    clock.t += 10
    lim.check("b", 1, 5000)


def test_a_position_only_commit_is_never_refused() -> None:
    clock = Clock()
    lim = IngestRateLimiter(IngestRates(records_per_s=1, records_burst=1), clock=clock)
    lim.take("b", 100, 0)
    lim.check("b", 0, 0)


def test_a_burst_of_zero_holds_one_seconds_refill() -> None:
    lim = IngestRateLimiter(IngestRates(records_per_s=50), clock=Clock())
    lim.take("b", 50, 0)
    with pytest.raises(TenantRateLimited):
        lim.check("b", 1, 0)


def test_take_checks_and_takes_in_one_step_and_refund_gives_back() -> None:
    clock = Clock()
    lim = IngestRateLimiter(IngestRates(records_per_s=1, records_burst=20), clock=clock)
    lim.take("b", 20, 0)  # a second batch decided before the first is stored sees it taken
    with pytest.raises(TenantRateLimited):
        lim.take("b", 20, 0)
    lim.refund("b", 20, 0)  # the first was not written
    lim.take("b", 20, 0)
    lim.refund("b", 20, 0)
    lim.refund("b", 20, 0)  # never past the burst
    lim.take("b", 20, 0)
    with pytest.raises(TenantRateLimited):
        lim.check("b", 1, 0)


def test_full_buckets_are_forgotten_past_the_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.tenant_quota as tq

    monkeypatch.setattr(tq, "_KEEP", 10)
    clock = Clock()
    lim = IngestRateLimiter(IngestRates(records_per_s=1, records_burst=5), clock=clock)
    lim.take("debtor", 5, 0)
    for k in range(30):
        lim.check(f"t{k}", 1, 0)
    assert len(lim._buckets) <= 11
    with pytest.raises(TenantRateLimited):  # the one in debt is kept
        lim.check("debtor", 1, 0)


def test_the_quarantine_quota_counts_the_log_at_each_check_and_refuses_past_it() -> None:
    log = {"b": 900}  # what the quarantine topic holds, whichever process appended it
    folds = []

    def count() -> dict[str, int]:
        folds.append(1)
        return log

    q = QuarantineQuota(1000, count)
    q.check("b", 100)
    log["b"] += 100  # the batch stored (here, or by another process on the same log)
    with pytest.raises(TenantQuotaExceeded) as e:
        q.check("b", 1)
    assert e.value.code == "tenant_quarantine_full" and e.value.http_status == 507
    assert "HUB_QUARANTINE_MAX_BYTES_PER_TENANT" in e.value.message
    assert "1000 bytes" in e.value.message
    q.check("a", 1000)
    q.check("b", 0)  # a batch without rejects: not counted
    assert len(folds) == 3 and q.held("b") == 1000
    off = QuarantineQuota(0, lambda: pytest.fail("folded while off"))  # type: ignore[arg-type]
    off.check("b", 10**12)


def test_the_storage_quota_refuses_past_it_with_its_own_code_and_metric_label() -> None:
    refused: list[tuple[str, str]] = []
    q = StoredQuota(1000, lambda: {"b": 600}, refused=lambda t, limit: refused.append((t, limit)))
    q.check("b", 400)
    q.add("b", 400)
    with pytest.raises(TenantQuotaExceeded) as e:
        q.check("b", 1)
    assert e.value.code == "tenant_storage_full" and e.value.http_status == 507
    assert "HUB_STORED_MAX_BYTES_PER_TENANT" in e.value.message and "'b'" in e.value.message
    assert refused == [("b", "stored_bytes")]
    q.check("a", 1000)
    assert q.held("b") == 1000


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="records_per_s"):
        IngestRates(records_per_s=-1)
    with pytest.raises(ValueError, match="max_bytes"):
        QuarantineQuota(-1, dict)
