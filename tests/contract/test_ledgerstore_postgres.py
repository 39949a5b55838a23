"""The LedgerStore contract against PostgreSQL (``adapters/postgres_ledgerstore.py``), on the
cluster ``infra/postgres.sh`` runs (started when needed; skipped loudly locally, required under
CI). Every test gets its own schema, dropped afterwards."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError, HubError
from core.ports.ledgerstore import LedgerStore
from tests import infra
from tests.contract.ledgerstore_contract import LedgerStoreContract, Peer

pytest.importorskip("psycopg")

from adapters.postgres_ledgerstore import PostgresLedgerStore, libpq_url


@pytest.fixture(scope="module")
def pg_url() -> str:
    return infra.postgres_url("the PostgreSQL LedgerStore contract")


@pytest.fixture
def schema() -> str:
    return f"ledger_{uuid.uuid4().hex[:12]}"


class TestPostgresLedgerStore(LedgerStoreContract):
    @pytest.fixture
    def store(self, pg_url: str, schema: str) -> Iterator[LedgerStore]:
        s = PostgresLedgerStore(pg_url, schema=schema)
        yield s
        s.drop()
        s.close()

    @pytest.fixture
    def peer(self, pg_url: str, schema: str, store: LedgerStore) -> Iterator[Peer]:
        opened: list[LedgerStore] = []

        def peer() -> LedgerStore:
            opened.append(PostgresLedgerStore(pg_url, schema=schema))
            return opened[-1]

        yield peer
        for s in opened:
            s.close()


def test_a_schema_with_another_ledger_version_is_refused(pg_url: str, schema: str) -> None:
    s = PostgresLedgerStore(pg_url, schema=schema)
    try:
        with s._session() as conn:
            conn.execute(f"UPDATE {schema}.meta SET value = '9' WHERE key = 'schema_version'")
        with pytest.raises(HubError, match="holds a ledger of version 9, not 1"):
            PostgresLedgerStore(pg_url, schema=schema)
    finally:
        s.drop()
        s.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(HubError, match="HUB_LEDGER_POSTGRES_URL") as got:
        PostgresLedgerStore("postgresql://hub:secret@127.0.0.1:1/hub")
    assert "secret" not in got.value.message


def test_sqlalchemy_urls_are_accepted() -> None:
    assert libpq_url("postgresql+psycopg://a:b@h:1/d") == "postgresql://a:b@h:1/d"
    assert libpq_url("postgresql://a@h/d") == "postgresql://a@h/d"


def test_the_postgres_ledger_needs_its_url(tmp_path: Path) -> None:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    settings = load_settings(environ={}, data_dir=tmp_path / "d", ledger_store="postgres")
    with pytest.raises(ConfigError, match="HUB_LEDGER_POSTGRES_URL"):
        bootstrap(settings)


def test_a_writer_paused_inside_its_transaction_is_cut_and_the_next_proceeds(
    pg_url: str, schema: str
) -> None:
    """A writer that stops (SIGSTOP, a hang) holding the advisory lock in an open transaction:
    PostgreSQL ends its session after ``idle_timeout_s`` and the next writer gets the lock."""
    paused = PostgresLedgerStore(pg_url, schema=schema, idle_timeout_s=1.0)
    nxt = PostgresLedgerStore(pg_url, schema=schema, lock_timeout_s=20.0)
    got: list[object] = []

    def write_next() -> None:
        try:
            with nxt.write() as w:
                got.append(w.size())
        except BaseException as exc:
            got.append(exc)

    try:
        with pytest.raises(HubError), paused.write():  # the lock, then idle: the pause
            other = threading.Thread(target=write_next)
            other.start()
            other.join(timeout=15)
            assert not other.is_alive(), "the next writer still waits for the paused one"
        assert got == [0]  # the next writer took the lock and wrote
        with paused.write() as w:  # the paused process, resumed, reconnects and works again
            assert w.size() == 0
    finally:
        nxt.drop()
        nxt.close()
        paused.close()


def test_the_idle_timeout_setting_reaches_the_stores_sessions(
    pg_url: str, schema: str, tmp_path: Path
) -> None:
    """``HUB_LEDGER_POSTGRES_IDLE_TIMEOUT_S`` is the store's idle-in-transaction timeout (the
    composition root passes it), in the sessions it opens; 60 s when unset."""
    from hub.bootstrap import open_ledger_store
    from hub.settings import load_settings

    def timeout(environ: dict[str, str]) -> str:
        settings = load_settings(
            environ=environ,
            data_dir=tmp_path / "d",
            ledger_store="postgres",
            ledger_postgres_url=pg_url,
            ledger_postgres_schema=schema,
        )
        store = open_ledger_store(settings)
        try:
            assert isinstance(store, PostgresLedgerStore)
            with store._session() as conn:
                row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            return str(row[0]) if row else ""
        finally:
            store.close()

    try:
        assert timeout({"HUB_LEDGER_POSTGRES_IDLE_TIMEOUT_S": "7.5"}) == "7500ms"
        assert timeout({}) == "1min"
    finally:
        left = PostgresLedgerStore(pg_url, schema=schema)
        left.drop()
        left.close()


def test_the_idle_timeout_must_be_positive(pg_url: str, schema: str) -> None:
    with pytest.raises(ConfigError, match="paused writer"):
        PostgresLedgerStore(pg_url, schema=schema, idle_timeout_s=0)
