"""A lake export is a governed data egress (``lake.export``: masked records of each topic and
the projection views leave the hub for the object store, read by Spark, Trino and DuckDB).
Before, its only trace on the ledger was the policy decision that allowed it, written before
anything ran: an auditor could not tell an export that happened from one that failed, nor which
tables and how many rows left, while ``backup.create``, ``backup.restore`` and ``evidence.export``
each record what they did. Now a completed export records a ``lake.export`` audit action (actor,
resource ``lake``, the tables with their row counts and the ledger size the export covers) that
``hub ledger entries --action lake.export`` and the CC6 population find; a failed one records
none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adversarial.test_lake_verify import export, publish, run
from tests.cli_keys import admin_args


def test_a_lake_export_leaves_an_audit_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "objects"))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    data = tmp_path / "hub"
    publish(data, 0, 30)
    r = export(data)
    assert r.exit_code == 0, r.output
    r = run(*admin_args(data), "ledger", "entries", "--action", "lake.export")
    assert r.exit_code == 0, r.output
    entries = [json.loads(line) for line in r.stdout.splitlines()]
    audit = [e for e in entries if e["topic"] == "hub.audit"]
    assert len(audit) == 1, entries
    (e,) = audit
    assert e["actor"] and e["resource"] == "lake"
    r = run(*admin_args(data), "ledger", "entry", str(e["index"]))
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["action"] == "lake.export" and got["proof"] is not None
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(data_dir=data))
    try:
        (rec,) = h.reader.read("hub.audit", e["partition"], e["offset"], 1)
    finally:
        h.close()
    details = json.loads(rec["value"]["details"])
    assert details["tables"] == {"raw.accounts": 30}, details
    assert details["ledger_size"] > 0 and "catalog" not in details
