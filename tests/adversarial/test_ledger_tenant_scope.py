"""Ledger reads keep to the reader's tenant. A compliance officer of tenant globex (no
``tenant.all``: the ``ledger.read`` decision carries ``row_filter {"tenant": "globex"}``) MUST
NOT see acme's entries: lists leave them out (paging still reaches every visible entry once),
by index and by lookup they answer 404 as a missing entry does, over HTTP, in the console and
on the CLI. Entries with no tenant stay visible to everyone; an admin (``tenant.all``) and
acme's own officer still see acme's entries. Every ledger store filters the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from core.ports.eventlog import Record
from core.ports.ledgerstore import LeafQuery
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from ledger.populations import ingest_counts
from tests.adversarial._api import Api, acme_case, basic, serve_hub
from tests.adversarial.test_console_keys import as_


@pytest.fixture(params=["tiles", "sqlite"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A fresh hub on each file ledger store (tiles is the default)."""
    yield from serve_hub(
        bootstrap(
            load_settings(
                environ={"HUB_PROJECTION_AUTOSTART": "false"},
                data_dir=tmp_path / "data",
                ledger_store=request.param,
            )
        )
    )


def _acme_case(api: Api) -> tuple[str, str]:
    """acme's officer opens a case (acme's entries on the ledger, and an untenanted record);
    the tokens of acme's and globex's compliance officers."""
    _, acme, globex = acme_case(api)
    api.hub.ledger.record_action("gus", "globex.note", "n-1", tenant="globex")
    api.hub.log.create_topic("raw.untenanted", 1, {})
    api.hub.log.append("raw.untenanted", [Record(b"v", b"k")])
    api.hub.ledger.sync(force_checkpoint=True)
    return acme, globex


