"""Session 22, views at start: a start on a full disk must not break the views, and a broken
view file must not stop the hub.

Every start ran ``CREATE OR REPLACE VIEW`` of each aggregate table's ``<t>__p`` view, which
rewrites its chDB metadata file; a start on a full disk can leave such a file empty, and an
empty or damaged metadata file (or a truncated SQLite views file) stopped `hub serve` from
starting until someone moved the folder by hand. Now a start rewrites nothing that is
unchanged, and an unreadable view store is moved aside (kept, dated) and folded again from
the log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.ports.views import Target
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.contract.views_contract import AGG, APPEND, ENTITY

pytest.importorskip("chdb")

OPERATOR = Principal("ops", frozenset({"admin"}))
DAY = "2026-11-24"
BARS = "SELECT currency, open, high, low, close, events FROM ohlcv_1h ORDER BY currency"
PAYMENTS = "SELECT payment_id, amount, status FROM payment_status ORDER BY payment_id"


def _files(folder: Path, pattern: str) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes())
        for p in sorted(folder.glob(pattern))
        if p.is_file()
    }


def test_a_second_start_rewrites_no_chdb_definition(tmp_path: Path) -> None:
    """1. Every metadata file (database, tables, ``<t>__p`` views, read views) keeps its bytes,
    inode and mtime across a start that changes nothing. Before: the aggregate table's
    ``<t>__p.sql`` was replaced at every start."""
    from adapters.chdb_views import ChdbViewStore

    folder = tmp_path / "chdb"
    target = Target("vs", "vs")
    before: dict[str, tuple[int, int, bytes]] = {}
    for i in range(2):
        store = ChdbViewStore(folder)
        try:
            store.ensure(target, (AGG, ENTITY, APPEND))
        finally:
            store.close()
        if i == 0:
            before = _files(folder, "**/*.sql")
    after = _files(folder, "**/*.sql")
    assert any(k.endswith("__p.sql") for k in before)
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    assert changed == []


def test_a_changed_source_still_replaces_the_per_table_view(tmp_path: Path) -> None:
    """The comparison is not a blind skip: a ``<t>__p`` view that reads another table than
    this target's shared table is replaced."""
    from adapters.chdb_views import ChdbViewStore
    from adapters.clickhouse_views import DB

    folder = tmp_path / "chdb"
    target = Target("vs", "vs")
    store = ChdbViewStore(folder)
    try:
        store.ensure(target, (AGG,))
        phys = f"{DB}.{target.table(AGG.name)}__p"
        store._run(f"CREATE OR REPLACE VIEW {phys} AS SELECT 1 AS x")
        store.ensure(target, (AGG,))
        got = store._arrow(
            "SELECT as_select FROM system.tables WHERE database = {d:String} AND name = {t:String}",
            {"d": DB, "t": phys.split(".", 1)[1]},
        ).to_pylist()
        assert "view_table" in got[0]["as_select"]
    finally:
        store.close()


def test_a_second_start_rewrites_nothing_in_the_sqlite_views_file(tmp_path: Path) -> None:
    from adapters.sqlalchemy_views import SqlAlchemyViewStore

    path = tmp_path / "transactional.sqlite"
    target = Target("vs", "vs")
    before: dict[str, tuple[int, int, bytes]] = {}
    for i in range(2):
        store = SqlAlchemyViewStore(f"sqlite:///{path}")
        try:
            store.ensure(target, (ENTITY, APPEND))
        finally:
            store.close()
        if i == 0:
            before = _files(tmp_path, "transactional.sqlite*")
    assert _files(tmp_path, "transactional.sqlite*") == before


def _trade(i: int, at: str, price: str, currency: str = "USD") -> OutgoingEvent:
    return OutgoingEvent(
        value={
            "trade_id": f"t{i}",
            "account_id": "A1",
            "instrument": "XS1",
            "side": "BUY",
            "quantity": "10",
            "price": price,
            "currency": currency,
            "executed_at": f"{DAY}T{at}Z",
        }
    )


def _payment(i: int) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": f"P{i}",
            "account_id": "A1",
            "amount": f"{100 + i}.50",
            "currency": "EUR",
            "counterparty_name": "x",
            "counterparty_iban": "y",
            "counterparty_country": "DE",
            "initiated_at": f"{DAY}T10:0{i}:00Z",
        },
    )


def _hub(data: Path):  # type: ignore[no-untyped-def]
    return bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))


