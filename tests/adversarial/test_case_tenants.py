"""Investigation cases across tenants: a case belongs to the tenant of the person who opened it.
A compliance officer of another tenant (no ``tenant.all``, no grant of that tenant) MUST NOT
list it, read it or close it, over HTTP, in the console or on the CLI; the refusal is the
policy's tenant isolation, asked about the case's own tenant."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from hub.cli import main
from tests.adversarial._api import Api, acme_case, basic
from tests.adversarial.test_console_keys import as_

_two_officers = acme_case


def test_another_tenants_officer_cannot_list_read_or_close_a_case(api: Api) -> None:
    case_id, acme, globex = _two_officers(api)
    listed = api.client.get("/v1/cases", headers=basic(globex))
    assert listed.status_code == 200, listed.text
    assert listed.json()["cases"] == []
    # as a missing case: a 403 naming acme told globex whose case the id was (session 18)
    missing = api.client.get("/v1/cases/no-such-case", headers=basic(globex))
    r = api.client.get(f"/v1/cases/{case_id}", headers=basic(globex))
    assert r.status_code == missing.status_code == 404, r.text
    assert r.json()["message"] == missing.json()["message"].replace("no-such-case", case_id)
    assert "acme" not in r.text and "ann" not in r.text
    r = api.client.post(f"/v1/cases/{case_id}/close", json={"reason": "x"}, headers=basic(globex))
    assert r.status_code == 404 and "acme" not in r.text, r.text
    # acme's officer and an admin (tenant.all) still see it; it is still open
    mine = api.client.get("/v1/cases", headers=basic(acme)).json()["cases"]
    assert [c["case_id"] for c in mine] == [case_id] and mine[0]["status"] == "open"
    every = api.client.get("/v1/cases", headers=api.admin).json()["cases"]
    assert [c["case_id"] for c in every] == [case_id]
    assert api.client.get(f"/v1/cases/{case_id}", headers=basic(acme)).status_code == 200


def test_the_console_keeps_cases_to_the_officers_tenant(api: Api) -> None:
    case_id, _, globex = _two_officers(api)
    headers = as_(api.client, globex, "/ui/ledger")
    listed = api.client.get("/ui/api/cases")
    assert listed.status_code == 200 and listed.json()["cases"] == [], listed.text
    r = api.client.post(f"/ui/api/cases/{case_id}/close", json={"reason": "x"}, headers=headers)
    assert r.status_code == 404 and "acme" not in r.text, r.text
    api.client.cookies.clear()


def test_the_cli_keeps_cases_to_the_officers_tenant(api: Api) -> None:
    case_id, acme, globex = _two_officers(api)
    data = str(api.hub.settings.data_dir)
    api.hub.close()  # the CLI opens the data folder as an operator's would
    api.hub.close = lambda: None  # type: ignore[method-assign]

    def cli(token: str, *args: str) -> Any:
        return CliRunner().invoke(main, ["--data-dir", data, "--key", token, "case", *args])

    r = cli(globex, "list")
    assert r.exit_code == 0 and case_id not in r.output, r.output
    # as a missing case, word for word, as the API answers: no tenant named, the id unconfirmed
    missing = cli(globex, "close", "no-such-case", "--reason", "x")
    r = cli(globex, "close", case_id, "--reason", "x")
    assert r.exit_code == missing.exit_code == 1, r.output
    assert r.stderr == missing.stderr.replace("no-such-case", case_id), r.stderr
    assert "acme" not in r.output and "ann" not in r.output and "tenant" not in r.output
    r = cli(acme, "list", "--status", "open")
    assert r.exit_code == 0 and case_id in r.output, r.output
