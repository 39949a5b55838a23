"""The query guard's parse, checks and rewrite (pure: no store)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from core.errors import InvalidInput
from core.ports.views import ViewGrant
from core.sqlguard import Dialect, guard, views_named
from projections import metadata
from projections.catalog import PROJECTIONS

ACCOUNTS = ViewGrant(
    "accounts_current",
    ("tenant", "account_id", "customer_name", "email"),
    "acme",
    frozenset({"customer_name", "email"}),
)
POSITIONS = ViewGrant("positions", ("tenant", "account_id", "quantity"), None)
GRANTS = [ACCOUNTS, POSITIONS]


def rewrite(sql: str, dialect: Dialect = "sqlite", tables: tuple[str, ...] = ()) -> str:
    return guard(sql, dialect, GRANTS, lambda v: exp.table_(v, db="store"), tables)


def refused(sql: str, dialect: Dialect = "sqlite", tables: tuple[str, ...] = ()) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        rewrite(sql, dialect, tables)
    return info.value


def stored_reads(sql: str, dialect: Dialect) -> list[exp.Table]:
    return list(sqlglot.parse_one(sql, read=dialect).find_all(exp.Table))


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "clickhouse"])
def test_every_view_reference_becomes_a_filtered_masked_subquery(dialect: Dialect) -> None:
    sql = (
        "WITH x AS (SELECT * FROM accounts_current) "
        "SELECT a.email, x.customer_name FROM accounts_current AS a JOIN x USING (account_id) "
        "WHERE a.account_id IN (SELECT account_id FROM accounts_current)"
    )
    out = rewrite(sql, dialect)
    tables = [t for t in stored_reads(out, dialect) if t.name != "x"]  # x: the CTE
    assert len(tables) == 3 and {t.db for t in tables} == {"store"}  # no bare view name left
    tree = sqlglot.parse_one(out, read=dialect)
    checked = 0
    for sub in tree.find_all(exp.Subquery):
        inner = sub.this
        source = inner.args.get("from_").this if isinstance(inner, exp.Select) else None
        if isinstance(source, exp.Table) and source.db == "store":
            names = {e.alias_or_name: e for e in inner.expressions}
            assert set(names) == set(ACCOUNTS.columns)
            for c in ("customer_name", "email"):
                assert not list(names[c].find_all(exp.Column)), names[c].sql()  # NULL, no read
            assert inner.args["where"].sql(dialect=dialect) == "WHERE \"tenant\" = 'acme'"
            checked += 1
    assert checked == 3


def test_aliases_are_kept_and_a_view_without_alias_keeps_its_name() -> None:
    out = rewrite("SELECT p.quantity, positions.account_id FROM positions AS p, positions")
    assert ") AS p" in out and ") AS positions" in out
    assert "WHERE" not in out  # POSITIONS has every tenant: no row filter


def test_a_tenant_value_is_a_literal_whatever_it_holds() -> None:
    grant = ViewGrant("positions", ("tenant",), "x' OR '1'='1")
    out = guard("SELECT * FROM positions", "sqlite", [grant], lambda v: exp.table_(v))
    assert "\"tenant\" = 'x'' OR ''1''=''1'" in out


def test_the_reviewers_escape_is_read_as_each_engine_reads_it() -> None:
    sql = r"SELECT '\' AS a, * FROM accounts_current LIMIT 1 --'"
    # SQLite: the string is one backslash, then a real table: wrapped.
    assert len(stored_reads(rewrite(sql, "sqlite"), "sqlite")) == 1
    # ClickHouse: \' escapes the quote, so it is all one literal and reads no table.
    assert stored_reads(rewrite(sql, "clickhouse"), "clickhouse") == []


def test_comments_are_dropped_from_the_generated_sql() -> None:
    out = rewrite("SELECT 1 /* x */ -- */ FROM sqlite_master\n", "postgres")
    assert out == "SELECT 1"


@pytest.mark.parametrize(
    ("sql", "code", "says"),
    [
        ("", "invalid_query", "empty"),
        ("SELECT 'unterminated", "invalid_query", "could not be parsed"),
        ("DROP TABLE positions", "query_not_select", "not DROP"),
        ("PRAGMA query_only = OFF", "query_not_select", "PRAGMA"),
        ("SELECT 1; SELECT 2", "query_not_select", "one statement"),
        ("SELECT * FROM sqlite_master", "query_refused", "'sqlite_master' is not a view"),
        ("SELECT * FROM store.positions", "query_refused", "Qualified table name"),
        ("SELECT * FROM json_each('[]')", "query_refused", "json_each()"),
        ("SELECT load_extension('x')", "query_refused", "load_extension()"),
        ("SELECT readfile('/etc/passwd')", "query_refused", "readfile()"),
        ("SELECT 1 INTO x", "query_refused", "INTO"),
        ("SELECT ?", "query_refused", "parameters"),
        ("SELECT 1 FROM positions WHERE 'a' IN _v", "query_refused", "IN followed by a name"),
        ("SELECT * FROM (VALUES (1))", "query_refused", "VALUES"),
        ("WITH positions AS (SELECT 1) SELECT * FROM positions", "query_refused", "WITH"),
        ("WITH _v AS (SELECT 1) SELECT * FROM _v", "query_refused", "WITH"),
        ("SELECT * FROM (WITH s AS (SELECT 1) SELECT 1) AS t, s", "query_refused", "'s'"),
    ],
)
def test_sqlite_refusals_name_the_problem(sql: str, code: str, says: str) -> None:
    err = refused(sql, tables=("_v",))
    assert err.code == code and says in err.message, err.message


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT * FROM system.tables", "Qualified table name system.tables"),
        ("SELECT * FROM file('/etc/passwd')", "file()"),
        ("SELECT * FROM remote('h', system.tables)", "remote()"),
        ("SELECT * FROM url('http://x', 'CSV')", "url()"),
        ("SELECT * FROM s3('http://x', 'CSV')", "s3()"),
        ("SELECT * FROM executable('ls', 'CSV', 'x String')", "executable()"),
        ("SELECT * FROM numbers(10)", "numbers()"),
        ("SELECT getSetting('readonly')", "getSetting()"),
        ("SELECT * FROM positions FINAL", "FINAL"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT 1 FORMAT JSON", "FORMAT"),
        ("SELECT {p:String}", "parameters"),
        ("SELECT 'x' IN system.databases", "IN followed by a name"),
        ("SELECT 1 FROM positions WHERE 'x' IN (positions__p)", "IN followed by a name"),
    ],
)
def test_clickhouse_refusals_name_the_problem(sql: str, says: str) -> None:
    err = refused(sql, "clickhouse")
    assert says in err.message, err.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT set_config('a', 'b', false)",
        "SELECT current_setting('a')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT * FROM dblink('x', 'SELECT 1') AS t(a int)",
        "SELECT * FROM pg_catalog.pg_user",
        "SELECT * FROM pg_settings",
        "SELECT * FROM information_schema.tables",
    ],
)
def test_postgres_refusals(sql: str) -> None:
    assert refused(sql, "postgres").code in ("query_refused", "invalid_query")


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        (
            "SELECT countIf(quantity > 1), sumIf(quantity, 1), uniqExact(account_id) "
            "FROM positions",
            "clickhouse",
        ),
        ("SELECT toStartOfHour(now()) AS h, quantile(0.5)(quantity) FROM positions", "clickhouse"),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
            "SELECT * FROM r",
            "sqlite",
        ),
        ("SELECT strftime('%Y', 'now'), printf('%d', 1), total(quantity) FROM positions", "sqlite"),
        (
            "SELECT date_trunc('day', now()), to_char(now(), 'YYYY'), string_agg(account_id, ',') "
            "FROM positions",
            "postgres",
        ),
        ("SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3", "sqlite"),
    ],
)
def test_ordinary_analytics_sql_is_accepted(sql: str, dialect: Dialect) -> None:
    rewrite(sql, dialect)


def test_views_named_reads_through_ctes_and_subqueries() -> None:
    sql = "WITH x AS (SELECT * FROM positions) SELECT * FROM x, (SELECT 1 FROM accounts_current)"
    assert views_named(sql, "sqlite") == {"positions", "accounts_current"}
    assert views_named("SELECT 'positions'", "sqlite") == set()
    assert views_named("SELECT (", "sqlite") is None


def test_show_tables_and_describe_answer_from_the_catalog() -> None:
    assert metadata.statement("show tables;") == ("show", None)
    assert metadata.statement("DESCRIBE TABLE `positions`") == ("describe", "positions")
    assert metadata.statement("desc positions") == ("describe", "positions")
    assert metadata.statement("SELECT 1") is None
    mine = [p for p in PROJECTIONS if p.store == "transactional"]
    shown = metadata.answer("SHOW TABLES", mine, [ACCOUNTS]).to_pylist()
    assert [r["name"] for r in shown] == ["accounts_current"]  # only what is granted
    cols = metadata.answer("DESCRIBE accounts_current", mine, [ACCOUNTS]).to_pylist()
    assert [c["name"] for c in cols] == list(ACCOUNTS.columns)
    by_name = {c["name"]: c for c in cols}
    assert by_name["email"]["masked"] is True and by_name["account_id"]["masked"] is False
    assert all(isinstance(c["description"], str) for c in cols)
    with pytest.raises(Exception, match="no view 'payment_status'"):
        metadata.answer("DESCRIBE payment_status", mine, [ACCOUNTS])
