"""Quarantine reads keep to the reader's tenant. A record acme's publisher sends that fails its
checks is quarantined with acme's tenant (``ce_tenant``); globex's compliance officer (no
``tenant.all``: the ``quarantine.read`` decision carries ``row_filter {"tenant": "globex"}``)
MUST NOT list it or fetch it by offset (404 as for a missing entry), while acme's officer and an
admin can. A quarantine record without a tenant (written before records carried one) counts as
tenant ``default``. Lists page past the entries a reader does not see. A tenant's officer reads
positions, not offsets (s19, ``hub.api.positions``): ``_pos``/``_raw`` translate here."""

from __future__ import annotations

from typing import Any

import pytest

from core.ports.eventlog import Record
from ingest.pipeline import QUARANTINE_TOPIC
from tests.adversarial._api import Api, basic

NDJSON = {"Content-Type": "application/x-ndjson"}


def _officers(api: Api) -> dict[str, str]:
    keys = api.hub.keys
    return {
        "acme": keys.create(["compliance_officer"], principal="ann", tenant="acme").token,
        "globex": keys.create(["compliance_officer"], principal="gus", tenant="globex").token,
        "default": keys.create(["compliance_officer"], principal="dee", tenant="default").token,
    }


def _publish_bad(api: Api, tenant: str, marker: str) -> int:
    """``tenant``'s publisher sends one line that is not JSON; its quarantine offset."""
    token = api.hub.keys.create(["publisher"], principal=f"pub-{tenant}", tenant=tenant).token
    body = f"not json {marker}\n".encode()
    r = api.client.post("/v1/ingest/trades", content=body, headers={**basic(token), **NDJSON})
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    return max(e["offset"] for e in _list(api, api.admin))


def _untenanted(api: Api, offset: int) -> int:
    """A copy of the quarantine record at ``offset`` without its ``ce_tenant`` header (as an
    older record may have been written); its offset."""
    last = api.hub.log.read(QUARANTINE_TOPIC, 0, offset, 1)[0]
    headers = tuple((k, v) for k, v in last.headers if k != "ce_tenant")
    meta = api.hub.log.append(
        QUARANTINE_TOPIC, [Record(last.value, last.key, headers, partition=0)]
    )
    return meta[0].offset


def _pos(api: Api, tenant: str, offset: int) -> int:
    """The position ``tenant``'s officer is given for quarantine ``offset``."""
    from hub.api.positions import codec_of

    return codec_of(api.hub).encoder(tenant, QUARANTINE_TOPIC, 0)(offset)


def _raw(api: Api, tenant: str, entries: list[dict[str, Any]]) -> list[int]:
    """The offsets of the entries ``tenant``'s officer listed (positions, decoded)."""
    from hub.api.positions import codec_of

    codec = codec_of(api.hub)
    return [codec.decode(tenant, QUARANTINE_TOPIC, 0, e["offset"]) for e in entries]


