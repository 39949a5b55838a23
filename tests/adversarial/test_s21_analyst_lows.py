"""s21 analyst red team, lows: what a tenant's analyst learned beyond its own data.

- A failed query's error echoed the rewritten SQL and the engine's text: the stored database
  and table names (``hub_views.positions``, PostgreSQL's ``DECLARE "hub_query" CURSOR FOR``),
  the row filter with the caller's tenant, the engine's settings. Now the caller gets the
  engine's own reason only (``core.sqlguard.engine_message``).
- The live bars stream, under a grant that masks a bars column, queried the bars again on every
  commit of the market-bars projection, none of them counted against the query limits (only
  the stream's opening was). Now each re-query is admitted; past a limit it waits
  (``hub.console.data.requery``).
- ``GET /v1/projections`` gave every tenant's reader the hub-wide ``lag`` and ``batch_seq``
  (another tenant's publishing moves them): see ``test_s18_api_projection_volume``.
"""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.sqlguard_limits import QueryLimiter, QueryLimits
from hub.bootstrap import Hub

from .test_query_time_bound import hub  # noqa: F401 - the module's hub fixture
from .test_sql_guard import ACME

INTERNAL = ("hub_views", "hub_query", "tenant = 'acme'", "SETTINGS", "max_result_rows")


@pytest.mark.parametrize(
    ("store", "sql", "reason"),
    [
        ("analytics", "SELECT nosuchcol FROM positions", "nosuchcol"),
        ("transactional", "SELECT nosuchcol FROM accounts_current", "nosuchcol"),
    ],
)
def test_a_failed_query_names_no_internal_table(
    hub: Hub,  # noqa: F811
    store: str,
    sql: str,
    reason: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        hub.projections.query(hub.policy, ACME, sql, store)
    text = str(caught.value)
    assert reason in text, text
    for name in INTERNAL:
        assert name not in text, text  # before: the rewritten SQL, hub_views.positions


def test_a_postgresql_error_keeps_its_reason_only() -> None:
    from core.sqlguard import engine_message

    raw = (
        'column "nosuchcol" does not exist\n'
        'LINE 1: DECLARE "hub_query" CURSOR FOR SELECT nosuchcol FROM (SELECT "tenant" FROM '
        "hub_views.accounts_current WHERE tenant = 'acme') AS a\n"
        "                                              ^"
    )
    assert engine_message(raw) == 'column "nosuchcol" does not exist'
    chdb = (
        'chDB failed on \'SELECT nosuchcol FROM (SELECT "tenant" FROM hub_views.positions '
        "WHERE ': Code: 47. DB::Exception: Unknown expression identifier `nosuchcol`. In scope "
        "SELECT nosuchcol FROM hub_views.positions WHERE tenant = 'acme'. (UNKNOWN_IDENTIFIER)"
    )
    assert engine_message(chdb) == "Unknown expression identifier `nosuchcol`."


def test_a_live_streams_requery_is_counted_and_waits_past_a_limit(hub: Hub) -> None:  # noqa: F811
    from hub.console.data import requery

    before = getattr(hub, "query_limiter", None)
    hub.query_limiter = QueryLimiter(QueryLimits(principal_rate=0.001, principal_burst=2))
    asked: list[object] = []

    def snapshot(grants: object) -> object:
        asked.append(grants)
        return object()

    stale: object = object()
    try:
        fresh = requery(hub, ACME, snapshot, "g1", stale)  # type: ignore[arg-type]
        assert fresh is not stale and asked == ["g1"]
        with hub.query_limiter.admit(ACME.id, ACME.tenant):  # the principal's own query
            pass
        # the burst of two is spent: the stream's re-query waits (before: it ran, uncounted)
        assert requery(hub, ACME, snapshot, "g2", stale) is stale  # type: ignore[arg-type]
        assert asked == ["g1"]
    finally:
        hub.query_limiter = before
