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
