"""PostgreSQL views hold PII sealed (crypto-shredding), never in plaintext (session 20).

Finding (medium, left open in session 19): the transactional views on PostgreSQL stored the PII
columns in plaintext; ``hub erase`` UPDATEs them, but the plaintext stayed in PostgreSQL's WAL,
in the dead tuples until vacuum, and in every base backup or replica. The views now hold each PII
value as the Flink views do (``pii:v2:...``, ``projections.flink.sealed``), opened by the hub on
read, so destroying the subject's key erases every copy.

Needs the cluster ``infra/postgres.sh`` runs (started here; skipped outside CI when it cannot
start). The file checks read its data folder and run CHECKPOINT as its superuser, so they need
the local cluster (not ``HUB_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.avro import serde
from core.errors import HubError, InvalidInput
from core.pii import PiiCodec, plan
from core.ports.eventlog import StoredRecord
from core.ports.keystore import make_aad_v1
from core.ports.policy import Principal
from core.ports.views import Target
from core.sealedquery import sealed_outputs
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from projections.catalog import ACCOUNTS, PAYMENTS
from projections.decode import Decoder, Poison
from projections.flink.sealed import SealedValueInvalid, reader
from tests import infra
from tests.adversarial.test_tenant_aad import _with_tenant
from tests.service.test_erasure import initiated, opened

OPERATOR = Principal("ops", frozenset({"admin"}))


def person(tag: str) -> dict[str, str]:
    """PII unique to this run: the cluster's WAL outlives test runs."""
    n = uuid.uuid4().hex[:10]
    return {
        "name": f"{tag} Sealwright {n}",
        "email": f"{tag.lower()}.{n}@example.org",
        "iban": f"GB33BUKB{n}",
    }


@pytest.fixture(scope="module")
def pg() -> str:  # the tests that take it need PostgreSQL: integration
    if os.environ.get("HUB_TEST_POSTGRES_URL"):
        pytest.skip("the file checks need the cluster infra/postgres.sh runs")
    return infra.postgres_url("the sealed PostgreSQL views test")


@pytest.fixture
def schema(pg: str) -> Iterator[str]:
    name = f"s_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def pg_hub(pg: str, schema: str, data: Path) -> Hub:
    url = f"{pg}?options=-csearch_path%3D{schema}"
    return bootstrap(load_settings(environ={}, data_dir=data, views_sql_url=url))


def checkpoint() -> Path:
    """CHECKPOINT as the cluster's superuser (the hub's role may not): the table files then hold
    every committed page. Returns the data folder."""
    env = infra.checkout_env()
    state = Path(env["HUB_INFRA_DIR"]) / "postgres"
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    command = [str(bins[-1]), "-h", str(state / "socket"), "-p", env["HUB_PG_PORT"]]
    command += ["-U", "postgres", "-d", "hub", "-c", "CHECKPOINT"]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return state / "data"


def table_files(pg: str, schema: str, data: Path) -> list[Path]:
    engine = sa.create_engine(pg)
    with engine.connect() as conn:
        rels = conn.execute(
            sa.text(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('r', 't', 'i')"
            ),
            {"s": schema},
        ).scalars()
        paths = [data / p for p in rels if p]
    engine.dispose()
    return [f for p in paths for f in p.parent.glob(p.name + "*")]


def holding(files: list[Path], secrets: list[str]) -> list[str]:
    found = []
    for f in files:
        raw = f.read_bytes()
        found += [f"{f.name}: {s!r}" for s in secrets if s.encode() in raw]
    return found


def load(h: Hub, alice: dict[str, str], bob: dict[str, str]) -> None:
    h.publisher.publish("accounts", [opened("ACC-A", alice), opened("ACC-B", bob)], "test")
    h.publisher.publish(
        "payments", [initiated("P-1", "ACC-A", alice), initiated("P-2", "ACC-B", bob)], "test"
    )
    h.projections.run(["accounts", "payments"])


