"""A dropped copy of the views kept an erased subject's plaintext in the views file on SQLite
builds without ``SQLITE_SECURE_DELETE`` (session 19 red team, finding 9; low).

A rebuild's swap, a time-travel or verify copy and a retention cut drop or delete view rows;
their pages go to SQLite's free list as they were, plaintext included, unless ``secure_delete``
is on. Session 18 turned it on only on the connection of an erasure's scrub, so whether the other
drops zeroed their pages was the SQLite build's default: on by Debian's (so the s18 contract
test passed here), off in SQLite's own default build. There an erased subject's values stayed in
``views.sqlite`` after ``erase_values`` (3 copies from one dropped time-travel copy). Now every
connection of the store sets it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlalchemy_views import SqlAlchemyViewStore
from core.ports.views import Checkpoint, Position, Target
from tests.contract.views_contract import ERASED, PAYMENTS, payment

SECRET = "Ann Quartermaine-Sevigny"


def test_a_dropped_copy_leaves_no_erased_value_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = sqlite3.dbapi2.connect  # what SQLAlchemy's pysqlite dialect calls

    def default_build(*args, **kwargs):  # type: ignore[no-untyped-def]
        """A SQLite built without SQLITE_SECURE_DELETE (its own default)."""
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3.dbapi2, "connect", default_build)
    path = tmp_path / "views.sqlite"
    store = SqlAlchemyViewStore(f"sqlite:///{path}")
    try:
        live, copy = Target("p", "live"), Target("p", "at_x")  # a time-travel copy
        rows = {
            "ct_payments": [
                payment(f"P{i}", "a" if i == 0 else f"b{i}", SECRET if i == 0 else "Bob", "r")
                for i in range(200)
            ]
        }
        for target in (live, copy):
            store.ensure(target, (PAYMENTS,))
            store.write(target, (PAYMENTS,), rows, Checkpoint(1, {("e", 0): Position(200)}))
        store.drop(copy, (PAYMENTS,))
        assert store.erase_values(live, PAYMENTS, "account_id", "a", ["payee"], ERASED) == 1
        for f in (path, path.with_name(path.name + "-wal")):
            if f.exists():
                n = f.read_bytes().count(SECRET.encode())
                assert n == 0, f"{f.name} still holds the erased value {n} time(s)"
    finally:
        store.close()
