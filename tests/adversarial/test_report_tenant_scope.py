"""Reports keep to the reader's tenant. A compliance officer of tenant globex (no ``tenant.all``:
its ``report.run``/``report.read`` decisions carry ``row_filter {"tenant": "globex"}``) MUST
NOT get acme's records from a report: a report it runs is cut to globex (its manifest says
``tenant_scope: "globex"``) and holds no acme case, key or decision; it lists and reads only
reports cut to globex (a hub-wide report is refused with 403 naming ``tenant.all``, acme's
answers 404 as a missing report), over HTTP, in the console and on the CLI; its data-quality
report withholds the ingest and quarantine counts, which cover every tenant. Admins still run
and read every report, and every report still verifies offline."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from audit.note import parse_verifier_key
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.reports import verify_pack
from hub.settings import load_settings
from tests.adversarial._api import Api, acme_case, basic, serve_hub
from tests.adversarial.test_console_keys import as_

TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from serve_hub(
        bootstrap(
            load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "data")
        )
    )


def _officers(api: Api) -> tuple[str, str]:
    """acme's officer ann opens a case and is refused a key (a denied decision of acme's);
    the tokens of acme's and globex's compliance officers."""
    _, acme, globex = acme_case(api)
    r = api.client.post("/v1/keys", json={"roles": ["admin"]}, headers=basic(acme))
    assert r.status_code == 403, r.text
    return acme, globex


def _run(api: Api, headers: dict[str, str], kind: str) -> Any:
    body = {"kind": kind} if kind == "data-quality" else {"kind": kind, "day": TODAY}
    return api.client.post("/v1/reports", json=body, headers=headers)


def _pack(api: Api, headers: dict[str, str], report_id: str) -> tuple[dict[str, Any], str]:
    r = api.client.get(f"/v1/reports/{report_id}", headers=headers)
    assert r.status_code == 200, r.text
    trusted = parse_verifier_key(api.hub.ledger.public_key())
    verify_pack(r.content, trusted)  # still signed and whole
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return json.loads(zf.read("manifest.json")), zf.read("data.json").decode()


def test_an_officers_access_review_holds_only_its_tenants_keys_and_decisions(api: Api) -> None:
    _, globex = _officers(api)
    r = _run(api, basic(globex), "access-review")
    assert r.status_code == 201, r.text
    manifest, data = _pack(api, basic(globex), r.json()["report_id"])
    assert manifest["tenant_scope"] == "globex"
    rows = json.loads(data)
    assert {k["owner"] for k in rows["keys"]["rows"]} == {"gus"}, rows["keys"]
    assert "ann" not in data and "acme" not in data and "root" not in data
    # only gus's own denials (its tenant.all probe, recorded as the views' is)
    assert {d["principal"] for d in rows["denied"]["rows"]} <= {"gus"}
    # the admin's review still covers every tenant
    r = _run(api, api.admin, "access-review")
    manifest, data = _pack(api, api.admin, r.json()["report_id"])
    assert manifest["tenant_scope"] is None
    assert "ann" in data and "gus" in data
    denied = json.loads(data)["denied"]["rows"]
    assert ("ann", "keys.create") in [(d["principal"], d["action"]) for d in denied]


def test_an_officers_compliance_report_leaves_out_another_tenants_cases(api: Api) -> None:
    acme, globex = _officers(api)
    mine = _run(api, basic(globex), "compliance-daily")
    assert mine.status_code == 201, mine.text
    assert mine.json()["summary"]["cases"] == 0
    manifest, data = _pack(api, basic(globex), mine.json()["report_id"])
    assert manifest["tenant_scope"] == "globex" and "SAR 17" not in data
    theirs = _run(api, basic(acme), "compliance-daily")
    assert theirs.json()["summary"]["cases"] == 1
    assert "SAR 17" in _pack(api, basic(acme), theirs.json()["report_id"])[1]


def test_reports_of_another_scope_are_not_listed_or_read(api: Api) -> None:
    acme, globex = _officers(api)
    wide = _run(api, api.admin, "access-review").json()["report_id"]
    acmes = _run(api, basic(acme), "access-review").json()["report_id"]
    own = _run(api, basic(globex), "access-review").json()["report_id"]
    r = api.client.get(f"/v1/reports/{wide}", headers=basic(globex))
    assert r.status_code == 403 and "tenant.all" in r.text, r.text
    hidden = api.client.get(f"/v1/reports/{acmes}", headers=basic(globex))
    missing = api.client.get(
        "/v1/reports/00000000-0000-0000-0000-000000000000", headers=basic(globex)
    )
    assert hidden.status_code == missing.status_code == 404, hidden.text
    assert hidden.json()["message"].replace(acmes, "X") == missing.json()["message"].replace(
        "00000000-0000-0000-0000-000000000000", "X"
    )
    assert api.client.get(f"/v1/reports/{own}", headers=basic(globex)).status_code == 200
    assert api.client.get(f"/v1/reports/{acmes}", headers=api.admin).status_code == 200
    # the console lists and serves only globex's
    csrf = as_(api.client, globex, "/ui/reports")
    listed = api.client.get("/ui/api/reports").json()["reports"]
    assert [x["report_id"] for x in listed] == [own]
    for rid in (wide, acmes):
        assert api.client.get(f"/ui/api/reports/{rid}/html").status_code in (403, 404)
        r = api.client.post(f"/ui/api/reports/{rid}/verify", headers=csrf)
        assert r.status_code in (403, 404), r.text
    assert api.client.get(f"/ui/api/reports/{own}/pdf").status_code == 200
    r = api.client.post(f"/ui/api/reports/{own}/verify", headers=csrf)
    assert r.status_code == 200 and r.json()["ok"], r.text


def test_an_officers_data_quality_report_withholds_every_tenants_counts(api: Api) -> None:
    acme, globex = _officers(api)
    api.client.post(  # acme's own data (whatever the answer, no count of it may show)
        "/v1/events/payments.raw",
        json={"account_id": "ACC-1", "amount": "12.00", "currency": "EUR"},
        headers=basic(acme),
    )
    wide = _run(api, api.admin, "data-quality")
    assert wide.status_code == 201, wide.text
    mine = _run(api, basic(globex), "data-quality")
    assert mine.status_code == 201, mine.text
    assert mine.json()["summary"]["accepted"] is None
    manifest, data = _pack(api, basic(globex), mine.json()["report_id"])
    assert manifest["tenant_scope"] == "globex"
    rows = json.loads(data)
    assert rows["ingest_by_topic"]["rows"] == rows["quarantine_by_rule"]["rows"] == []
    assert "tenant.all" in manifest["queries"][0]["sql"]
    assert "acme" not in data


def test_the_cli_lists_and_shows_only_the_officers_reports(api: Api) -> None:
    acme, globex = _officers(api)
    wide = _run(api, api.admin, "access-review").json()["report_id"]
    acmes = _run(api, basic(acme), "access-review").json()["report_id"]
    data = str(api.hub.settings.data_dir)
    api.hub.close()  # the CLI opens the data folder as an operator's would
    api.hub.close = lambda: None  # type: ignore[method-assign]

    def cli(token: str, *args: str) -> Any:
        return CliRunner().invoke(main, ["--data-dir", data, "--key", token, "report", *args])

    r = cli(globex, "run", "access-review", "--day", TODAY)
    assert r.exit_code == 0, r.output
    r = cli(globex, "list")
    assert r.exit_code == 0 and wide not in r.output and acmes not in r.output, r.output
    assert r.output.count("access-review") == 1
    r = cli(globex, "show", wide)
    assert r.exit_code == 1 and "tenant.all" in str(r.stderr), r.output
    r = cli(globex, "show", acmes)
    assert r.exit_code == 1 and "No report" in str(r.stderr), r.output
    assert cli(acme, "show", acmes).exit_code == 0