def _all(api: Api, headers: dict[str, str], path: str = "/v1/ledger/entries") -> list[Any]:
    r = api.client.get(path, params={"limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    entries: list[Any] = r.json()["entries"]
    return entries


def _acme_index(api: Api) -> int:
    return next(e["index"] for e in _all(api, api.admin) if e["tenant"] == "acme")


def test_lists_leave_out_another_tenants_entries(api: Api) -> None:
    acme, globex = _acme_case(api)
    every = _all(api, api.admin)
    assert {"acme", "globex", None} <= {e["tenant"] for e in every}
    theirs = _all(api, basic(globex))
    assert {e["tenant"] for e in theirs} == {"globex", None}, theirs
    assert [e for e in every if e["tenant"] in ("globex", None)] == theirs
    mine = _all(api, basic(acme))
    assert "acme" in {e["tenant"] for e in mine} and "globex" not in {e["tenant"] for e in mine}
    assert any(e["action"] == "case.open" for e in mine)


def test_paging_across_a_filtered_gap_reaches_each_visible_entry_once(api: Api) -> None:
    _, globex = _acme_case(api)
    visible = [e["index"] for e in _all(api, api.admin) if e["tenant"] in ("globex", None)]
    seen: list[int] = []
    after = -1
    for _ in range(len(visible) + 2):
        r = api.client.get(
            "/v1/ledger/entries", params={"limit": 1, "after": after}, headers=basic(globex)
        )
        page = r.json()
        if not page["entries"]:
            assert page["next_after"] == after
            break
        seen += [e["index"] for e in page["entries"]]
        assert page["next_after"] > after
        after = page["next_after"]
    assert seen == visible


def test_by_index_and_lookup_answer_404_as_for_a_missing_entry(api: Api) -> None:
    acme, globex = _acme_case(api)
    index = _acme_index(api)
    hidden = api.client.get(f"/v1/ledger/entries/{index}", headers=basic(globex))
    missing = api.client.get("/v1/ledger/entries/999999", headers=basic(globex))
    assert hidden.status_code == missing.status_code == 404, hidden.text
    assert hidden.json()["reason"] == missing.json()["reason"]
    size = api.hub.ledger.store.tree_size()
    assert hidden.json()["message"] == missing.json()["message"].replace("999999", str(index))
    assert str(size) in hidden.json()["message"]
    assert "headers" not in hidden.text and "acme" not in hidden.text
    assert api.client.get(f"/v1/ledger/entries/{index}", headers=basic(acme)).status_code == 200
    assert api.client.get(f"/v1/ledger/entries/{index}", headers=api.admin).status_code == 200
    entry = api.client.get(f"/v1/ledger/entries/{index}", headers=api.admin).json()
    where = {"topic": entry["topic"], "partition": entry["partition"], "offset": entry["offset"]}
    r = api.client.get("/v1/ledger/lookup", params=where, headers=basic(globex))
    assert r.status_code == 404 and "acme" not in r.text, r.text
    assert api.client.get("/v1/ledger/lookup", params=where, headers=basic(acme)).status_code == 200
    ids = [v for k, v in _headers(entry) if k == "ce_id"]
    r = api.client.get("/v1/ledger/lookup", params={"event_id": ids[0]}, headers=basic(globex))
    gone = api.client.get(
        "/v1/ledger/lookup", params={"event_id": "no-such-id"}, headers=basic(globex)
    )
    assert r.status_code == gone.status_code == 404, r.text
    assert r.json()["message"].replace(ids[0], "X") == gone.json()["message"].replace(
        "no-such-id", "X"
    )


def _headers(entry: dict[str, Any]) -> list[tuple[str, str]]:
    import base64

    return [(k, base64.b64decode(v).decode()) for k, v in entry["headers"]]


def test_the_console_keeps_ledger_entries_to_the_officers_tenant(api: Api) -> None:
    _, globex = _acme_case(api)
    index = _acme_index(api)
    as_(api.client, globex, "/ui/ledger")
    listed = _all(api, {}, "/ui/api/ledger/entries")
    assert listed and {e["tenant"] for e in listed} <= {"globex", None}, listed
    assert api.client.get(f"/ui/api/ledger/entries/{index}").status_code == 404
    api.client.cookies.clear()


def test_the_cli_keeps_ledger_entries_to_the_officers_tenant(api: Api) -> None:
    acme, globex = _acme_case(api)
    index = _acme_index(api)
    data = str(api.hub.settings.data_dir)
    api.hub.close()  # the CLI opens the data folder as an operator's would
    api.hub.close = lambda: None  # type: ignore[method-assign]

    def cli(token: str, *args: str) -> Any:
        return CliRunner().invoke(main, ["--data-dir", data, "--key", token, "ledger", *args])

    r = cli(globex, "entries", "--limit", "1000")
    assert r.exit_code == 0 and '"tenant": "acme"' not in r.output, r.output
    assert '"tenant": "globex"' in r.output
    r = cli(globex, "entry", str(index))
    assert r.exit_code == 1 and "no ledger entry" in str(r.stderr), r.output
    r = cli(acme, "entry", str(index))
    assert r.exit_code == 0 and '"acme"' in r.output, r.output


def test_every_store_filters_on_the_tenant_scope(api: Api) -> None:
    _acme_case(api)
    store = api.hub.ledger.store
    every = store.find(LeafQuery(), limit=10_000)
    scoped = store.find(LeafQuery(tenant_scope="globex"), limit=10_000)
    assert scoped == [r for r in every if r[8] in ("globex", None)]
    assert store.query(tenant_scope="nobody", limit=10_000) == [r for r in every if r[8] is None]
    # a record without ce_tenant is hub-wide: visible to every tenant
    assert any(r[1] == "raw.untenanted" for r in scoped)
    # an evidence pack's PI1 ingest counts keep to the scope too
    counts = ingest_counts(api.hub.ledger, 0, 2**62, "globex")
    assert "hub.cases" not in counts and counts["raw.untenanted"] == 1
    assert ingest_counts(api.hub.ledger, 0, 2**62)["hub.cases"] == 1


def _pack(api: Api, headers: dict[str, str]) -> tuple[dict[str, Any], list[Any]]:
    """A pack of every control over all time: its manifest and entries."""
    import io
    import json
    import zipfile

    r = api.client.post("/v1/evidence?from=2000-01-01&to=2100-01-01", headers=headers)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        entries = [json.loads(line) for line in zf.read("entries.jsonl").splitlines()]
    return manifest, entries


def test_a_tenant_officers_evidence_pack_holds_its_tenant_only(api: Api) -> None:
    acme, globex = _acme_case(api)
    manifest, entries = _pack(api, basic(globex))
    assert manifest["tenant_scope"] == "globex"
    assert entries and {e["tenant"] for e in entries} <= {"globex", None}, entries
    assert manifest["entries"] == len(entries)
    mine, acme_entries = _pack(api, basic(acme))
    assert mine["tenant_scope"] == "acme"
    assert "acme" in {e["tenant"] for e in acme_entries}
    every, all_entries = _pack(api, api.admin)
    assert every["tenant_scope"] is None
    assert {"acme", "globex"} <= {e["tenant"] for e in all_entries}


def test_an_entry_bundle_holding_another_tenants_entries_is_refused(api: Api) -> None:
    """Entry bundles are leaf inputs: every envelope header verbatim. Hash tiles stay open."""
    _, globex = _acme_case(api)
    width = min(256, api.hub.ledger.store.tree_size())
    path = f"/v1/ledger/tlog/tile/entries/000.p/{width}"
    r = api.client.get(path, headers=basic(globex))
    assert r.status_code == 403 and "tenant.all" in r.json()["message"], r.text
    assert api.client.get(path, headers=api.admin).status_code == 200
    hashes = api.client.get(f"/v1/ledger/tlog/tile/0/000.p/{width}", headers=basic(globex))
    assert hashes.status_code == 200, hashes.text
