"""The analyst views' types on PostgreSQL (moved from ``tests/service/test_analyst_views.py``:
it needs a real PostgreSQL, started by ``infra/postgres.sh`` or skipped loudly)."""

from __future__ import annotations

import pytest

from tests.service.test_analyst_views import (
    OPERATOR,
    TYPE_SQL,
    _payments,
    assert_same_everywhere,
    folded_elsewhere,
    make_hub,
)

pytest.importorskip("chdb")


@pytest.mark.integration
def test_same_types_on_postgresql(tmp_path):
    """Item 13 on the distributed transactional store: PostgreSQL answers like SQLite."""
    from adapters.sqlalchemy_views import SqlAlchemyViewStore
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL type test")
    h = make_hub(tmp_path / "d")
    try:
        h.publisher.publish("payments", _payments(), producer="t", tenant="acme")
        h.projections.run(["payments"])
        sqlite = h.projections.query(h.policy, OPERATOR, TYPE_SQL, "transactional")
        for kwargs in fresh_schema(url):
            pg = SqlAlchemyViewStore(url, **kwargs)
            try:
                assert_same_everywhere(sqlite, folded_elsewhere(h, pg))
            finally:
                pg.close()
    finally:
        h.close()