def _list(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = api.client.get("/v1/quarantine", params={"limit": 1000, **params}, headers=headers)
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()["records"]
    return records


def test_another_tenants_quarantine_is_neither_listed_nor_fetched(api: Api) -> None:
    officers = _officers(api)
    acme_at = _publish_bad(api, "acme", "acme-secret")
    globex_at = _publish_bad(api, "globex", "globex-own")
    old_at = _untenanted(api, globex_at)

    seen = {t: _raw(api, t, _list(api, basic(tok))) for t, tok in officers.items()}
    assert seen == {"acme": [acme_at], "globex": [globex_at], "default": [old_at]}

    every = {e["offset"]: e for e in _list(api, api.admin)}
    assert set(every) == {acme_at, globex_at, old_at}
    assert every[acme_at]["tenant"] == "acme" and every[globex_at]["tenant"] == "globex"
    assert every[old_at]["tenant"] == "default"

    gus = basic(officers["globex"])
    hidden = api.client.get(f"/v1/quarantine/{acme_at}", headers=gus)
    missing = api.client.get("/v1/quarantine/999999", headers=gus)
    assert hidden.status_code == missing.status_code == 404, hidden.text
    assert hidden.json()["reason"] == missing.json()["reason"]
    assert hidden.json()["message"] == missing.json()["message"].replace("999999", str(acme_at))
    assert "acme" not in hidden.text
    assert api.client.get(f"/v1/quarantine/{old_at}", headers=gus).status_code == 404

    at = _pos(api, "acme", acme_at)
    mine = api.client.get(f"/v1/quarantine/{at}", headers=basic(officers["acme"]))
    assert mine.status_code == 200 and mine.json()["tenant"] == "acme", mine.text
    admin = api.client.get(f"/v1/quarantine/{acme_at}", headers=api.admin)
    assert admin.status_code == 200 and admin.json()["tenant"] == "acme", admin.text
    at = _pos(api, "default", old_at)
    old = api.client.get(f"/v1/quarantine/{at}", headers=basic(officers["default"]))
    assert old.status_code == 200, old.text


def test_paging_skips_other_tenants_and_reaches_each_visible_entry_once(api: Api) -> None:
    officers = _officers(api)
    mine = []
    for i in range(3):
        _publish_bad(api, "acme", f"a{i}")
        mine.append(_publish_bad(api, "globex", f"g{i}"))
    gus = basic(officers["globex"])
    seen: list[int] = []
    offset = 0
    for _ in range(len(mine) + 2):
        r = api.client.get("/v1/quarantine", params={"limit": 1, "offset": offset}, headers=gus)
        page = r.json()
        if not page["records"]:
            assert page["next_offset"] == offset
            break
        seen += _raw(api, "globex", page["records"])
        assert page["next_offset"] != offset
        offset = page["next_offset"]
    assert seen == mine


def test_a_replayed_entry_keeps_its_tenant(api: Api) -> None:
    """A replay re-ingests for the tenant that first sent the record: an entry that fails again
    is quarantined again under acme, not under ``default``."""
    officers = _officers(api)
    acme_at = _publish_bad(api, "acme", "still-bad")
    r = api.client.post("/v1/quarantine/replay", json={"offsets": [acme_at]}, headers=api.admin)
    assert r.status_code == 200 and r.json()["trades"]["rejected"] == 1, r.text
    again = max(e["offset"] for e in _list(api, api.admin))
    assert again > acme_at
    assert _raw(api, "acme", _list(api, basic(officers["acme"]))) == [acme_at, again]
    assert _list(api, basic(officers["default"])) == []
    assert _list(api, basic(officers["globex"])) == []


def test_the_cli_keeps_quarantine_reads_to_the_officers_tenant(api: Api) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    officers = _officers(api)
    acme_at = _publish_bad(api, "acme", "acme-secret")
    data = str(api.hub.settings.data_dir)
    api.hub.close()  # the CLI opens the data folder as an operator's would
    api.hub.close = lambda: None  # type: ignore[method-assign]

    def cli(token: str, *args: str) -> Any:
        return CliRunner().invoke(main, ["--data-dir", data, "--key", token, "quarantine", *args])

    r = cli(officers["globex"], "list")
    assert r.exit_code == 0 and r.output == "", r.output
    r = cli(officers["globex"], "show", str(acme_at))
    assert r.exit_code == 1 and "acme-secret" not in r.output, r.output
    assert "quarantine_entry_not_found" in str(r.stderr), r.stderr
    r = cli(officers["acme"], "list")
    assert r.exit_code == 0 and r.output.startswith(f"{acme_at}\ttrades\t"), r.output
    r = cli(officers["acme"], "show", str(acme_at))
    assert r.exit_code == 0 and "acme-secret" in r.output, r.output


def test_a_quarantine_record_carrying_its_tenant_twice_belongs_to_no_tenant(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planted quarantine record with ``ce_tenant`` twice (``default`` then ``acme``; the log
    refuses to append one, a foreign Kafka producer could write it) is read as no copy, as
    everywhere (``domain.envelope``): no tenant-limited reader lists or fetches it, an admin
    sees it without a tenant, and it is not replayed under either copy."""
    officers = _officers(api)
    acme_at = _publish_bad(api, "acme", "acme-twice")
    rec = api.hub.log.read(QUARANTINE_TOPIC, 0, acme_at, 1)[0]
    twice = (("ce_tenant", b"default"), *rec.headers)
    with monkeypatch.context() as m:  # past the log's gate
        m.setattr("adapters.sqlite_log.batch.repeats_envelope", lambda *a: False)
        (meta,) = api.hub.log.append(
            QUARANTINE_TOPIC, [Record(rec.value, rec.key, twice, partition=0)]
        )
    for who in ("default", "acme", "globex"):
        seen = [e["offset"] for e in _list(api, basic(officers[who]))]
        assert meta.offset not in seen, who
        r = api.client.get(f"/v1/quarantine/{meta.offset}", headers=basic(officers[who]))
        assert r.status_code == 404, (who, r.text)
    (entry,) = [e for e in _list(api, api.admin) if e["offset"] == meta.offset]
    assert entry["tenant"] is None
    r = api.client.post("/v1/quarantine/replay", json={"offsets": [meta.offset]}, headers=api.admin)
    assert r.status_code == 422 and r.json()["reason"] == "ambiguous_tenant", r.text
