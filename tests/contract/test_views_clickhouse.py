"""The ViewStore contract against a ClickHouse server (clickhouse-connect). No server runs on
these machines (Debian ships only ClickHouse 18.16, no Docker): skipped unless
``HUB_TEST_CLICKHOUSE_URL`` names one."""

from __future__ import annotations

import os

import pytest

from tests.contract.views_contract import ViewStoreContract


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("HUB_TEST_CLICKHOUSE_URL"), reason="no ClickHouse server")
class TestClickHouseViews(ViewStoreContract):
    aggregates = True

    @pytest.fixture
    def store(self):
        from adapters.clickhouse_views import ClickHouseViewStore

        s = ClickHouseViewStore(os.environ["HUB_TEST_CLICKHOUSE_URL"])
        yield s
        s.close()
