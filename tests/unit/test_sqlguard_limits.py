"""core.sqlguard_limits: token buckets refill with time, refusals take nothing, idle buckets
are forgotten without changing an answer."""

from __future__ import annotations

import pytest

from core.sqlguard_limits import QueryLimited, QueryLimiter, QueryLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_retry_after_is_when_a_token_is_back() -> None:
    clock, refused = Clock(), []
    lim = QueryLimiter(
        QueryLimits(principal_rate=6, principal_burst=2), clock=clock, refused=refused.append
    )
    for _ in range(2):
        with lim.admit("ann", "acme"):
            pass
    with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme"):
        pass
    assert (info.value.code, info.value.retry_after, info.value.http_status) == (
        "query_rate",
        10,  # 6 a minute: one token every 10 s
        429,
    )
    clock.now += 9.9
    with pytest.raises(QueryLimited), lim.admit("ann", "acme"):
        pass
    clock.now += 0.2  # the refused tries took no token
    with lim.admit("ann", "acme"):
        pass
    clock.now -= 500  # a clock going back refills nothing and breaks nothing
    with pytest.raises(QueryLimited), lim.admit("ann", "acme"):
        pass
    assert refused == ["query_rate"] * 3


def test_slots_are_given_back_when_the_query_fails() -> None:
    lim = QueryLimiter(QueryLimits(per_principal=1))
    with pytest.raises(ZeroDivisionError), lim.admit("ann", "acme"):
        1 / 0  # noqa: B018
    with lim.admit("ann", "acme"):
        with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme"):
            pass
        assert info.value.code == "query_concurrency"
    assert lim._running == {}


def test_idle_full_buckets_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.sqlguard_limits as m

    monkeypatch.setattr(m, "_KEEP", 3)
    clock = Clock()
    lim = QueryLimiter(QueryLimits(principal_burst=1, principal_rate=1), clock=clock)
    with lim.admit("ann", "acme"):
        pass
    for name in ("bob", "cat", "dan"):
        with lim.admit(name, "acme"):
            pass
    assert len(lim._buckets) <= 4 + 1
    # ann's empty bucket was kept: still refused
    with pytest.raises(QueryLimited), lim.admit("ann", "acme"):
        pass


@pytest.mark.parametrize("field", ["per_principal", "per_tenant", "principal_burst"])
def test_limits_below_one_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        QueryLimits(**{field: 0})


def test_query_seconds_are_charged_when_a_query_ends_and_a_spent_budget_waits() -> None:
    """Back-to-back 30 s queries are few by count (60 a minute allowed) but keep a reader busy
    for good: the principal's budget of query-seconds refuses the fourth one, a colleague of
    the same tenant still runs until the tenant's budget is spent too, another tenant is not
    held, and the budgets refill at their rate. A query that fails is charged its time too."""
    clock, refused = Clock(), []
    lim = QueryLimiter(
        QueryLimits(
            principal_seconds=6,  # 3 s back per 30 s query
            principal_seconds_burst=60,
            tenant_seconds=6,
            tenant_seconds_burst=100,
        ),
        clock=clock,
        refused=refused.append,
    )
    with lim.admit("ann", "acme"):  # ann 60 -> 30, acme 100 -> 70
        clock.now += 30
    with pytest.raises(ZeroDivisionError), lim.admit("ann", "acme"):
        clock.now += 30  # stopped at its bound: its 30 s count (ann 3, acme 43)
        1 / 0  # noqa: B018
    with lim.admit("ann", "acme"):  # admitted above zero: ann -24, acme 16
        clock.now += 30
    with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme"):
        pass
    assert (info.value.code, info.value.retry_after, info.value.http_status) == (
        "query_seconds",
        241,  # 24 s owed at 6 a minute: above zero after 240 s
        429,
    )
    assert "HUB_QUERY_SECONDS_PER_PRINCIPAL" in info.value.message
    with lim.admit("bob", "acme"):  # a colleague: acme has 16 s left -> about -12
        clock.now += 31
    with pytest.raises(QueryLimited) as tenant, lim.admit("cyd", "acme"):
        pass
    assert tenant.value.code == "query_tenant_seconds"
    with lim.admit("dee", "other"):  # another tenant is not held by acme's spending
        pass
    # refusals charge nothing, and ann still owes
    with pytest.raises(QueryLimited), lim.admit("ann", "acme"):
        pass
    clock.now += 241 - 31
    with lim.admit("ann", "acme"):
        pass
    assert refused == ["query_seconds", "query_tenant_seconds", "query_seconds"]


@pytest.mark.parametrize(
    "field", ["principal_seconds", "principal_seconds_burst", "tenant_seconds"]
)
def test_seconds_budgets_at_or_below_zero_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        QueryLimits(**{field: 0})


def test_a_wait_for_a_running_slot_is_admitted_when_the_slot_is_given_back() -> None:
    """The console's pages send their queries at once and a principal runs one at a time:
    with ``wait_s`` the second waits for the first instead of being refused; without, or past
    the wait, it is refused as before, and a rate limit never waits."""
    import threading
    import time

    lim = QueryLimiter(QueryLimits(per_principal=1, principal_burst=3))
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with lim.admit("ann", "acme"):
            holding.set()
            release.wait(5)

    t = threading.Thread(target=first)
    t.start()
    assert holding.wait(5)
    with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme"):
        pass
    assert info.value.code == "query_concurrency"
    started = time.monotonic()
    with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme", wait_s=0.2):
        pass
    assert info.value.code == "query_concurrency" and time.monotonic() - started >= 0.2
    threading.Timer(0.2, release.set).start()
    with lim.admit("ann", "acme", wait_s=5):  # admitted once the first ends
        pass
    t.join()
    # the three tokens are spent (two admitted, refusals took none ... and this one): a rate
    # refusal answers at once, whatever the wait
    with lim.admit("ann", "acme"):
        pass
    started = time.monotonic()
    with pytest.raises(QueryLimited) as info, lim.admit("ann", "acme", wait_s=5):
        pass
    assert info.value.code == "query_rate" and time.monotonic() - started < 1