def accounts(h: Hub) -> dict[str, tuple[str, str]]:
    rows = h.projections.store("transactional").rows(Target("accounts"), ACCOUNTS.tables[0])
    return {r["account_id"]: (r["customer_name"], r["email"]) for r in rows}


def pg_query(h: Hub, sql: str, who: Principal = OPERATOR) -> list[dict[str, Any]]:
    """``sql`` over the PostgreSQL views as ``who`` (an administrator unless named)."""
    return h.projections.query(h.policy, who, sql, store="transactional").to_pylist()


def secrets_of(who: dict[str, str]) -> list[str]:
    return [who["name"], who["email"]]


@pytest.mark.integration
def test_erased_pii_leaves_no_plaintext_in_postgresql(pg: str, schema: str, tmp_path: Path) -> None:
    alice, bob = person("Alice"), person("Bob")
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        load(h, alice, bob)
        # reads before erasure: plaintext, through rows and through a query
        assert accounts(h)["ACC-A"] == (alice["name"], alice["email"])
        got = pg_query(
            h, "SELECT account_id, customer_name, email FROM accounts_current ORDER BY account_id"
        )
        assert got[0] == {
            "account_id": "ACC-A",
            "customer_name": alice["name"],
            "email": alice["email"],
        }
        status = h.projections.store("transactional").rows(Target("payments"), PAYMENTS.tables[0])
        assert {r["counterparty_name"] for r in status} == {
            alice["name"] + " Ltd",
            bob["name"] + " Ltd",
        }
        data = checkpoint()
        wal = sorted((data / "pg_wal").glob("0*"))
        files = table_files(pg, schema, data)
        assert files and wal  # the premise: there is something to read
        # never in plaintext, not even before the erasure (nothing to scrub from WAL or tuples)
        assert holding(files + wal, secrets_of(alice) + secrets_of(bob)) == []
        h.eraser.erase(OPERATOR, "ACC-A", "DSR-S20", tenant_scope=None)
        after = accounts(h)
        assert after["ACC-A"] == ("[erased]", "[erased]")
        assert after["ACC-B"] == (bob["name"], bob["email"])
        data = checkpoint()
        files = table_files(pg, schema, data)
        wal = sorted((data / "pg_wal").glob("0*"))
        assert holding(files + wal, secrets_of(alice)) == []
    finally:
        h.close()


@pytest.mark.integration
def test_reads_after_the_key_is_destroyed_are_erased_without_the_scrub(
    pg: str, schema: str, tmp_path: Path
) -> None:
    """Destroying the key is the erasure: a sealed value left behind (a copy, a row the scrub did
    not reach) reads as the erased marker."""
    alice, bob = person("Alice"), person("Bob")
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        load(h, alice, bob)
        h.keystore.for_tenant("default").destroy("ACC-A")
        assert accounts(h)["ACC-A"] == ("[erased]", "[erased]")
        assert accounts(h)["ACC-B"] == (bob["name"], bob["email"])
    finally:
        h.close()


@pytest.mark.integration
def test_a_query_over_a_sealed_column_is_refused_with_a_clear_error(
    pg: str, schema: str, tmp_path: Path
) -> None:
    alice, bob = person("Alice"), person("Bob")
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        load(h, alice, bob)
        for sql in (
            f"SELECT account_id FROM accounts_current WHERE email = '{alice['email']}'",
            "SELECT upper(customer_name) FROM accounts_current",
            "SELECT email, count(*) FROM accounts_current GROUP BY email",
            "SELECT account_id FROM accounts_current ORDER BY customer_name",
            "SELECT x.email FROM (SELECT email FROM accounts_current) x",
            "SELECT country AS email FROM accounts_current",
        ):
            with pytest.raises(HubError) as refused:
                pg_query(h, sql)
            assert refused.value.code == "pii_column_sealed", sql
            assert "sealed" in refused.value.message
        # a plain reference, aliased or through *, is opened after the query
        got = pg_query(
            h, "SELECT a.email AS mail, * FROM accounts_current a WHERE account_id = 'ACC-B'"
        )
        assert got[0]["mail"] == bob["email"] and got[0]["customer_name"] == bob["name"]
        # a reader without pii.read: the masked columns are NULL, usable anywhere, never opened
        analyst = Principal("ann", frozenset({"analyst"}), "default")
        sql = "SELECT account_id, email FROM accounts_current WHERE email IS NULL ORDER BY 1"
        got = pg_query(h, sql, analyst)
        assert got == [
            {"account_id": "ACC-A", "email": None},
            {"account_id": "ACC-B", "email": None},
        ]
    finally:
        h.close()


