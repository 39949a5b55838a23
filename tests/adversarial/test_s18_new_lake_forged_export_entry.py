"""Session 18 red team (new surfaces): a publisher forged the ``lake.export`` entry that
``hub lake verify`` trusts.

Verify compares each view table with the digest, and each raw table's ``hub.next_offsets``
with the position, that the ledger's newest ``lake.export`` entry records. It found those
entries by the ledger's action column alone, which for a data record is its ``ce_type`` (the
event type, the schema's full name): a publisher key registered subject ``lake.export`` (a
record ``lake.export`` with a ``details`` string), published one record of it on the shared
``accounts`` topic holding the digest of a view table edited in the object store (or a lowered
position), and verify took that record as the newest export and answered ok over the forged
table. Only the hub's own audit records (``hub.audit``) count now, as for the retention cuts
(``ledger.cuts.iter_cuts``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from storage.lake import open_catalog
from storage.lake_verify import view_digest
from tests.adversarial._api import basic
from tests.adversarial.test_lake_verify import admin_args, data, data_files, rewrite, run, verify
from tests.adversarial.test_s17_store_lake_views import _view_with_rows

__all__ = ["data"]  # the fixture, re-used

FORGED_EXPORT = {
    "type": "record",
    "name": "export",
    "namespace": "lake",  # full name "lake.export": the event type, so the ledger's action
    "fields": [{"name": "details", "type": "string"}],
}


def _catalog(tmp_path: Path) -> Any:
    lake = tmp_path / "objects" / "lake"
    return open_catalog(
        f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "warehouse").resolve().as_uri()
    )


def _publish_forged_entry(data: Path, details: dict[str, Any]) -> None:
    """What a publisher key did over the API: register subject ``lake.export`` and publish
    one record of it on the shared ``accounts`` topic (record-name strategy). The registry
    now refuses the name (``reserved_name``, test_s18_actions_registry_names); a subject
    registered before the refusal keeps working, so verify must still not trust its record:
    the subject is put straight into the registry, as it stands on such a hub."""
    h = bootstrap(load_settings(data_dir=data))
    try:
        with TestClient(create_app(h), base_url="http://127.0.0.1") as c:
            who = basic(h.keys.create(["publisher"], owner="mallory", tenant="globex").token)
            r = c.post(
                "/subjects/lake.export/versions",
                json={"schema": json.dumps(FORGED_EXPORT)},
                headers=who,
            )
            assert r.status_code == 422 and r.json()["reason"] == "reserved_name", r.text
            h.registry.register("lake.export", json.dumps(FORGED_EXPORT))
            event = {"event_type": "lake.export", "value": {"details": json.dumps(details)}}
            r = c.post("/v1/topics/accounts/events", json={"events": [event]}, headers=who)
            assert r.status_code == 201, r.text
        h.ledger.sync(force_checkpoint=True)
        rows = h.ledger.store.query(action="lake.export", after=-1, limit=1000)
        assert any(r[1] == "accounts" for r in rows), "the forged record is not a lake.export row"
    finally:
        h.close()


def test_a_published_record_named_lake_export_does_not_vouch_for_a_forged_view(
    data: Path, tmp_path: Path
) -> None:
    r = run(*admin_args(data), "lake", "export", "--topic", "accounts")
    assert r.exit_code == 0, r.output
    ident, col = _view_with_rows(data, tmp_path, pii=False)
    table = _catalog(tmp_path).load_table(ident)
    (path,) = data_files(table)

    def change(t: pa.Table) -> pa.Table:
        values = t.column(col).to_pylist()
        values[0] = "forged"
        i = t.schema.get_field_index(col)
        return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))

    rewrite(path, change)
    forged = _catalog(tmp_path).load_table(ident)
    names = forged.schema().as_arrow().names
    sha, n = view_digest(forged.scan().to_arrow_batch_reader(), names)
    _publish_forged_entry(data, {"views": {ident: {"sha256": sha, "rows": n}}})
    r = verify(data, ident)
    assert r.exit_code == 1, r.output
    assert ident in r.output and "lake.export" in r.output, r.output
