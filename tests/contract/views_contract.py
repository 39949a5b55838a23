"""The ViewStore contract (``core/ports/views.py``), run against every adapter.

Subclass ``ViewStoreContract`` once per adapter (as ``Test...``) and provide the ``store``
fixture (a fresh store). ``aggregates`` says whether the adapter holds aggregate tables
(analytics stores do; transactional ones refuse them). Written so that a PostgreSQL URL can run
it unchanged (``tests/contract/test_views_sqlalchemy.py`` reads ``HUB_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from core.errors import HubError, InvalidInput
from core.ports.views import Checkpoint, Position, Target, ViewGrant, ViewState, ViewStore
from core.projection import Column, Table

ENTITY = Table(
    "ct_accounts",
    "entity",
    (
        Column("tenant", "string", "key"),
        Column("account_id", "string", "key"),
        Column("name", "string", nullable=True, pii=True),
        Column("balance", "decimal", scale=2),
        Column("opened_at", "timestamp"),
    ),
)
APPEND = Table(
    "ct_history",
    "append",
    (
        Column("src_topic", "string", "key"),
        Column("src_partition", "int", "key"),
        Column("src_offset", "int", "key"),
        Column("tenant", "string"),
        Column("what", "string"),
    ),
)
AGG = Table(
    "ct_volumes",
    "aggregate",
    (
        Column("tenant", "string", "key"),
        Column("day", "timestamp", "key"),
        Column("events", "int", "sum"),
        Column("amount", "decimal", "sum", scale=2),
        Column("biggest", "decimal", "max", scale=2),
    ),
)


EVENTS = Table(
    "ct_events",
    "append",
    (
        Column("src_topic", "string", "key"),
        Column("src_partition", "int", "key"),
        Column("src_offset", "int", "key"),
        Column("tenant", "string"),
        Column("at", "timestamp", nullable=True),
    ),
)
# Retention may not cut an aggregate table by a merged column (check_time_column).
MERGED_TIME = Table(
    "ct_merged",
    "aggregate",
    (
        Column("tenant", "string", "key"),
        Column("day", "timestamp", "key"),
        Column("last_at", "timestamp", "max"),
    ),
)
# Erasure selects rows by a non-key column (the data subject) in an entity table ...
PAYMENTS = Table(
    "ct_payments",
    "entity",
    (
        Column("tenant", "string", "key"),
        Column("payment_id", "string", "key"),
        Column("account_id", "string"),
        Column("payee", "string", nullable=True, pii=True),
        Column("memo", "string", pii=True),
        Column("amount", "decimal", scale=2),
    ),
)
# ... and by a key column in an aggregate table.
NAMED = Table(
    "ct_named",
    "aggregate",
    (
        Column("tenant", "string", "key"),
        Column("account_id", "string", "key"),
        Column("events", "int", "sum"),
        Column("name", "string", "max", nullable=True, pii=True),
    ),
)
ERASED = "[erased]"


def payment(pid, aid, payee, memo, amount="1", src=(("payments", 0, 0, 0, 1),)):
    return {
        "tenant": "t1",
        "payment_id": pid,
        "account_id": aid,
        "payee": payee,
        "memo": memo,
        "amount": D(amount),
        "src_offsets": [list(s) for s in src],
    }


def named(aid, events, name, first):
    return {
        "tenant": "t1",
        "account_id": aid,
        "events": events,
        "name": name,
        "src_topic": "p",
        "src_partition": 0,
        "src_first": first,
        "src_last": first + events - 1,
    }


def account(
    tenant,
    aid,
    balance,
    name="Ann",
    src=(("accounts", 0, 0, 0, 1),),
    opened_at=1_767_225_600_000_001,
):
    return {
        "tenant": tenant,
        "account_id": aid,
        "name": name,
        "balance": D(balance),
        "opened_at": opened_at,
        "src_offsets": [list(s) for s in src],
    }


def event(offset, at):
    return {"src_topic": "e", "src_partition": 0, "src_offset": offset, "tenant": "t1", "at": at}


def volume(day, events, first):
    return {
        "tenant": "t1",
        "day": day,
        "events": events,
        "amount": D(events),
        "biggest": D(1),
        "src_topic": "p",
        "src_partition": 0,
        "src_first": first,
        "src_last": first + events - 1,
    }


class Boom(Exception):
    pass


class ViewStoreContract:
    aggregates = False

    @pytest.fixture
    def store(self):
        raise NotImplementedError

    @pytest.fixture
    def target(self):
        return Target(f"ct{uuid.uuid4().hex[:8]}")

    def tables(self):
        return (ENTITY, APPEND, AGG) if self.aggregates else (ENTITY, APPEND)

    def test_checkpoint_starts_empty(self, store: ViewStore, target):
        store.ensure(target, self.tables())
        assert store.checkpoint(target) == Checkpoint()

    def test_write_stores_rows_and_positions_together(self, store: ViewStore, target):
        store.ensure(target, self.tables())
        cp = Checkpoint(1, {("accounts", 0): Position(3, 99), ("accounts", 1): Position(0)})
        store.write(target, self.tables(), {"ct_accounts": [account("t1", "a", "1.50")]}, cp)
        assert store.checkpoint(target) == cp
        (row,) = store.rows(target, ENTITY)
        assert row["balance"] == D("1.50") and row["opened_at"] == 1_767_225_600_000_001
        assert row["src_offsets"] == [["accounts", 0, 0, 0, 1]]

    def test_entity_rows_newest_write_wins_and_load_by_key(self, store: ViewStore, target):
        store.ensure(target, self.tables())
        store.write(
            target,
            self.tables(),
            {"ct_accounts": [account("t1", "a", "1")]},
            Checkpoint(1, {("accounts", 0): Position(1)}),
        )
        store.write(
            target,
            self.tables(),
            {"ct_accounts": [account("t1", "a", "2"), account("t1", "b", "5")]},
            Checkpoint(2, {("accounts", 0): Position(3)}),
        )
        got = store.load(target, ENTITY, [("t1", "a"), ("t1", "zz")])
        assert list(got) == [("t1", "a")] and got[("t1", "a")]["balance"] == D(2)
        assert [r["account_id"] for r in store.rows(target, ENTITY)] == ["a", "b"]
        assert [r["account_id"] for r in store.rows(target, ENTITY, {"account_id": "b"})] == ["b"]

    def test_a_crash_between_rows_and_positions_leaves_nothing_after_recover(
        self, store: ViewStore, target
    ):
        store.ensure(target, self.tables())
        store.write(
            target,
            self.tables(),
            {"ct_accounts": [account("t1", "a", "1")]},
            Checkpoint(1, {("accounts", 0): Position(1)}),
        )

        def hook(step):
            if step == "rows:ct_history":
                raise Boom(step)

        with pytest.raises(Boom):
            store.write(
                target,
                self.tables(),
                {
                    "ct_accounts": [account("t1", "a", "7")],
                    "ct_history": [
                        {
                            "src_topic": "accounts",
                            "src_partition": 0,
                            "src_offset": 1,
                            "tenant": "t1",
                            "what": "x",
                        }
                    ],
                },
                Checkpoint(2, {("accounts", 0): Position(2)}),
                hook,
            )
        store.recover(target, self.tables())
        assert store.checkpoint(target).batch_seq == 1
        assert store.rows(target, ENTITY)[0]["balance"] == D(1)
        assert store.rows(target, APPEND) == []

    def test_swap_replaces_rows_and_positions(self, store: ViewStore, target):
        other = Target(target.projection, "rebuild_1")
        for t in (target, other):
            store.ensure(t, self.tables())
        store.write(
            target,
            self.tables(),
            {"ct_accounts": [account("t1", "old", "1")]},
            Checkpoint(5, {("accounts", 0): Position(4)}),
        )
        store.write(
            other,
            self.tables(),
            {"ct_accounts": [account("t1", "new", "1")]},
            Checkpoint(1, {("accounts", 0): Position(4)}),
        )
        store.swap(target, other, self.tables())
        assert [r["account_id"] for r in store.rows(target, ENTITY)] == ["new"]
        assert store.checkpoint(target).positions == {("accounts", 0): Position(4)}
        assert store.checkpoint(other) == Checkpoint()
        store.recover(target, self.tables())  # MUST NOT remove the swapped-in rows
        assert [r["account_id"] for r in store.rows(target, ENTITY)] == ["new"]

    def test_query_filters_tenant_and_masks_pii(self, store: ViewStore, target):
        live = Target(ENTITY.name.split("_")[0] + "x")  # query grants name live views
        store.ensure(live, self.tables())
        store.drop(live, self.tables())
        store.ensure(live, self.tables())
        store.write(
            live,
            self.tables(),
            {"ct_accounts": [account("t1", "a", "1"), account("t2", "b", "2")]},
            Checkpoint(1, {("accounts", 0): Position(2)}),
        )
        cols = ("tenant", "account_id", "name", "balance")
        got = store.query(
            "SELECT account_id, name, balance FROM ct_accounts ORDER BY account_id",
            [ViewGrant("ct_accounts", cols, "t1", frozenset({"name"}))],
        ).to_pylist()
        # SQLite answers decimals as exact text (its NUMERIC is a float); ClickHouse as decimals
        got = [{**r, "balance": D(str(r["balance"]))} for r in got]
        assert got == [{"account_id": "a", "name": None, "balance": D("1.00")}]
        everyone = store.query(
            "SELECT count(*) AS n FROM ct_accounts", [ViewGrant("ct_accounts", cols, None)]
        ).to_pylist()
        assert everyone[0]["n"] == 2
        for bad in ("DELETE FROM ct_accounts", "SELECT * FROM ct_history"):
            with pytest.raises(InvalidInput):
                store.query(bad, [ViewGrant("ct_accounts", cols, "t1")])
        store.drop(live, self.tables())

    def test_states_round_trip(self, store: ViewStore, target):
        s = ViewState(target.id, "ct_accounts", "ab" * 32, 3, "[]", None, 1)
        store.save_state(s)
        assert store.states(target.id) == [s]

    def test_aggregate_tables_merge_partials(self, store: ViewStore, target):
        if not self.aggregates:
            with pytest.raises(HubError):
                store.ensure(target, (AGG,))
            return
        store.ensure(target, self.tables())
        part = {"tenant": "t1", "day": 0, "src_topic": "p", "src_partition": 0}
        store.write(
            target,
            self.tables(),
            {
                "ct_volumes": [
                    {
                        **part,
                        "events": 2,
                        "amount": D("3"),
                        "biggest": D("2"),
                        "src_first": 0,
                        "src_last": 1,
                    }
                ]
            },
            Checkpoint(1, {("p", 0): Position(2)}),
        )
        store.write(
            target,
            self.tables(),
            {
                "ct_volumes": [
                    {
                        **part,
                        "events": 1,
                        "amount": D("5"),
                        "biggest": D("5"),
                        "src_first": 2,
                        "src_last": 2,
                    }
                ]
            },
            Checkpoint(2, {("p", 0): Position(3)}),
        )
        (row,) = store.rows(target, AGG)
        assert (row["events"], row["amount"], row["biggest"]) == (3, D(8), D(5))
        assert row["src_offsets"] == [["p", 0, 0, 2, 3]]

    # -- retention: delete_rows_before / count_rows_before ----------------------------------------
    def _write_aged_rows(self, store: ViewStore, target: Target) -> tuple:
        """Rows of every kind around the cutoff 250 µs, written in two batches. (Live targets of
        one store share their table names: start from empty tables.)"""
        tables = (*self.tables(), EVENTS)
        store.drop(target, tables)
        store.ensure(target, tables)
        first = {
            "ct_accounts": [
                account("t1", "a", "1", opened_at=100),
                account("t1", "b", "1", opened_at=500),  # young, then rewritten old
                account("t1", "c", "1", opened_at=100),  # old, then rewritten young
            ],
            "ct_events": [event(0, 100), event(1, 300), event(2, None)],
        }
        second = {
            "ct_accounts": [
                account("t1", "b", "2", opened_at=150),
                account("t1", "c", "2", opened_at=400),
            ]
        }
        if self.aggregates:
            first["ct_volumes"] = [volume(100, 2, 0), volume(300, 1, 2)]
            second["ct_volumes"] = [volume(100, 1, 3)]  # a second partial of the old row
        store.write(target, tables, first, Checkpoint(1, {("e", 0): Position(3)}))
        store.write(target, tables, second, Checkpoint(2, {("e", 0): Position(4)}))
        return tables

    def test_delete_rows_before_removes_expired_view_rows_only_and_counts_them(
        self, store: ViewStore, target
    ):
        other = Target(target.projection, "rebuild_1")
        tables = self._write_aged_rows(store, target)
        self._write_aged_rows(store, other)
        cp = store.checkpoint(target)
        cuts = [(ENTITY, "opened_at", 2), (EVENTS, "at", 1)]
        if self.aggregates:
            cuts.append((AGG, "day", 1))
        before = {t.name: store.rows(target, t) for t in tables}
        for table, column, expected in cuts:
            assert store.count_rows_before(target, table, column, 250) == expected
        assert {t.name: store.rows(target, t) for t in tables} == before  # counting deletes none
        for table, column, expected in cuts:
            assert store.delete_rows_before(target, table, column, 250) == expected
        # entity rows go by their newest write: b (newest old) is gone, c (newest young) stays
        assert [(r["account_id"], r["opened_at"]) for r in store.rows(target, ENTITY)] == [
            ("c", 400)
        ]
        assert [r["at"] for r in store.rows(target, EVENTS)] == [300, None]  # NULL is kept
        if self.aggregates:
            assert [(r["day"], r["events"]) for r in store.rows(target, AGG)] == [(300, 1)]
        # MUST NOT touch other tables, other targets or the positions
        assert store.rows(target, APPEND) == before["ct_history"]
        assert store.checkpoint(target) == cp
        assert len(store.rows(other, ENTITY)) == 3 and len(store.rows(other, EVENTS)) == 3
        for table, column, _ in cuts:  # a rerun finds nothing left
            assert store.delete_rows_before(target, table, column, 250) == 0
            assert store.count_rows_before(target, table, column, 250) == 0
        assert store.delete_rows_before(target, ENTITY, "opened_at", 401) == 1
        assert store.rows(target, ENTITY) == []
        store.drop(target, tables)
        store.drop(other, tables)

    def test_delete_rows_before_leaves_the_rows_keep_names(self, store: ViewStore, target):
        """Retention under a legal hold on data subject "a": its expired row stays; b's goes."""
        tables = self._write_aged_rows(store, target)
        store.write(
            target, tables, {"ct_accounts": [account("t1", "b", "3", opened_at=100)]},
            Checkpoint(3, {("e", 0): Position(5)}),
        )  # fmt: skip
        keep = {"account_id": ["a", "zz"]}
        assert store.count_rows_before(target, ENTITY, "opened_at", 250, keep) == 1
        assert store.delete_rows_before(target, ENTITY, "opened_at", 250, keep) == 1
        assert sorted(r["account_id"] for r in store.rows(target, ENTITY)) == ["a", "c"]
        assert store.delete_rows_before(target, ENTITY, "opened_at", 250, {"account_id": []}) == 1
        assert sorted(r["account_id"] for r in store.rows(target, ENTITY)) == ["c"]
        for bad in ({"nope": ["a"]}, {"balance": ["a"]}):  # no such column; not a string
            for op in (store.count_rows_before, store.delete_rows_before):
                with pytest.raises(InvalidInput):
                    op(target, ENTITY, "opened_at", 10**18, bad)
        assert len(store.rows(target, ENTITY)) == 1
        store.drop(target, tables)

    def test_delete_rows_before_refuses_unknown_columns_and_tables(self, store: ViewStore, target):
        tables = self._write_aged_rows(store, target)
        before = {t.name: store.rows(target, t) for t in tables}
        refused = [
            (target, ENTITY, "nope"),  # no such column
            (target, ENTITY, "name"),  # not a timestamp
            (target, MERGED_TIME, "last_at"),  # a merged aggregate column
            (Target(target.projection, "never"), ENTITY, "opened_at"),  # a target without tables
            (Target(target.projection, "never"), EVENTS, "at"),
        ]
        for t, table, column in refused:
            for op in (store.count_rows_before, store.delete_rows_before):
                with pytest.raises(InvalidInput):
                    op(t, table, column, 10**18)
        assert {t.name: store.rows(target, t) for t in tables} == before
        store.drop(target, tables)

    # -- erasure: erase_values -------------------------------------------------------------------
    def _write_subject_rows(self, store: ViewStore, target: Target) -> tuple:
        """Payments of subjects a and b in two batches (P1 of a written twice), plus history and,
        in analytics stores, aggregate rows of a (two partials) and b."""
        tables = (PAYMENTS, APPEND, NAMED) if self.aggregates else (PAYMENTS, APPEND)
        store.drop(target, tables)
        store.ensure(target, tables)
        first = {
            "ct_payments": [
                payment("P1", "a", "Ann", "rent"),
                payment("P2", "b", "Bob", "food"),
                payment("P3", "a", None, "gift"),  # NULL stays NULL
            ],
            "ct_history": [
                {"src_topic": "e", "src_partition": 0, "src_offset": 0, "tenant": "t1", "what": "a"}
            ],
        }
        second = {"ct_payments": [payment("P1", "a", "Ann Smith", "rent", "2")]}
        if self.aggregates:
            first["ct_named"] = [named("a", 2, "Ann", 0), named("b", 1, "Bob", 2)]
            second["ct_named"] = [named("a", 1, "Ann", 3)]
        store.write(target, tables, first, Checkpoint(1, {("e", 0): Position(3)}))
        store.write(target, tables, second, Checkpoint(2, {("e", 0): Position(4)}))
        return tables

    def test_erase_values_sets_the_marker_in_the_subjects_rows_only(self, store: ViewStore, target):
        other = Target(target.projection, "rebuild_1")
        tables = self._write_subject_rows(store, target)
        self._write_subject_rows(store, other)
        cp = store.checkpoint(target)
        before = {t.name: store.rows(target, t) for t in tables}
        n = store.erase_values(target, PAYMENTS, "account_id", "a", ["payee", "memo"], ERASED)
        assert n == 2
        expected = [
            {**r, "payee": None if r["payee"] is None else ERASED, "memo": ERASED}
            if r["account_id"] == "a"
            else r
            for r in before["ct_payments"]
        ]
        got = store.rows(target, PAYMENTS)
        assert got == expected  # every other column, src_offsets included, is unchanged
        assert [(r["payment_id"], r["payee"], r["amount"]) for r in got] == [
            ("P1", ERASED, D(2)),  # the newest write of P1
            ("P2", "Bob", D(1)),  # the other subject is untouched
            ("P3", None, D(1)),
        ]
        loaded = store.load(target, PAYMENTS, [("t1", "P1"), ("t1", "P2")])
        assert loaded[("t1", "P1")]["payee"] == ERASED and loaded[("t1", "P2")]["payee"] == "Bob"
        if self.aggregates:
            assert store.erase_values(target, NAMED, "account_id", "a", ["name"], ERASED) == 1
            assert [
                (r["account_id"], r["events"], r["name"]) for r in store.rows(target, NAMED)
            ] == [
                ("a", 3, ERASED),
                ("b", 1, "Bob"),
            ]
        # MUST NOT touch other tables, other targets or the positions
        assert store.rows(target, APPEND) == before["ct_history"]
        assert store.checkpoint(target) == cp
        assert {t.name: store.rows(other, t) for t in tables} == before
        # a rerun is harmless; no matching row changes nothing
        assert (
            store.erase_values(target, PAYMENTS, "account_id", "a", ["payee", "memo"], ERASED) == 2
        )
        assert store.rows(target, PAYMENTS) == expected
        assert store.erase_values(target, PAYMENTS, "account_id", "zz", ["payee"], ERASED) == 0
        assert store.rows(target, PAYMENTS) == expected
        store.drop(target, tables)
        store.drop(other, tables)

    def test_erase_values_refuses_unknown_or_unsafe_columns_and_tables(
        self, store: ViewStore, target
    ):
        tables = self._write_subject_rows(store, target)
        before = {t.name: store.rows(target, t) for t in tables}
        refused = [
            (target, PAYMENTS, "nope", ["payee"]),  # no such selecting column
            (target, PAYMENTS, "account_id", ["nope"]),  # no such column
            (target, PAYMENTS, "account_id", []),  # nothing to erase
            (target, PAYMENTS, "account_id", ["payment_id"]),  # a key column
            (target, PAYMENTS, "account_id", ["amount"]),  # not a string column
            (target, PAYMENTS, "account_id", ["account_id", "payee"]),  # the selecting column
            (Target(target.projection, "never"), PAYMENTS, "account_id", ["payee"]),  # no tables
        ]
        if self.aggregates:
            refused.append((target, NAMED, "name", ["name"]))
            refused.append((target, NAMED, "events", ["name"]))  # not a key: would split rows
        for t, table, column, columns in refused:
            with pytest.raises(InvalidInput):
                store.erase_values(t, table, column, "a", columns, ERASED)
        assert {t.name: store.rows(target, t) for t in tables} == before
        store.drop(target, tables)