@pytest.mark.integration
def test_plaintext_views_of_an_older_hub_are_resealed_by_a_rebuild(
    pg: str, schema: str, tmp_path: Path
) -> None:
    """Upgrade path: a view an older hub wrote in plaintext reads as before, and a rebuild
    writes it sealed (the old table, plaintext and dead tuples, is dropped)."""
    alice, bob = person("Alice"), person("Bob")
    h = pg_hub(pg, schema, tmp_path / "data")
    try:
        store = h.projections.store("transactional")
        store.seals_pii = False  # what an older hub wrote: plaintext
        load(h, alice, bob)
        data = checkpoint()
        assert holding(table_files(pg, schema, data), secrets_of(alice))  # the premise
        store.seals_pii = True
        assert accounts(h)["ACC-A"] == (alice["name"], alice["email"])
        h.projections.rebuild("accounts")
        h.projections.rebuild("payments")
        assert accounts(h)["ACC-A"] == (alice["name"], alice["email"])
        data = checkpoint()
        assert holding(table_files(pg, schema, data), secrets_of(alice) + secrets_of(bob)) == []
    finally:
        h.close()


def test_only_plain_outermost_references_of_a_sealed_column_are_accepted() -> None:
    pii = ("customer_name", "email")
    assert sealed_outputs("SELECT email, country FROM a", "postgres", pii) == {"email"}
    assert sealed_outputs("SELECT x.EMAIL AS m FROM a x", "postgres", pii) == {"m"}
    assert sealed_outputs("SELECT * FROM a", "postgres", pii) == set(pii)
    assert sealed_outputs("SELECT count(*) AS n FROM a", "postgres", pii) == frozenset()
    renamed = "SELECT n FROM (SELECT count(*) FROM a) s(n)"
    assert sealed_outputs(renamed, "postgres", pii) == frozenset()
    assert sealed_outputs("SELECT email FROM a WHERE email = 'x'", "postgres", ()) == frozenset()
    for sql in (
        "SELECT a FROM t WHERE lower(email) LIKE '%x%'",
        "SELECT email FROM t UNION SELECT email FROM t",
        "WITH c AS (SELECT email FROM t) SELECT * FROM c",
        "SELECT (SELECT max(customer_name) FROM t) AS n",
        "SELECT a FROM t JOIN u ON t.email = u.email",
        "SELECT 'x' AS customer_name FROM t",
        "SELECT * FROM (SELECT a, country AS email FROM t) s",
        "SELECT * FROM (SELECT a, country FROM t) s(a, email)",
        "SELECT customer_name AS email FROM t",
        "SELECT x FROM (SELECT * FROM t) s(a, b, x)",
        "WITH c(a, b, x) AS (SELECT * FROM t) SELECT x FROM c",
    ):
        with pytest.raises(InvalidInput) as refused:
            sealed_outputs(sql, "postgres", pii)
        assert refused.value.code == "pii_column_sealed", sql


