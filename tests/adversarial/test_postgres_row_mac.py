"""The PostgreSQL ledger store's query columns under a MAC (as the SQLite row store's,
test_row_store_mac). Whoever can write the ledger's schema (a database role, a restored dump),
not the hub's ``keys/``, rewrites a leaf row's tenant, action, actor or time: the leaf hash,
the tree and the checkpoints are untouched, so the default verify passed, and a filtered read
selects by SQL and leaves the entry out. Each appended batch of rows now carries a MAC under a
key in ``keys/``; the default verify checks every batch and their coverage. Real PostgreSQL
(infra/postgres.sh, the slot's cluster)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import infra
from tests.service.test_ledger import cli, make_hub, publish

psycopg = pytest.importorskip("psycopg")

from adapters.postgres_conn import libpq_url  # noqa: E402


@pytest.fixture(scope="module")
def pg_url() -> str:
    return infra.postgres_url("the PostgreSQL ledger row MAC tests")


@pytest.fixture
def schema(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    # the CLI's settings come from the environment: the same ledger the hub below wrote
    monkeypatch.setenv("HUB_LEDGER_STORE", "postgres")
    monkeypatch.setenv("HUB_LEDGER_POSTGRES_URL", pg_url)
    monkeypatch.setenv("HUB_LEDGER_POSTGRES_SCHEMA", name)
    yield name
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _sql(pg_url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def data(tmp_path: Path, pg_url: str, schema: str) -> Path:
    data = tmp_path / "data"
    h = make_hub(
        data,
        checkpoint_every_leaves=64,
        ledger_store="postgres",
        ledger_postgres_url=pg_url,
        ledger_postgres_schema=schema,
    )
    try:
        publish(h, 60)
        h.ledger.sync(force_checkpoint=True)
        h.ledger.record_action("ann", "policy.change", "policy/bundle-7", tenant="acme")
        publish(h, 20, start=60)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, out + err
    return data


def _policy_change(pg_url: str, schema: str) -> int:
    rows = _sql(pg_url, f"SELECT idx FROM {schema}.leaves WHERE action = 'policy.change'")
    assert len(rows) == 1, rows
    return int(rows[0][0])  # type: ignore[call-overload]


def _verify_fails(data: Path, said: str) -> None:
    code, out, err = cli(data, "ledger", "verify")  # the default: incremental
    assert code == 1, out + err
    assert said in out + err, out + err


@pytest.mark.parametrize(
    ("column", "value"),
    [("tenant", "'globex'"), ("action", "'note.seen'"), ("ts_ms", "1000"), ("actor", "'bob'")],
)
def test_a_rewritten_column_fails_the_default_verify(
    data: Path, pg_url: str, schema: str, column: str, value: str
) -> None:
    index = _policy_change(pg_url, schema)
    _sql(pg_url, f"UPDATE {schema}.leaves SET {column} = {value} WHERE idx = {index}")
    _verify_fails(data, "do not match their MAC")


def test_the_entry_drops_out_of_a_filtered_read_but_verify_says_why(
    data: Path, pg_url: str, schema: str
) -> None:
    index = _policy_change(pg_url, schema)
    _sql(pg_url, f"UPDATE {schema}.leaves SET action = 'note.seen' WHERE idx = {index}")
    code, out, _err = cli(data, "ledger", "entries", "--action", "policy.change")
    assert code == 0 and out.strip() == "", out
    _verify_fails(data, "leaf rows")


def test_removed_macs_fail_and_are_not_keyed_again(data: Path, pg_url: str, schema: str) -> None:
    index = _policy_change(pg_url, schema)
    _sql(pg_url, f"UPDATE {schema}.leaves SET tenant = 'globex' WHERE idx = {index}")
    _sql(pg_url, f"DELETE FROM {schema}.leaf_macs")
    _verify_fails(data, "covered by no MAC")
    _verify_fails(data, "covered by no MAC")  # the open in between did not key them


def test_a_schema_from_before_the_mac_is_keyed_once_on_open(
    data: Path, pg_url: str, schema: str
) -> None:
    _sql(pg_url, f"DROP TABLE {schema}.leaf_macs")
    marker = data / "keys" / f"ledger-rows.{schema}.keyed"
    marker.unlink()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, out + err
    assert marker.exists()
    _sql(pg_url, f"UPDATE {schema}.leaves SET actor = 'bob' WHERE idx = 3")
    _verify_fails(data, "do not match their MAC")
