"""Walking around the SQL guard, on both stores, through the real query path.

One hub (chDB for analytics, SQLite for transactional) holds tenant ``acme``'s accounts (PII:
``customer_name``, ``email``), payments and trades. Every query below is run as an analyst of
``acme`` (no ``pii.read``) and of ``globex`` (no rows of its own), and must either be refused with
``InvalidInput`` or return rows that hold none of: acme's PII (also hex-encoded), acme's rows for
globex, or anything from the stores' own catalogs (``sqlite_master``, ``system.*``).
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput, NotFound
from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.ports.views import ViewGrant
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

N = 40
NAME, MAIL = "Zed Secretname", "zed.secret@hidden.example"
ACME_ACCOUNT = "ACMEACC"  # acme's account ids: ACMEACC0 ... (globex must never see one)
# What the stores' own catalogs hold: a table's DDL, engine and database names.
CATALOG_TEXT = ("CREATE TABLE", "CREATE VIEW", "MergeTree", "hub_views", "_projection_offsets")

ACME = Principal("ann", frozenset({"analyst"}), "acme")
GLOBEX = Principal("gus", frozenset({"analyst"}), "globex")

REVIEWER = r"SELECT '\' AS a, * FROM accounts_current LIMIT 1 --'"
REVIEWER_COUNT = r"SELECT '\' AS a, count(*) AS n FROM accounts_current --'"


def _accounts() -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            event_type="hub.accounts.AccountOpened",
            value={
                "account_id": f"{ACME_ACCOUNT}{i}",
                "customer_name": f"{NAME} {i}",
                "email": f"{i}.{MAIL}",
                "date_of_birth": "1980-02-03",
                "country": "GB",
                "kyc_level": "STANDARD",
                "risk_rating": "LOW",
                "base_currency": "EUR",
                "opened_at": "2026-11-25T10:00:00Z",
            },
        )
        for i in range(N)
    ]


def _trades() -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            value={
                "trade_id": f"t{i}",
                "account_id": f"{ACME_ACCOUNT}{i % 4}",
                "instrument": f"XS{i % 2}",
                "side": "BUY",
                "quantity": "1.5",
                "price": "100.25",
                "currency": "USD",
                "fees": "0.10",
                "executed_at": f"2026-01-01T00:{i % 60:02d}:00Z",
            }
        )
        for i in range(N)
    ]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data: Path = tmp_path_factory.mktemp("sqlguard") / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))
    try:
        h.publisher.publish("accounts", _accounts(), producer="t", tenant="acme")
        h.publisher.publish("trades", _trades(), producer="t", tenant="acme")
        h.projections.run(["accounts", "positions"])
        yield h
    finally:
        h.close()


def forbidden_in(rows: list[dict[str, Any]], who: Principal) -> list[str]:
    """The forbidden values in ``rows`` as ``who`` got them (empty when none)."""
    secrets = [NAME, MAIL, "Secretname", "hidden.example"]
    marks = secrets + [binascii.hexlify(s.encode()).decode() for s in secrets] + list(CATALOG_TEXT)
    if who.tenant != "acme":
        marks.append(ACME_ACCOUNT)
        marks.append(binascii.hexlify(ACME_ACCOUNT.encode()).decode())
    found = []
    for row in rows:
        for value in row.values():
            text = str(value)
            found += [f"{m} in {text[:80]!r}" for m in marks if m.lower() in text.lower()]
    return found


def run(hub: Hub, who: Principal, sql: str, store: str) -> list[dict[str, Any]] | None:
    """The rows, or None when the query was refused (``InvalidInput`` 422, ``NotFound`` 404)."""
    try:
        return list(hub.projections.query(hub.policy, who, sql, store).to_pylist())
    except (InvalidInput, NotFound):
        return None


# -- the reviewer's case ----------------------------------------------------------------------
def test_the_detector_sees_what_a_reader_with_every_grant_gets(hub: Hub) -> None:
    """A control: with ``pii.read`` and every tenant the same rows are forbidden to analysts."""
    admin = Principal("root", frozenset({"admin"}), "default")
    rows = run(hub, admin, "SELECT * FROM accounts_current", "transactional")
    assert rows is not None and forbidden_in(rows, GLOBEX) != []
    assert run(hub, admin, "SELECT count() AS n FROM positions", "analytics") == [{"n": 4}]


def test_the_reviewers_query_on_sqlite_returns_masked_rows_of_the_callers_tenant(hub: Hub) -> None:
    rows = run(hub, ACME, REVIEWER, "transactional")
    assert rows is not None and len(rows) == 1
    assert rows[0]["customer_name"] is None and rows[0]["email"] is None
    assert rows[0]["tenant"] == "acme" and rows[0]["a"] == "\\"
    assert run(hub, GLOBEX, REVIEWER_COUNT, "transactional") == [{"a": "\\", "n": 0}]
    assert run(hub, ACME, REVIEWER_COUNT, "transactional") == [{"a": "\\", "n": N}]
    master = REVIEWER.replace("accounts_current", "sqlite_master")
    assert run(hub, ACME, master, "transactional") is None


def test_the_reviewers_query_on_chdb_is_one_string_literal_and_reaches_nothing(hub: Hub) -> None:
    # ClickHouse does read \' as an escaped quote: the whole rest is one string, no table.
    rows = run(hub, GLOBEX, REVIEWER.replace("accounts_current", "positions"), "analytics")
    assert rows is not None and forbidden_in(rows, GLOBEX) == []
    assert run(hub, GLOBEX, "SELECT count() AS n FROM positions", "analytics") == [{"n": 0}]
    assert run(hub, ACME, "SELECT count() AS n FROM positions", "analytics") == [{"n": 4}]
    # The same walk around as SQLite would read it: a real table after the literal.
    sneaky = r"SELECT '\\' AS a, * FROM positions LIMIT 1 --'"
    rows = run(hub, GLOBEX, sneaky, "analytics")
    assert rows == []


def test_the_reviewers_query_over_http_as_an_analyst(hub: Hub) -> None:
    from hub.api.app import create_app

    token = hub.keys.create(["analyst"], principal="gus-http", tenant="globex").token
    with TestClient(create_app(hub)) as client:
        body = {"sql": REVIEWER_COUNT, "store": "transactional"}
        r = client.post("/v1/query", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [{"a": "\\", "n": 0}]


# -- a table of walk-arounds ------------------------------------------------------------------
SQLITE_ATTEMPTS = [
    "SELECT * FROM accounts_current",
    "SELECT customer_name, email FROM accounts_current",
    "SELECT hex(email) AS h, length(customer_name) AS l FROM accounts_current",
    "SELECT upper(email) || lower(customer_name) AS x FROM accounts_current",
    "SELECT account_id FROM accounts_current WHERE email LIKE 'zed%'",
    "SELECT account_id FROM accounts_current ORDER BY email LIMIT 1",
    "SELECT count(*) AS n FROM accounts_current WHERE substr(customer_name, 1, 3) = 'Zed'",
    "SELECT a.email FROM accounts_current AS a JOIN accounts_current b USING (account_id)",
    "SELECT * FROM (SELECT * FROM accounts_current) AS x",
    "WITH x AS (SELECT * FROM accounts_current) SELECT email FROM x",
    "WITH accounts_current AS (SELECT 1) SELECT * FROM accounts_current",
    "WITH q AS (SELECT 1) SELECT * FROM (WITH z AS (SELECT 2) SELECT * FROM z), sqlite_master",
    "SELECT * FROM (WITH secret AS (SELECT 1) SELECT 1) AS s, secret",
    "SELECT email FROM accounts_current UNION ALL SELECT sql FROM sqlite_master",
    "SELECT * FROM accounts_current WHERE tenant = 'acme' OR 1 = 1",
    "SELECT * FROM accounts_current WHERE tenant <> 'nobody'",
    "SELECT * FROM main.accounts_current",
    'SELECT * FROM "main"."accounts_current"',
    "SELECT * FROM `accounts_current`",
    'SELECT "email" FROM "accounts_current"',
    "SELECT * FROM [accounts_current]",
    "SELECT * FROM temp.sqlite_master",
    "SELECT * FROM sqlite_schema",
    "SELECT name FROM pragma_table_info('accounts_current')",
    "SELECT * FROM pragma_table_info('accounts_current')",
    "SELECT * FROM _projection_offsets",
    "SELECT * FROM _view_states",
    "SELECT * FROM json_each('[1]')",
    "SELECT readfile('/etc/passwd')",
    "SELECT load_extension('x')",
    "SELECT writefile('/tmp/x', email) FROM accounts_current",
    "PRAGMA table_info(accounts_current)",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "SELECT 1; SELECT * FROM sqlite_master",
    "SELECT 1 /* ; */ ; DROP TABLE accounts_current",
    "SELECT '\\'; SELECT * FROM sqlite_master --'",
    'SELECT "\\" AS a, * FROM accounts_current --"',
    "SELECT 1 -- \n, (SELECT sql FROM sqlite_master LIMIT 1)",
    "SELECT (SELECT group_concat(email) FROM accounts_current) AS x",
    "SELECT (SELECT group_concat(sql) FROM sqlite_master) AS x",
    "SELECT * FROM accounts_current WHERE account_id IN (SELECT name FROM sqlite_master)",
    "SELECT * FROM accounts_current INDEXED BY x",
    "SELECT count(*) AS n FROM payment_status WHERE 'acme' IN _projection_offsets",
    "SELECT count(*) AS n FROM accounts_current WHERE account_id IN main.accounts_current",
    "SELECT ? AS x",
    "INSERT INTO accounts_current (account_id) VALUES ('x')",
    "DELETE FROM accounts_current",
    "SELECT * FROM accounts_current AS a, payment_status AS p WHERE a.tenant = p.tenant",
]
CHDB_ATTEMPTS = [
    "SELECT * FROM positions",
    "SELECT * FROM system.tables",
    "SELECT name FROM system.databases",
    "SELECT * FROM hub_views.positions",
    "SELECT * FROM hub_views.positions__p",
    "SELECT * FROM positions__p",
    "SELECT * FROM `hub_views`.`positions`",
    'SELECT * FROM "hub_views"."positions"',
    "SELECT * FROM positions FINAL",
    "SELECT * FROM positions SETTINGS readonly = 0",
    "SELECT * FROM positions FORMAT JSON",
    "SELECT * FROM positions INTO OUTFILE '/tmp/x'",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:22080/', 'CSV')",
    "SELECT * FROM remote('127.0.0.1', system.tables)",
    "SELECT * FROM s3('http://x/y', 'CSV')",
    "SELECT * FROM executable('ls', 'CSV', 'x String')",
    "SELECT * FROM numbers(3)",
    "SELECT * FROM merge('hub_views', '.*')",
    "SELECT * FROM clusterAllReplicas('default', system.tables)",
    "SELECT getSetting('readonly')",
    "SELECT file('/etc/passwd')",
    "SELECT dictGet('d', 'x', 1)",
    "SELECT * FROM positions WHERE tenant = 'acme' OR 1",
    "SELECT count() AS n FROM positions AS p JOIN positions q ON p.account_id = q.account_id",
    "SELECT * FROM (SELECT * FROM positions) AS x",
    "WITH x AS (SELECT * FROM positions) SELECT * FROM x",
    "WITH positions AS (SELECT 1) SELECT * FROM positions",
    "SELECT * FROM positions UNION ALL SELECT * FROM positions",
    "SELECT 1; SELECT * FROM system.tables",
    "SELECT '\\'; SELECT * FROM system.tables --'",
    "SELECT 1 -- \n, (SELECT name FROM system.databases LIMIT 1)",
    "SELECT (SELECT groupArray(name) FROM system.tables) AS x",
    "SELECT * FROM positions WHERE account_id IN (SELECT name FROM system.tables)",
    "SELECT count() AS n FROM positions WHERE 'ACMEACC0' IN hub_views.positions__p",
    "SELECT count() AS n FROM positions WHERE 'hub_views' IN system.databases",
    "SELECT count() AS n FROM positions WHERE 'hub_views' IN (system.databases)",
    "SELECT 'hub_views' IN system.databases AS leak",
    "SELECT {x:String} AS a",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "DESCRIBE TABLE system.tables",
    "SHOW DATABASES",
    "SYSTEM SHUTDOWN",
    "OPTIMIZE TABLE positions FINAL",
]


@pytest.mark.parametrize("sql", SQLITE_ATTEMPTS)
def test_sqlite_walk_arounds_are_refused_or_harmless(hub: Hub, sql: str) -> None:
    for who in (ACME, GLOBEX):
        rows = run(hub, who, sql, "transactional")
        assert rows is None or forbidden_in(rows, who) == [], (who.tenant, rows)


@pytest.mark.parametrize("sql", CHDB_ATTEMPTS)
def test_chdb_walk_arounds_are_refused_or_harmless(hub: Hub, sql: str) -> None:
    rows = run(hub, GLOBEX, sql, "analytics")
    assert rows is None or forbidden_in(rows, GLOBEX) == [], rows


def test_masking_holds_on_chdb_for_any_expression_over_the_column(hub: Hub) -> None:
    """The analytics catalog has no PII column: mask ``account_id`` in the grant instead and
    query the chDB store itself, the way the service does."""
    store = hub.projections.store("analytics")
    grants = [
        g
        if g.name != "positions"
        else ViewGrant(g.name, g.columns, "acme", frozenset({"account_id"}))
        for g in hub.projections.grants(hub.policy, ACME, "analytics")
    ]
    for sql in [
        "SELECT * FROM positions",
        "SELECT hex(account_id) AS h, length(account_id) AS l FROM positions",
        "SELECT count() AS n FROM positions WHERE account_id LIKE 'ACME%'",
        "SELECT any(account_id) AS a FROM positions AS p GROUP BY p.instrument",
        "SELECT concat(account_id, '') AS a FROM positions ORDER BY account_id",
    ]:
        rows = store.query(sql, grants).to_pylist()
        assert rows and forbidden_in(rows, GLOBEX) == [], (sql, rows)
    assert store.query("SELECT count() AS n FROM positions", grants).to_pylist() == [{"n": 4}]


# -- random quoting, comments and escapes -----------------------------------------------------
JUNK = [
    " ",
    "\n",
    "/**/",
    "/* ' */",
    '/* " */',
    "-- '\n",
    "--\\'\n",
    "'\\'",
    "'\\\\'",
    "''''",
    "'--'",
    "'/*'",
    "'*/'",
    '"\\"',
    "`",
    "\\",
    "'",
    '"',
    ";",
    "#",
    "$$",
    "E'\\''",
]
CORES = {
    "transactional": [
        "SELECT {j} * FROM accounts_current {j}",
        "SELECT {j} email {j} FROM accounts_current",
        "SELECT hex(customer_name) {j} FROM {j} accounts_current",
        "SELECT {j} sql FROM sqlite_master {j}",
        "SELECT * FROM {j} main.accounts_current {j}",
        "SELECT count(*) AS n FROM accounts_current {j} WHERE tenant = 'acme' {j}",
        "SELECT {j} 1 {j} UNION SELECT name FROM sqlite_master",
        "SELECT {j} AS a, * FROM accounts_current LIMIT 1 {j}",
    ],
    "analytics": [
        "SELECT {j} * FROM positions {j}",
        "SELECT {j} name FROM system.tables {j}",
        "SELECT * FROM {j} hub_views.positions {j}",
        "SELECT count() AS n FROM positions {j} WHERE tenant = 'acme' {j}",
        "SELECT {j} 1 {j} UNION ALL SELECT name FROM system.databases",
        "SELECT {j} AS a, * FROM positions LIMIT 1 {j}",
    ],
}


SCOPED = HealthCheck.function_scoped_fixture  # the hub is module-scoped: shared on purpose


@st.composite
def attempts(draw: st.DrawFn, store: str) -> str:
    core = draw(st.sampled_from(CORES[store]))
    parts = core.split("{j}")
    out = parts[0]
    for p in parts[1:]:
        out += "".join(draw(st.lists(st.sampled_from(JUNK), max_size=4))) + p
    return out + "".join(draw(st.lists(st.sampled_from(JUNK), max_size=3)))


@settings(max_examples=80, deadline=None, suppress_health_check=[SCOPED])
@given(sql=attempts("transactional"))
def test_random_quoting_never_leaks_on_sqlite(hub: Hub, sql: str) -> None:
    for who in (ACME, GLOBEX):
        rows = run(hub, who, sql, "transactional")
        assert rows is None or forbidden_in(rows, who) == [], (sql, who.tenant, rows)


@settings(max_examples=50, deadline=None, suppress_health_check=[SCOPED])
@given(sql=attempts("analytics"))
def test_random_quoting_never_leaks_on_chdb(hub: Hub, sql: str) -> None:
    rows = run(hub, GLOBEX, sql, "analytics")
    assert rows is None or forbidden_in(rows, GLOBEX) == [], (sql, rows)


# -- defence in depth: the store's own guard, with the rewrite taken away ------------------------
def test_sqlite_authorizer_holds_when_the_rewrite_is_skipped(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the parser ever fooled, SQLite itself still denies other tables and reads masked
    columns as NULL (the tenant filter is the rewrite's alone)."""
    import adapters.sqlalchemy_views as views

    monkeypatch.setattr(views, "guard", lambda sql, *args, **kw: sql)
    assert run(hub, ACME, "SELECT sql FROM sqlite_master", "transactional") is None
    assert run(hub, ACME, "SELECT * FROM _projection_offsets", "transactional") is None
    assert run(hub, ACME, "DELETE FROM accounts_current", "transactional") is None
    rows = run(
        hub, ACME, "SELECT email, hex(customer_name) AS h FROM accounts_current", "transactional"
    )
    assert rows is not None and len(rows) == N
    assert {r["email"] for r in rows} == {None} and forbidden_in(rows, ACME) == []
    monkeypatch.undo()
    assert run(hub, ACME, "SELECT count(*) AS n FROM accounts_current", "transactional") == [
        {"n": N}
    ]


