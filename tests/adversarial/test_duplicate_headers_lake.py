"""The lake export and a record carrying an envelope header twice (left from session 11).

The Spark backfill job (``projections/spark_job.py``) reads the lake's ``raw.<topic>`` headers
as a JSON map. The export wrote that map from every header, so a record carrying ``ce_tenant``
twice (written to Kafka by another producer) kept its *last* copy there: Spark counted it for
that tenant while the embedded views quarantine it and every other reader sees no tenant. The
export now writes no copy of the repeated header and no decoded value, so the lake's jobs leave
the record out as the views do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import OutgoingEvent
from core.ports.eventlog import Record
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from storage.lake import export_topic, open_catalog
from tests.service.accounts import account_opened

NOW = "2026-11-25T10:00:00Z"


def _account(account: str) -> OutgoingEvent:
    return account_opened(account, name="Ada", email="ada@acme.example", opened_at=NOW, key=account)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false"},
            data_dir=tmp_path / "data",
            ledger_store="sqlite",
        )
    )
    try:
        yield h
    finally:
        h.close()


def test_the_lake_keeps_no_copy_of_a_repeated_envelope_header(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.publisher.publish("accounts", [_account("A-1")], "acme-app", "acme")
    (rec,) = hub.publisher.prepare("accounts", [_account("A-2")], "acme-app", "acme")
    bad = Record(rec.value, rec.key, (*rec.headers, ("ce_tenant", b"globex")))
    with monkeypatch.context() as m:  # past the gate: as a foreign Kafka producer would write
        m.setattr("adapters.sqlite_log.batch.repeats_envelope", lambda *a: False)
        (md,) = hub.log.append("accounts", [bad])
    lake = tmp_path / "lake"
    lake.mkdir()
    catalog = open_catalog(f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "wh").as_uri())
    n = export_topic(
        catalog, hub.log, "accounts", lambda r: hub.reader.decode(r, mask_pii=True), None
    )
    assert n == 2
    rows = catalog.load_table("raw.accounts").scan().to_arrow().to_pylist()
    by_offset = {(r["partition"], r["offset"]): r for r in rows}
    planted = by_offset.pop((md.partition, md.offset))
    (good,) = by_offset.values()
    # the well-formed record: its tenant and its decoded value, as before
    assert json.loads(good["headers"])["ce_tenant"] == "acme"
    assert json.loads(good["value_json"])["account_id"] == "A-1"
    # the planted one: no copy of ce_tenant (before: "globex", the last copy) and no value,
    # so Spark's ``value_json IS NOT NULL`` leaves it out as the views quarantine it
    headers = json.loads(planted["headers"])
    assert "ce_tenant" not in headers, headers
    assert headers["ce_type"] == "hub.accounts.AccountOpened"  # other headers stay
    assert planted["value_json"] is None
    assert planted["value"] == bad.value  # the record's bytes are still exported as stored
