"""tests/ha: the three-broker cluster starts in the background once collection shows the
failover test will run, overlapping the tests before it (the session's infra teardown stops it)."""

from __future__ import annotations

import pytest

from tests.ha import hubprocs


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.path.name == "test_failover.py" for item in session.items):
        hubprocs.prestart_cluster()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    hubprocs.wait_prestarted()  # before the session's teardown stops what it started
