"""s17 new-code review: a Flink view opens only the PII its job sealed, in the row's own tenant.

``FlinkViews.rows`` opened every string of a view row that began with ``pii:v`` as a sealed PII
value, under the tenant the text itself names (``projections.flink.sealed.opener``). The Flink
job seals only the PII (bytes) fields of a record and copies every other string verbatim. So
globex's publisher, which reads acme's ciphertext off the shared ``accounts`` topic (any
consumer does, by design), sends an ordinary account whose free-text ``country`` is
``pii:v2:accounts:<schema>:customer_name:<acme's ciphertext>:<base64 "acme">:ACC-1``, exactly
the text the job writes for acme's own row: globex's view row showed acme's customer in clear
(and a ``pii:v1:`` text, or a v2 text claiming globex, opened an old v1 value for anybody).
Now only a column the table declares PII is opened, and only as the row's own tenant. Both
tests fail on the source before the fix (acme's customer shown in globex's row).

Real PostgreSQL (infra/postgres.sh, the slot's cluster); the partial row is the one the job
writes for globex's record (its strings as the record holds them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.avro import serde
from projections.catalog import ACCOUNTS
from projections.flink.compile import partial_name
from projections.flink.job import seal
from projections.flink.postgres import FlinkViews
from projections.flink.sealed import SealedValueInvalid, opener
from tests import infra
from tests.adversarial._api import Api, basic

psycopg = pytest.importorskip("psycopg")

from adapters.postgres_conn import libpq_url  # noqa: E402

TOPIC, TYPE = "accounts", "hub.accounts.AccountOpened"
SECRET = "Zed Secretname"


def _account(account_id: str, **over: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "customer_name": SECRET if account_id == "ACC-1" else "Gus Globex",
        "email": "zed@hidden.example",
        "date_of_birth": None,
        "country": "GB",
        "kyc_level": "BASIC",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-11-25T10:00:00Z",
        **over,
    }


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    url = infra.postgres_url("the Flink view text tests")
    name = f"fv_{uuid.uuid4().hex[:12]}"
    yield url, name
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _publish(api: Api, who: dict[str, str], value: dict[str, Any]) -> Any:
    r = api.client.post(
        f"/v1/topics/{TOPIC}/events",
        json={"events": [{"value": value, "event_type": TYPE}]},
        headers=who,
    )
    assert r.status_code == 201, r.text
    at = r.json()["offsets"][0]
    return next(iter(api.hub.log.scan(TOPIC, at["partition"], at["offset"])))


def _rows(
    api: Api, pg: tuple[str, str], texts: dict[str, str | None], tenant: str = "globex"
) -> list[dict[str, Any]]:
    """The view rows after the job wrote the globex row (``texts``: its strings) and acme's."""
    url, schema = pg
    (table,) = ACCOUNTS.tables
    views = FlinkViews(url, schema, unseal=opener(api.hub.registry, api.hub.keystore))
    try:
        views.ensure([table])
        base = {c.name: None for c in table.columns}
        rows = [
            {**base, **texts, "tenant": tenant, "opened_at": 1, "updated_at": 1, "version": 1},
            {**base, **ACME_ROW, "opened_at": 1, "updated_at": 1, "version": 1},
        ]
        cols = [*rows[0], "src_topic", "src_partition", "src_first", "src_last", "src_events"]
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            for i, row in enumerate(rows):
                values = [*row.values(), TOPIC, i, 0, 0, 1]
                conn.execute(
                    f"INSERT INTO {schema}.{partial_name(table)} ({', '.join(cols)}) "
                    f"VALUES ({', '.join(['%s'] * len(cols))})",
                    values,
                )
        return views.rows(table)
    finally:
        views.close()


ACME_ROW: dict[str, Any] = {}


def _stolen(api: Api) -> tuple[dict[str, str], str, str]:
    """globex's publisher key, and acme's customer_name as the job seals it (acme's own view
    text) and as ciphertext in base64 (what a consumer of the topic reads)."""
    make = api.hub.keys.create
    apub = basic(make(["publisher"], principal="apat", tenant="acme").token)
    gpub = basic(make(["publisher"], principal="gpat", tenant="globex").token)
    stored = _publish(api, apub, _account("ACC-1"))
    schema_id, _ = serde.split_wire(stored.value)
    datum = serde.decode(stored.value, api.hub.registry.parsed(schema_id))
    text = seal(TOPIC, schema_id, "customer_name", datum["customer_name"], "ACC-1", "acme")
    ACME_ROW.clear()
    ACME_ROW.update(tenant="acme", account_id="ACC-1", customer_name=text, country="GB")
    return gpub, text, text.split(":")[5]


def test_a_sealed_text_in_a_plain_column_of_another_tenant_stays_text(
    api: Api, pg_schema: tuple[str, str]
) -> None:
    gpub, text, _ = _stolen(api)
    stored = _publish(api, gpub, _account("ACC-G1", country=text))  # accepted: a free string
    schema_id, _ = serde.split_wire(stored.value)
    assert serde.decode(stored.value, api.hub.registry.parsed(schema_id))["country"] == text
    rows = _rows(api, pg_schema, {"account_id": "ACC-G1", "customer_name": None, "country": text})
    globex = next(r for r in rows if r["tenant"] == "globex")
    assert SECRET not in repr(globex), globex  # acme's customer, in globex's view
    assert globex["country"] == text  # what globex sent, as sent
    acme = next(r for r in rows if r["tenant"] == "acme")
    assert acme["customer_name"] == SECRET  # the job's own sealed value opens for its tenant


def test_another_tenants_sealed_text_in_a_pii_column_does_not_open(
    api: Api, pg_schema: tuple[str, str]
) -> None:
    """The text in the PII column of a globex row names acme (a job that mixed tenants, or a
    row written into the table by whoever can): it is not opened as acme's; the read fails
    naming the row's tenant and the value's, as a malformed sealed value does."""
    _, text, _ = _stolen(api)
    with pytest.raises(SealedValueInvalid, match=r"row of tenant 'globex' .* of tenant 'acme'"):
        _rows(api, pg_schema, {"account_id": "ACC-G1", "customer_name": text})