# -- PostgreSQL (where infra/postgres.sh runs: CI, or HUB_TEST_POSTGRES_URL) ---------------------
POSTGRES_ATTEMPTS = [
    *SQLITE_ATTEMPTS,
    "SELECT * FROM pg_catalog.pg_user",
    "SELECT * FROM pg_user",
    "SELECT * FROM pg_settings",
    "SELECT * FROM pg_tables",
    "SELECT * FROM information_schema.tables",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT set_config('statement_timeout', '0', false)",
    "SELECT current_setting('search_path')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT * FROM dblink('dbname=hub', 'SELECT 1') AS t(a int)",
    "SELECT E'\\'' AS a, * FROM accounts_current --'",
    "SELECT $$'$$ AS a, * FROM accounts_current --'",
    "SELECT U&'\\0027' AS a, * FROM accounts_current",
    "SELECT * FROM accounts_current FOR UPDATE",
    "COPY accounts_current TO STDOUT",
    "SELECT email::text FROM accounts_current",
    "SELECT row_to_json(a) AS j FROM accounts_current AS a",
    "SELECT (SELECT string_agg(usename, ',') FROM pg_user) AS u",
]


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub whose transactional views live in their own PostgreSQL schema (dropped after)."""
    import uuid

    import sqlalchemy as sa

    from tests.infra import postgres_url

    url = postgres_url("the SQL guard on PostgreSQL")
    schema = f"sqlguard_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    data = tmp_path_factory.mktemp("sqlguard_pg") / "data"
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=data,
            projection_autostart=False,
            views_sql_url=f"{url}{sep}options=-csearch_path%3D{schema}",
        )
    )
    try:
        h.publisher.publish("accounts", _accounts(), producer="t", tenant="acme")
        h.projections.run(["accounts"])
        yield h
    finally:
        h.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def test_the_reviewers_query_on_postgres(pg_hub: Hub) -> None:
    rows = run(pg_hub, ACME, REVIEWER, "transactional")
    # PostgreSQL reads '\' as one backslash (standard_conforming_strings), like SQLite.
    assert rows is not None and len(rows) == 1 and rows[0]["email"] is None
    assert run(pg_hub, GLOBEX, REVIEWER_COUNT, "transactional") == [{"a": "\\", "n": 0}]
    assert run(pg_hub, ACME, REVIEWER_COUNT, "transactional") == [{"a": "\\", "n": N}]


@pytest.mark.parametrize("sql", POSTGRES_ATTEMPTS)
def test_postgres_walk_arounds_are_refused_or_harmless(pg_hub: Hub, sql: str) -> None:
    for who in (ACME, GLOBEX):
        rows = run(pg_hub, who, sql, "transactional")
        assert rows is None or forbidden_in(rows, who) == [], (who.tenant, rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[SCOPED])
@given(sql=attempts("transactional"))
def test_random_quoting_never_leaks_on_postgres(pg_hub: Hub, sql: str) -> None:
    for who in (ACME, GLOBEX):
        rows = run(pg_hub, who, sql, "transactional")
        assert rows is None or forbidden_in(rows, who) == [], (sql, who.tenant, rows)
