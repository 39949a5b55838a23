"""A JSON object naming a member twice is refused by the pull connectors too (s20).

s19 made the HTTP routes and JSON-lines files refuse ``{"s": "low", "s": "high"}``
(``duplicate_key``); the Debezium, HTTP-pull and database connectors still read it last-wins and
stored ``high``, and (HTTP pull, database) kept as "original bytes" a re-serialisation holding
only ``high``: the quarantine and the audit trail could not even show what was sent. Now each
connector quarantines that one record (reason ``duplicate_key``, original bytes with both
members) and keeps the others; a page whose envelope repeats a member fails the run, nothing
ingested. The database test runs against SQLite and against a real PostgreSQL ``json`` column
(which keeps the text as sent, unlike ``jsonb``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import Hub
from ingest import quarantine
from ingest.db import DbConnector, DbSourceConfig
from ingest.debezium import change_record
from ingest.httppull import ConnectorFailed, HttpPullConfig, HttpPullConnector
from tests import infra
from tests.adversarial._api import JsonAnswer, serve_local
from tests.adversarial._topics_hub import hub_with_topics

SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "long"}],
}
DUP = b'{"s":"low","n":1,"s":"high"}'


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "d", {"t": SCHEMA}) as h:
        yield h


def _stored(h: Hub, topic: str = "t") -> list[dict[str, Any]]:
    return [r["value"] for r in h.reader.read(topic, 0, 0, 1000)]


def _quarantined(h: Hub) -> list[tuple[str, bytes]]:
    out = []
    for e in quarantine.entries(h.ingest):
        d = quarantine.decode_entry(h.ingest, e["offset"])
        out.append((d["reason_code"], d["original"]))
    return out


# --- Debezium ---------------------------------------------------------------------------------

SOURCE = {"name": "cdc", "db": "hub", "schema": "public", "table": "t", "txId": 7, "lsn": 100}
DECLARED = frozenset({"before", "after", "op", "lsn"})
AT = {"topic": "cdc.public.t", "partition": 0, "offset": 3}


def _change(after: bytes) -> bytes:
    return (
        b'{"op":"c","before":null,"after":'
        + after
        + b',"source":'
        + json.dumps(SOURCE).encode()
        + b"}"
    )


@pytest.mark.parametrize(
    ("key", "value", "member"),
    [
        (b'{"id":"a1"}', _change(DUP), "'s'"),  # inside the row image
        (b'{"id":"a1"}', _change(b'{"s":"a","n":1}')[:-1] + b',"op":"d"}', "'op'"),  # envelope
        (b'{"id":"a1","id":"a2"}', _change(b'{"s":"a","n":1}'), "'id'"),  # the primary key
    ],
)
def test_debezium_change_with_a_repeated_member_is_quarantined(
    key: bytes, value: bytes, member: str
) -> None:
    rec = change_record(key, value, DECLARED, AT)
    assert rec is not None
    assert rec.error_code == "duplicate_key", (rec.error_code, rec.error, rec.value)
    assert rec.error is not None and member in rec.error and "appears twice" in rec.error
    assert rec.original == value


def test_debezium_change_with_a_repeated_member_goes_to_quarantine_others_kept(hub: Hub) -> None:
    hub.registry.register(
        "cdc-value",
        json.dumps(
            {
                "type": "record",
                "name": "C",
                "fields": [
                    {"name": "op", "type": "string"},
                    {"name": "before", "type": ["null", SCHEMA]},
                    {"name": "after", "type": ["null", "T"]},
                ],
            }
        ),
    )
    hub.log.create_topic("cdc", 1)
    declared = frozenset({"op", "before", "after"})  # the fields of the schema above
    good = change_record(b'{"id":"a0"}', _change(b'{"s":"a","n":1}'), declared, AT)
    bad_value = _change(DUP)
    bad = change_record(b'{"id":"a1"}', bad_value, declared, {**AT, "offset": 4})
    assert good is not None and bad is not None
    result = hub.ingest.ingest("cdc", [good, bad], source="debezium:t")
    assert result.accepted == 1 and [r.reason_code for r in result.rejections] == ["duplicate_key"]
    assert _quarantined(hub) == [("duplicate_key", bad_value)]


# --- HTTP pull --------------------------------------------------------------------------------

PAGES: dict[str, bytes] = {
    "/item": b'{"data":[{"s":"a","n":1},' + DUP + b',{"s":"c","n":3}],"next_cursor":null}',
    "/envelope": b'{"data":[{"s":"a","n":1}],"data":[{"s":"b","n":2}],"next_cursor":null}',
}


class _Api(JsonAnswer):
    def do_GET(self) -> None:
        self.answer(PAGES[self.path.split("?")[0]])


@pytest.fixture
def api() -> Iterator[int]:
    yield from serve_local(_Api)


def _pull(hub: Hub, port: int, path: str) -> Any:
    cfg = HttpPullConfig(
        name="dup",
        url=f"http://127.0.0.1:{port}{path}",
        topic="t",
        max_retries=0,
        allow_private_network=True,
    )
    return HttpPullConnector(hub.ingest, cfg, sleep=lambda s: None).run()


def test_http_pull_quarantines_the_record_with_a_repeated_member(hub: Hub, api: int) -> None:
    result = _pull(hub, api, "/item")
    assert result.accepted == 2, result
    assert [v["s"] for v in _stored(hub)] == ["a", "c"]
    [(code, original)] = _quarantined(hub)
    assert code == "duplicate_key"
    assert json.loads(original, object_pairs_hook=list) == [("s", "low"), ("n", 1), ("s", "high")]


def test_http_pull_page_with_a_repeated_envelope_member_fails_the_run(hub: Hub, api: int) -> None:
    with pytest.raises(ConnectorFailed, match=r"'data' appears twice"):
        _pull(hub, api, "/envelope")
    assert _stored(hub) == [] and _quarantined(hub) == []


# --- database ---------------------------------------------------------------------------------

DOC_SCHEMA = {
    "type": "record",
    "name": "D",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "seq", "type": "long"},
        {"name": "doc", "type": SCHEMA},
    ],
}
ROWS = [("r1", 1, '{"s":"a","n":1}'), ("r2", 2, DUP.decode()), ("r3", 3, '{"s":"c","n":3}')]


def _db_run(hub: Hub, url: str, table: str) -> Any:
    hub.log.create_topic("docs", 1)
    hub.registry.register("docs-value", json.dumps(DOC_SCHEMA))
    cfg = DbSourceConfig(name="dup", url=url, table=table, topic="docs", cursor="seq", key="id")
    return DbConnector(hub.ingest, cfg).run()


def _check_db(hub: Hub, result: Any) -> None:
    assert result.accepted == 2, result
    assert [v["doc"]["s"] for v in _stored(hub, "docs")] == ["a", "c"]
    [(code, original)] = _quarantined(hub)
    assert code == "duplicate_key"
    doc = dict(json.loads(original))["doc"]  # the row; its doc object holds both members
    assert doc == {"s": "high", "n": 1}  # (read last-wins here; the bytes hold both)
    assert b'"s": "low"' in original and b'"s": "high"' in original


def test_db_json_column_with_a_repeated_member_sqlite(hub: Hub, tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, seq INTEGER, doc JSON)")
    con.executemany("INSERT INTO docs VALUES (?,?,?)", ROWS)
    con.commit()
    con.close()
    _check_db(hub, _db_run(hub, f"sqlite:///{db}", "docs"))


def test_db_json_column_with_a_repeated_member_postgres(hub: Hub) -> None:
    psycopg = pytest.importorskip("psycopg")
    from adapters.postgres_conn import libpq_url

    url = infra.postgres_url("the database connector duplicate-key test")
    table = f"docs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, seq BIGINT, doc json)")
        for row in ROWS:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s::json)", row)
    try:
        _check_db(hub, _db_run(hub, url, table))
    finally:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")


def test_db_columns_renamed_onto_one_name_are_refused(hub: Hub, tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, seq INTEGER, s TEXT, label TEXT)")
    con.execute("INSERT INTO docs VALUES ('r1', 1, 'low', 'high')")
    con.commit()
    con.close()
    hub.log.create_topic("docs", 1)
    cfg = DbSourceConfig(
        name="ren",
        url=f"sqlite:///{db}",
        table="docs",
        topic="docs",
        cursor="seq",
        key="id",
        columns={"label": "s"},
    )
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'s'"):
        DbConnector(hub.ingest, cfg).run()
    assert _stored(hub, "docs") == []


# --- Debezium: hostile changes that stopped the source ---------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (_change(b'{"s":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "too deeply"),
        (_change(b'{"s":"a","n":NaN}'), "NaN"),
        (_change(b'{"s":"a","n":' + b"9" * 5000 + b"}"), "4300 digits"),  # ValueError escaped
        (
            b'{"op":"c","before":null,"after":{"s":"a","n":1},'
            b'"source":{"lsn":1,"ts_us":99999999999999999999}}',
            "not a representable time",
        ),
        (b'{"op":"c","before":null,"after":{"s":"a","n":1},"source":{"lsn":true}}', "lsn"),
    ],
)
def test_debezium_hostile_change_is_quarantined_not_raised(value: bytes, says: str) -> None:
    """Deep nesting (RecursionError), a number of 5,000 digits and a commit time past year
    9999 (ValueError) escaped
    ``change_record``: the source failed at that change on every run, so no later change was
    ever ingested; NaN and ``lsn: true`` were taken as values."""
    rec = change_record(b'{"id":"a1"}', value, DECLARED, AT)
    assert rec is not None and rec.error is not None and says in rec.error, rec
    assert rec.original == value


def test_http_pull_original_keeps_numbers_as_numbers(hub: Hub, api: int) -> None:
    """The original of a pulled record was ``json.dumps(item, default=str)``: a number with a
    fraction (read as Decimal) was written back as a string, so the quarantine showed
    ``"n": "1.5"`` for what the API sent as ``1.5``, and a replay read another type."""
    PAGES["/fraction"] = b'{"data":[{"s":"a","n":1.5},{"s":"b","n":2}],"next_cursor":null}'
    result = _pull(hub, api, "/fraction")
    assert result.accepted == 1, result
    [(_, original)] = _quarantined(hub)
    assert json.loads(original) == {"s": "a", "n": 1.5}, original


@pytest.mark.parametrize(
    ("bad", "says"),
    [(b'{"s":"b","n":NaN}', "NaN"), (b'{"s":"b","n":' + b"9" * 5000 + b"}", "digits")],
)
def test_http_pull_quarantines_a_record_that_is_not_json_keeps_the_rest(
    hub: Hub, api: int, bad: bytes, says: str
) -> None:
    """``NaN`` or an integer past Python's digit limit in one record failed the whole page
    (after 3362985; before, NaN was stored as a float): the good records of the page waited
    with it. Now that record is quarantined with its text as sent, the others are kept."""
    PAGES["/number"] = b'{"data":[{"s":"a","n":1},' + bad + b',{"s":"c","n":3}],"next_cursor":null}'
    result = _pull(hub, api, "/number")
    assert result.accepted == 2, result
    assert [r.reason_code for r in result.rejections] == ["malformed_json"]
    assert says in result.rejections[0].reason
    [(_, original)] = _quarantined(hub)
    assert original.replace(b" ", b"") == bad


def test_db_json_column_with_a_huge_integer_quarantines_that_row(hub: Hub) -> None:
    """A PostgreSQL ``json`` column holding a 5,000-digit integer (valid JSON) failed the whole
    batch fetch (``ValueError`` from the JSON loader): no row of the table got past it."""
    psycopg = pytest.importorskip("psycopg")
    from adapters.postgres_conn import libpq_url

    url = infra.postgres_url("the database connector huge-integer test")
    table = f"docs_{uuid.uuid4().hex[:10]}"
    huge = '{"s":"b","n":' + "9" * 5000 + "}"
    rows = [ROWS[0], ("r2", 2, huge), ROWS[2]]
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, seq BIGINT, doc json)")
        for row in rows:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s::json)", row)
    try:
        result = _db_run(hub, url, table)
    finally:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")
    assert result.accepted == 2, result
    assert [r.reason_code for r in result.rejections] == ["malformed_json"]
    [(_, original)] = _quarantined(hub)
    assert b"9" * 5000 in original
