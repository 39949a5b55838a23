"""Old and new SQL paths rebuild the same views: the first fold level in Arrow
(``sqlfolds.ARROW_PARTIALS``, session 14) against every level in ClickHouse (before), from the
same log, compared row for row: every view's merged rows, every partial row the store holds
(with its batch number), and the positions; the Python fold (the reference) gives the same merged
rows. Also with the sum guard tightened so that some batches of a rebuild keep the SQL and others
take Arrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.events import OutgoingEvent
from core.ports.views import Target
from projections import sqlfolds
from projections.catalog import by_name
from tests.service.test_projections_columnar import make_hub, payments, trades

pytest.importorskip("chdb")


def rebuild(h: Any, name: str, path: str, batch: int) -> dict[str, Any]:
    """Rebuild ``name`` into a scratch target by ``path`` ("python", "sql" or "arrow") and give
    back every table's merged rows, its stored partial rows (sorted) and the positions."""
    ps = h.projections
    proj = by_name(name)
    target = Target(name, f"{path}_{batch}")
    store = ps.store(proj.store)
    store.drop(target, proj.tables)
    runner = ps._new_runner(proj, target)
    runner.columnar = path != "python"
    runner.batch_records = batch
    runner.open()
    runner.catch_up()
    out: dict[str, Any] = {"columnar_batches": runner.columnar_batches}
    for t in proj.tables:
        out[t.name] = store.rows(target, t)
        partials = store._arrow(f"SELECT * FROM hub_views.{target.table(t.name)}__p")
        out[f"{t.name}__p"] = sorted(map(repr, partials.to_pylist()))
    out["positions"] = sorted(store.checkpoint(target).positions.items())
    store.drop(target, proj.tables)
    return out


@pytest.mark.parametrize("mode", ["update", "side"])
def test_arrow_partials_rebuild_the_same_rows_as_the_sql_path(tmp_path: Path, monkeypatch, mode):
    h = make_hub(tmp_path / "d", projection_allowed_lateness_s=60, projection_late_mode=mode)
    try:
        h.publisher.publish("trades", trades(700), producer="t", tenant="acme")
        h.publisher.publish("trades", trades(300, seed=9), producer="t", tenant="globex")
        h.publisher.publish("payments", payments(400), producer="t", tenant="acme")
        h.publisher.publish("payments", payments(200, seed=5), producer="t", tenant="globex")
        taken = {"bars": 0, "payments": 0}
        bars, pays = sqlfolds._bar_partials, sqlfolds._payment_partials

        def count_bars(*a: Any) -> Any:
            got = bars(*a)
            taken["bars"] += got is not None
            return got

        def count_payments(*a: Any) -> Any:
            got = pays(*a)
            taken["payments"] += got is not None
            return got

        monkeypatch.setattr(sqlfolds, "_bar_partials", count_bars)
        monkeypatch.setattr(sqlfolds, "_payment_partials", count_payments)
        for name in ("market_bars", "payment_aggregates"):
            for batch in (10_000, 97):
                monkeypatch.setattr(sqlfolds, "ARROW_PARTIALS", False)
                old = rebuild(h, name, "sql", batch)
                monkeypatch.setattr(sqlfolds, "ARROW_PARTIALS", True)
                new = rebuild(h, name, "arrow", batch)
                ref = rebuild(h, name, "python", batch)
                assert old.pop("columnar_batches") > 0 and new.pop("columnar_batches") > 0
                assert ref.pop("columnar_batches") == 0
                assert new == old, (name, batch)
                for t in by_name(name).tables:
                    assert new[t.name] == ref[t.name], (name, batch, t.name)
                assert any(new[t.name] for t in by_name(name).tables)
        assert taken["payments"] > 0
        if mode == "update":  # with late events dropped ("side") bars fold per window in SQL
            assert taken["bars"] > 0
    finally:
        h.close()


def huge(events: list[OutgoingEvent], fields: dict[str, str]) -> list[OutgoingEvent]:
    """The events with the largest values their schema allows in ``fields``."""
    return [
        OutgoingEvent(value={**e.value, **fields}, event_type=e.event_type, key=e.key)
        for e in events
    ]


def test_batches_near_the_decimal_range_keep_the_sql_and_the_rows(tmp_path: Path, monkeypatch):
    """The guard against sums near 38 digits: batches holding trades of the largest price and
    quantity decimal(18, 8) and decimal(18, 4) take (a notional of 10**36 units) keep the SQL, the
    others take Arrow, in one rebuild; payments' amounts (decimal(18, 2)) cannot come near, so
    the guard is tightened for them."""
    h = make_hub(tmp_path / "d")
    try:
        big_trade = {"price": "9999999999.99999999", "quantity": "99999999999999.9999"}
        h.publisher.publish("trades", trades(200), producer="t", tenant="acme")
        h.publisher.publish(
            "trades", huge(trades(40, seed=2), big_trade), producer="t", tenant="acme"
        )
        h.publisher.publish("trades", trades(200, seed=4), producer="t", tenant="acme")
        big_payment = {"amount": "9999999999999999.99"}
        pays = payments(300)
        h.publisher.publish("payments", pays[:150], producer="t", tenant="acme")
        h.publisher.publish(
            "payments", huge(pays[150:190], big_payment), producer="t", tenant="acme"
        )
        h.publisher.publish("payments", pays[190:], producer="t", tenant="acme")
        taken = {"arrow": 0, "sql": 0}

        def count(fn: Any) -> Any:
            def wrapped(*a: Any) -> Any:
                got = fn(*a)
                taken["arrow" if got is not None else "sql"] += 1
                return got

            return wrapped

        monkeypatch.setattr(sqlfolds, "_bar_partials", count(sqlfolds._bar_partials))
        monkeypatch.setattr(sqlfolds, "_payment_partials", count(sqlfolds._payment_partials))
        for name, limit in (("market_bars", 10**37), ("payment_aggregates", 10**15)):
            monkeypatch.setattr(sqlfolds, "ARROW_PARTIALS", False)
            old = rebuild(h, name, "sql", 29)
            monkeypatch.setattr(sqlfolds, "ARROW_PARTIALS", True)
            monkeypatch.setattr(sqlfolds, "_SUM_LIMIT", limit)
            taken.update(arrow=0, sql=0)
            new = rebuild(h, name, "arrow", 29)
            assert taken["arrow"] > 0 and taken["sql"] > 0, (name, taken)
            assert new == old, name
    finally:
        h.close()