@pytest.mark.integration
def test_embedded_and_postgresql_views_read_the_same_before_and_after_erasure(
    pg: str, schema: str, tmp_path: Path
) -> None:
    """What a reader sees is the same on both footprints: rows, a query, a keyed row read, each
    before and after ``hub erase`` (PostgreSQL opens the sealed values, SQLite holds them)."""
    alice, bob = person("Alice"), person("Bob")
    hubs = [
        bootstrap(load_settings(environ={}, data_dir=tmp_path / "embedded")),
        pg_hub(pg, schema, tmp_path / "pg"),
    ]
    sql = "SELECT * FROM accounts_current ORDER BY account_id"

    def seen(h: Hub) -> list[object]:
        store = h.projections.store("transactional")
        rows = {
            t.name: store.rows(Target(p.name), t) for p in (ACCOUNTS, PAYMENTS) for t in p.tables
        }
        keyed = store.rows(Target("accounts"), ACCOUNTS.tables[0], {"email": bob["email"]})
        query = pg_query(h, sql)
        return [rows, keyed, query]

    try:
        for h in hubs:
            load(h, alice, bob)
        before = [seen(h) for h in hubs]
        assert before[0] == before[1]
        assert before[0][1][0]["customer_name"] == bob["name"]
        for h in hubs:
            h.eraser.erase(OPERATOR, "ACC-A", "DSR-S20", tenant_scope=None)
        after = [seen(h) for h in hubs]
        assert after[0] == after[1] and after[0] != before[0]
        assert {r["email"] for r in after[0][2]} == {"[erased]", bob["email"]}
    finally:
        for h in hubs:
            h.close()


def _stored(h: Hub, who: dict[str, str], tenant: str) -> StoredRecord:
    (at,) = h.publisher.publish("accounts", [opened("ACC-A", who)], "test", tenant)
    return next(iter(h.log.scan("accounts", at.partition, at.offset)))


def _v1(h: Hub, rec: StoredRecord) -> StoredRecord:
    """``rec`` as the hub sealed it before the tenant was bound (v1 associated data)."""
    schema_id, _ = serde.split_wire(rec.value or b"")
    writer = h.registry.parsed(schema_id)
    datum = serde.decode(rec.value or b"", writer)
    tenant = dict(rec.headers)["ce_tenant"].decode()
    plain = PiiCodec(h.keystore).decrypt(datum, writer.text, "accounts", tenant=tenant)
    out = dict(plain)
    for field in plan(writer.text).fields:
        if plain[field.name] is not None:
            aad = make_aad_v1("accounts", field.name, "ACC-A")
            ks = h.keystore.for_tenant(tenant)
            out[field.name] = ks.encrypt("ACC-A", field.encode(plain[field.name]), aad)
    return dataclasses.replace(rec, value=serde.encode(schema_id, writer, out))


def test_the_runner_seals_what_the_record_holds_and_refuses_what_fails(hub: Hub) -> None:
    """The decoder a sealing store's runner uses: the record's own ciphertext as sealed text
    (opened back by the read side's opener), never the plaintext; a ciphertext copied into
    another tenant's record is poison, as when it decrypts; an erased subject reads erased;
    a legacy v1 value is sealed outside tenant ``default`` and stays as before inside it."""
    alice = person("Alice")
    pii = frozenset({"customer_name", "email"})
    decoder = Decoder(hub.registry, hub.keystore)
    read = reader(hub.registry, hub.keystore)
    acme = _stored(hub, alice, "acme")
    ev = decoder.decode(acme, seal=pii)
    assert all(str(ev.value[n]).startswith("pii:v2:") for n in pii)
    assert alice["name"] not in repr(ev.value)
    assert read(ev.value["customer_name"], "acme") == alice["name"]
    with pytest.raises(SealedValueInvalid):  # another tenant's row does not open it
        read(ev.value["customer_name"], "globex")
    copy = dataclasses.replace(acme, headers=_with_tenant(acme.headers, "globex"))
    with pytest.raises(Poison):
        decoder.decode(copy, seal=pii)
    old = decoder.decode(_v1(hub, acme), seal=pii)
    assert str(old.value["email"]).startswith("pii:v2:")
    assert read(old.value["email"], "acme") == alice["email"]
    default = decoder.decode(_v1(hub, _stored(hub, alice, "default")), seal=pii)
    assert default.value["email"] == alice["email"]  # tenant default's v1: as before
    hub.keystore.for_tenant("acme").destroy("ACC-A")
    assert decoder.decode(acme, seal=pii).value["email"] == "[erased]"
    assert read(ev.value["email"], "acme") == "[erased]"
