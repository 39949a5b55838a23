"""The ViewStore contract against chDB (one session path per process: shared by the class)."""

from __future__ import annotations

import pytest

from tests.contract.views_contract import ViewStoreContract

pytest.importorskip("chdb")


class TestChdbViews(ViewStoreContract):
    aggregates = True

    @pytest.fixture(scope="class")
    @classmethod
    def _store(cls, tmp_path_factory):
        from adapters.chdb_views import ChdbViewStore

        s = ChdbViewStore(tmp_path_factory.mktemp("chdb"))
        yield s
        s.close()

    @pytest.fixture
    def store(self, _store):
        return _store
