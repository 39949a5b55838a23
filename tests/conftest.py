"""Fixtures shared by every test folder: a hub on a temporary data folder and API clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The contract suites' shared bodies (tests/contract/*_contract.py) are plain modules: without this,
# a failing assertion in them says only "AssertionError", without the values compared.
pytest.register_assert_rewrite("tests.contract")

from hub.bootstrap import Hub, bootstrap  # noqa: E402
from hub.settings import load_settings  # noqa: E402


@pytest.fixture(autouse=True)
def _own_clock_floor() -> Iterator[None]:
    """Each test's hubs start from the wall clock: the hub's time floor (core.clock) is
    process-wide, and a hub signed a day ahead by one test must not age another's keys."""
    from core import clock

    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    yield h
    h.close()


# Real components (tests/infra.py): under CI=true the session stops, at its end and whatever the
# outcome, every component (Kafka, PostgreSQL, OPA, OpenBao) it found stopped and started itself.
def pytest_sessionstart(session: pytest.Session) -> None:
    from tests import infra

    infra.use_checkout_env()  # this checkout's infra ports and state folder (infra/env.sh)
    infra.session_started()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests import infra

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = infra.session_finished()
    if reporter is not None and lines:
        reporter.write("\n" + "\n".join(lines) + "\n")
