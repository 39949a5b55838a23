"""The ViewStore contract against SQLAlchemy: SQLite always, PostgreSQL on the cluster that
``infra/postgres.sh`` runs (started by the fixture when needed; ``HUB_TEST_POSTGRES_URL`` names
another server instead). When PostgreSQL cannot start the PostgreSQL tests are skipped with the
reason, except under ``CI=true``, where that fails them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.ports.views import Checkpoint, Position, Target
from tests.contract.views_contract import ERASED, PAYMENTS, ViewStoreContract, payment
from tests.infra import postgres_url


class TestSqliteViews(ViewStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = SqlAlchemyViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}")
        yield s
        s.close()


def test_erased_values_leave_no_plaintext_in_the_views_file_or_its_wal(tmp_path) -> None:
    """The views file is WAL (queries read their own snapshot): the WAL's older frames, and the
    file's freed cell space, would keep an erased subject's values in plaintext after
    ``erase_values``; it zeroes freed space and empties the WAL."""
    path = tmp_path / "views.sqlite"
    store = SqlAlchemyViewStore(f"sqlite:///{path}")
    try:
        target = Target("p", "live")
        store.ensure(target, (PAYMENTS,))
        secret = "Ann Quartermaine-Sevigny"
        rows = {"ct_payments": [payment("P1", "a", secret, "rent"), payment("P2", "b", "Bob", "x")]}
        store.write(target, (PAYMENTS,), rows, Checkpoint(1, {("e", 0): Position(2)}))
        files = [path, path.with_name(path.name + "-wal")]
        assert any(secret.encode() in f.read_bytes() for f in files if f.exists())  # the premise
        assert store.erase_values(target, PAYMENTS, "account_id", "a", ["payee"], ERASED) == 1
        for f in files:
            if f.exists():
                assert secret.encode() not in f.read_bytes(), f"{f.name} still holds it"
        assert [r["payee"] for r in store.rows(target, PAYMENTS)] == [ERASED, "Bob"]
    finally:
        store.close()


@pytest.fixture(scope="session")
def postgres() -> str:
    return postgres_url("the PostgreSQL ViewStore contract")


def fresh_schema(url: str) -> Iterator[dict[str, object]]:
    """A schema of its own (dropped afterwards): engine kwargs that make it the search path.

    The database outlives test runs, so every store gets an empty namespace, as a fresh SQLite
    file does."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {"connect_args": {"options": f"-csearch_path={schema}"}}
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.integration
class TestPostgresViews(ViewStoreContract):
    @pytest.fixture
    def store(self, postgres: str):
        for kwargs in fresh_schema(postgres):
            s = SqlAlchemyViewStore(postgres, **kwargs)
            yield s
            s.close()


@pytest.mark.integration
def test_hub_processes_starting_together_create_the_tables_once(postgres: str) -> None:
    """Two hub processes starting together on one PostgreSQL schema (the HA footprint): the
    store's check-then-create of its tables raced, and one start failed on a unique violation
    in ``pg_type`` (seen in CI as a hub that never answered /health). Rounds of three stores
    made at once on a fresh schema: every one starts."""
    import threading

    failures: list[str] = []
    for _ in range(8):
        for kwargs in fresh_schema(postgres):
            barrier = threading.Barrier(3)
            stores: list[SqlAlchemyViewStore] = []

            def start(
                kw: dict[str, object] = kwargs,
                b: threading.Barrier = barrier,
                made: list[SqlAlchemyViewStore] = stores,
            ) -> None:
                b.wait()
                try:
                    made.append(SqlAlchemyViewStore(postgres, **kw))
                except Exception as exc:  # the failure is what is counted
                    failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")

            threads = [threading.Thread(target=start) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            for s in stores:
                s.close()
    assert not failures, failures