def _answers(data: Path, publish: bool) -> tuple[list[dict], list[dict], object]:  # type: ignore[type-arg]
    h = _hub(data)
    try:
        if publish:
            trades = [_trade(0, "10:00:00", "100"), _trade(1, "10:10:00", "110")]
            trades.append(_trade(2, "10:20:00", "1", "XXX"))
            h.publisher.publish("trades", trades, producer="t", tenant="acme")
            h.publisher.publish("payments", [_payment(i) for i in range(3)], producer="t")
        ps = h.projections
        ps.run(["market_bars", "payments"])
        bars = ps.query(h.policy, OPERATOR, BARS).to_pylist()
        pays = ps.query(h.policy, OPERATOR, PAYMENTS, store="transactional").to_pylist()
        count = h.metrics.views_set_aside.labels("analytics")._value.get()
        count += h.metrics.views_set_aside.labels("transactional")._value.get()
        return bars, pays, count
    finally:
        h.close()


def _status(data: Path) -> dict:  # type: ignore[type-arg]
    from hub.cli import main

    got = CliRunner().invoke(main, ["--data-dir", str(data), "status"])
    assert got.exit_code == 0, got.output
    out: dict = json.loads(got.output)  # type: ignore[type-arg]
    return out


@pytest.mark.parametrize("which", ["aggregate_view", "shared_table", "database"])
def test_an_emptied_chdb_metadata_file_is_set_aside_and_the_views_rebuilt(
    tmp_path: Path, which: str, caplog: pytest.LogCaptureFixture
) -> None:
    """2. A metadata file left empty (a write on a full disk): the hub starts, the analytics
    store's folder is moved aside whole (kept), the views are folded again from the log and
    answer as before; a warning names the file, a metric counts it, `hub status` shows it.
    Before: `chDB cannot open its data folder` and no start."""
    data = tmp_path / "d"
    bars, pays, _ = _answers(data, publish=True)
    assert bars and pays
    folder = data / "views" / "chdb"
    pattern = {
        "aggregate_view": "store/*/*/ohlcv_1h*__p.sql",
        "shared_table": "store/*/*/*__agg_*.sql",
        "database": "metadata/hub_views.sql",
    }[which]
    victim = sorted(folder.glob(pattern))[0]
    victim.write_bytes(b"")
    name = str(victim.relative_to(folder))
    caplog.set_level("WARNING", logger="hub.bootstrap")
    again, pays_again, count = _answers(data, publish=False)
    assert again == bars and pays_again == pays
    assert count == 1
    (aside,) = (data / "views").glob("chdb*.broken-*")
    # s23: a view's definition alone (no rows) goes aside by itself and is made again
    kept = aside / Path(name).name if which == "aggregate_view" else aside / "chdb" / name
    assert kept.stat().st_size == 0  # kept, not deleted
    assert aside.name.startswith("chdb-definitions.") == (which == "aggregate_view")
    note = json.loads((aside / "set-aside.json").read_text())
    assert name in note["files"] and "Empty query" in note["reason"]
    warned = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert warned and name in warned[0].files  # type: ignore[attr-defined]
    shown = _status(data)["views_set_aside"]
    assert [s["folder"] for s in shown] == [str(aside)] and name in shown[0]["files"]
    # the next start finds a readable store: nothing more set aside
    _, _, count = _answers(data, publish=False)
    assert count == 0 and len(list((data / "views").glob("*.broken-*"))) == 1


def test_a_truncated_sqlite_views_file_is_set_aside_and_the_views_rebuilt(
    tmp_path: Path,
) -> None:
    """2. The SQLite views file cut short: set aside with its -wal and -shm, rebuilt, same
    answers. Before: the store opened on it and failed (malformed) at its first read."""
    data = tmp_path / "d"
    bars, pays, _ = _answers(data, publish=True)
    path = data / "views" / "transactional.sqlite"
    assert not (path.with_name(path.name + "-wal").exists() and os.path.getsize(f"{path}-wal"))
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    again, pays_again, count = _answers(data, publish=False)
    assert (again, pays_again, count) == (bars, pays, 1)
    (aside,) = (data / "views").glob("transactional.sqlite.broken-*")
    assert (aside / "transactional.sqlite").stat().st_size == size // 2
    note = json.loads((aside / "set-aside.json").read_text())
    assert "truncated" in note["reason"]


def test_a_chdb_folder_that_fails_for_another_reason_is_not_moved(tmp_path: Path) -> None:
    """Only an unreadable definition sets the folder aside: a folder held by another process
    (or any other failure) is reported as before and left where it is."""
    from adapters.chdb_views import _broken_definitions

    assert _broken_definitions(str(tmp_path), "Cannot lock file status") == []


def test_a_second_hub_start_rewrites_no_view_definition(tmp_path: Path) -> None:
    """1, through the hub: a start that folds and queries (analyst views made, layout states
    read) leaves every chDB metadata file as it was."""
    data = tmp_path / "d"
    _answers(data, publish=True)
    folder = data / "views" / "chdb"
    before = _files(folder, "**/*.sql")
    _answers(data, publish=False)
    assert _files(folder, "**/*.sql") == before


