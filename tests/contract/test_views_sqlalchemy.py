"""The ViewStore contract against SQLAlchemy: SQLite always, PostgreSQL when
``HUB_TEST_POSTGRES_URL`` names one (none runs here)."""

from __future__ import annotations

import os

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from tests.contract.views_contract import ViewStoreContract


class TestSqliteViews(ViewStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = SqlAlchemyViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
        yield s
        s.close()


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("HUB_TEST_POSTGRES_URL"), reason="no PostgreSQL server")
class TestPostgresViews(ViewStoreContract):
    @pytest.fixture
    def store(self):
        s = SqlAlchemyViewStore(os.environ["HUB_TEST_POSTGRES_URL"])
        yield s
        s.close()
