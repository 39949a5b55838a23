"""An erasure MUST reach the Feast feature store too (``HUB_FEATURE_STORE=feast``).

Feast keeps three copies of an account's attribute facts: the SQLite table the fold writes, the
offline Parquet export and the online rows (SQLite file embedded, Redis distributed). Before,
none of them was touched by ``hub erase``; with ``FeatureStore.forget`` added for the embedded
store, Feast's adapter had none (the erasure would have failed after the keys were destroyed).
Now the erasure deletes the subject's rows from all three; another account keeps its own."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq

from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.ml_setup import ml_of
from hub.settings import load_settings
from ml.features import DEFAULT_TENANT, entity_key, to_us
from tests.service.test_ml import T, _open, _pay

OFFICER = Principal("ann", frozenset({"compliance_officer"}))


def _hub(data: Path) -> Hub:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", "HUB_FEATURE_STORE": "feast"}
    return bootstrap(load_settings(environ=environ, data_dir=data))


def _online_keys(path: Path) -> int:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)


def test_erasure_deletes_the_subjects_rows_from_feast(tmp_path: Path) -> None:
    """~10-20 s: importing Feast and registering its feature view take seconds."""
    hub = _hub(tmp_path / "d")
    try:
        for acc in ("A", "B"):
            _open(hub, acc, "BASIC", "HIGH", T - timedelta(days=30))
            _pay(hub, f"P-{acc}", acc, "9500.00", T - timedelta(minutes=30))
        ml = ml_of(hub)
        ml.feed(ml.scorer("payment_risk").engine.view).catch_up()
        feast = ml.features
        keys = [entity_key(DEFAULT_TENANT, acc) for acc in ("A", "B")]
        now = to_us(T.isoformat())
        feast.attribute_state("accounts", keys, now, now)  # online rows written
        feast.attributes("accounts", keys, now)  # the offline table exported
        folder = hub.settings.data_dir / "ml" / "feast"
        erased, kept = entity_key(DEFAULT_TENANT, "A"), entity_key(DEFAULT_TENANT, "B")
        assert set(feast.online_attributes("accounts", [erased, kept])) == {erased, kept}
        online_before = _online_keys(folder / "online.sqlite")
        hub.eraser.erase(OFFICER, "A", "DSR-9", tenant_scope=None)  # before: NotImplementedError
        assert set(feast.online_attributes("accounts", [erased, kept])) == {kept}
        assert 0 < _online_keys(folder / "online.sqlite") < online_before
        offline = pq.read_table(folder / "offline" / "accounts.parquet").to_pylist()
        assert {r["entity"] for r in offline} == {kept}
        with sqlite3.connect(folder / "features.sqlite") as db:
            left = {
                r[0]
                for r in db.execute("SELECT entity FROM series UNION SELECT entity FROM versions")
            }
        assert erased not in left and kept in left
        for name in ("online.sqlite", "features.sqlite"):  # nor in free pages or logs
            files = [f for f in folder.glob(name + "*") if f.is_file()]
            assert [f.name for f in files if erased.encode() in f.read_bytes()] == []
    finally:
        hub.close()