def test_a_read_view_edited_in_the_folder_is_made_again_at_start(tmp_path: Path) -> None:
    """A local user who can write the data folder rewrites ``ohlcv_1h``'s metadata file to
    answer made-up rows (a valid ``ATTACH VIEW``). Before: ``CREATE VIEW IF NOT EXISTS`` kept
    it, and analysts read the made-up bars after every restart. Now the stored query is
    compared with this code's at start and the view is made again."""
    data = tmp_path / "d"
    bars, _, _ = _answers(data, publish=True)
    folder = data / "views" / "chdb"
    (meta,) = [p for p in folder.glob("store/*/*/ohlcv_1h*.sql") if "__p" not in p.name]
    text = meta.read_text()
    head, _, body = text.partition("AS SELECT")
    # the same bars, each close made 1,000 times bigger
    forged = f"SELECT * REPLACE (close * 1000 AS close) FROM (SELECT {body.strip()})"
    meta.write_text(f"{head}AS {forged}\n")
    again, _, count = _answers(data, publish=False)
    assert again == bars and count == 0


def test_a_damaged_data_part_is_not_silently_dropped_from_the_views(tmp_path: Path) -> None:
    """A data file of the shared aggregate table's part cut short (a full disk, a local
    user): chDB detaches the part at start (``detached/broken-on-start_*``) and opens. Before:
    the hub served ``ohlcv_1h`` EMPTY after that start, with no warning, its positions saying it
    was up to date. Now the store is set aside and folded again: the same bars."""
    import re

    data = tmp_path / "d"
    bars, _, _ = _answers(data, publish=True)
    folder = data / "views" / "chdb"
    (meta,) = folder.glob("store/*/*/market_bars__agg_*.sql")
    uuid = re.search(r"UUID '([0-9a-f-]+)'", meta.read_text())
    assert uuid is not None
    parts = folder / "store" / uuid[1][:3] / uuid[1]
    cut = [p for p in parts.glob("*/*.bin") if p.stat().st_size > 64]
    assert cut
    for p in cut:
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size // 2)
    again, _, count = _answers(data, publish=False)
    assert (again, count) == (bars, 1)
    (aside,) = (data / "views").glob("chdb.broken-*")
    assert "broken" in json.loads((aside / "set-aside.json").read_text())["reason"]


def test_a_metadata_file_linked_to_a_secret_does_not_show_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A local user who can write the data folder but not read a key links a metadata file
    to that key. chDB (run as the hub) fails to parse it and quotes its text; that quote must
    not reach the set-aside note, the log or `hub status`."""
    data = tmp_path / "d"
    bars, _, _ = _answers(data, publish=True)
    secret = tmp_path / "signing.key"
    secret.write_text("K3Y-MATERIAL-0123456789 more secret text\n")
    (victim,) = (data / "views" / "chdb").glob("store/*/*/ohlcv_1h__p.sql")
    victim.unlink()
    victim.symlink_to(secret)
    caplog.set_level("WARNING", logger="hub.bootstrap")
    again, _, count = _answers(data, publish=False)
    assert (again, count) == (bars, 1)
    (aside,) = (data / "views").glob("chdb*.broken-*")  # s23: the definition alone
    note = (aside / "set-aside.json").read_text()
    shown = json.dumps(_status(data))
    logged = " ".join(
        f"{r.getMessage()} {getattr(r, 'reason', '')} {getattr(r, 'files', '')}"
        for r in caplog.records
    )
    for text in (note, shown, logged):
        assert "K3Y" not in text and "MATERIAL" not in text
    assert "Syntax error" in note and secret.read_text().startswith("K3Y")  # kept, not moved


@pytest.mark.integration
def test_a_second_start_rewrites_no_postgresql_view_definition() -> None:
    """The Kafka/PostgreSQL footprint's transactional views: a second ``ensure`` changes no
    catalog row (``pg_class``/``pg_attribute`` xmin: any DDL would write a new row version)."""
    import sqlalchemy as sa

    from adapters.sqlalchemy_views import SqlAlchemyViewStore
    from tests.contract.test_views_sqlalchemy import fresh_schema
    from tests.infra import postgres_url

    url = postgres_url("the PostgreSQL views start test")
    catalog = (
        "SELECT c.relname, c.xmin::text AS x, c.relfilenode, "
        "(SELECT string_agg(a.xmin::text, ',' ORDER BY a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = c.oid) AS cols FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY c.relname"
    )
    target = Target("vs", "vs")
    for kwargs in fresh_schema(url):
        seen = []
        for _ in range(2):
            store = SqlAlchemyViewStore(url, **kwargs)  # type: ignore[arg-type]
            try:
                store.ensure(target, (ENTITY, APPEND))
                with store._engine.connect() as conn:
                    seen.append([tuple(r) for r in conn.execute(sa.text(catalog))])
            finally:
                store.close()
        assert seen[0] and seen[0] == seen[1]
