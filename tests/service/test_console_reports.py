"""The console's Reports page and Explore's signed exports over HTTP (issue 15): who may run and
read reports, the pack and its parts as downloads, verification, and refusals on the ledger."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit.note import parse_verifier_key
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.demo import load
from hub.reports import verify_pack
from hub.settings import load_settings
from projections.catalog import PROJECTIONS
from tests.service.test_console import login, page_csrf


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, TestClient]]:
    data = tmp_path_factory.mktemp("console-reports") / "data"
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    load(hub.ingest, 7)
    hub.projections.run([p.name for p in PROJECTIONS])
    client = TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def as_role(hub: Hub, client: TestClient, role: str) -> str:
    client.cookies.clear()
    token = hub.keys.create([role], principal=f"{role}-user").token
    assert login(client, token).status_code == 303
    return page_csrf(client)


def test_a_compliance_officer_runs_lists_downloads_and_verifies_a_report(
    served: tuple[Hub, TestClient],
) -> None:
    hub, client = served
    csrf = as_role(hub, client, "compliance_officer")
    page = client.get("/ui/reports")
    assert page.status_code == 200 and 'src="/ui/static/reports.js"' in page.text
    made = client.post(
        "/ui/api/reports",
        json={"kind": "compliance-daily", "day": "2026-11-24"},
        headers={"x-csrf-token": csrf},
    )
    assert made.status_code == 200, made.text
    rid = made.json()["report_id"]
    assert made.json()["summary"]["aml_hits"] > 0
    listed = client.get("/ui/api/reports").json()["reports"]
    assert listed[0]["report_id"] == rid
    pdf = client.get(f"/ui/api/reports/{rid}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"].startswith("attachment")
    pack = client.get(f"/ui/api/reports/{rid}/pack").content
    verify_pack(pack, parse_verifier_key(hub.ledger.public_key()))
    with zipfile.ZipFile(io.BytesIO(pack)) as zf:
        assert zf.read("report.pdf") == pdf.content
    checked = client.post(f"/ui/api/reports/{rid}/verify", headers={"x-csrf-token": csrf})
    assert checked.json()["ok"] is True and "OK hub-report/v1" in checked.json()["message"]


def test_a_stored_pack_changed_on_disk_fails_the_consoles_verify(
    served: tuple[Hub, TestClient],
) -> None:
    hub, client = served
    csrf = as_role(hub, client, "admin")
    rid = client.post(
        "/ui/api/reports", json={"kind": "data-quality"}, headers={"x-csrf-token": csrf}
    ).json()["report_id"]
    path = Path(hub.settings.data_dir) / "reports" / f"{rid}.zip"
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files["report.html"] = files["report.html"].replace(b"Accuracy", b"Accurate")
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    checked = client.post(f"/ui/api/reports/{rid}/verify", headers={"x-csrf-token": csrf}).json()
    assert checked == {
        "ok": False,
        "message": "report.html does not match its SHA-256 in the manifest (altered).",
    }


def test_an_analyst_may_not_run_or_read_reports_and_the_refusal_is_on_the_ledger(
    served: tuple[Hub, TestClient],
) -> None:
    hub, client = served
    csrf = as_role(hub, client, "analyst")
    assert client.get("/ui/reports").status_code == 403
    assert client.get("/ui/api/reports").status_code == 403
    r = client.post(
        "/ui/api/reports", json={"kind": "data-quality"}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 403
    flush = getattr(getattr(hub.policy, "committer", None), "flush", None)
    if callable(flush):
        flush()
    hub.ledger.sync(force_checkpoint=True)
    refused = [
        e
        for e in hub.ledger.entries(topic="hub.decisions", actor="analyst-user", with_fields=True)
        if e["action"] in ("report.read", "report.run")
    ]
    assert {e["action"] for e in refused} == {"report.read", "report.run"}
    for e in refused:
        (record,) = hub.reader.read(e["topic"], e["partition"], e["offset"], 1)
        assert record["value"]["allow"] is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "weekly"}, 422),
        ({"kind": "compliance-daily", "day": "24/11/2026"}, 422),
        ({"kind": "compliance-daily", "day": "2026-13-45"}, 422),
        ({}, 422),
    ],
)
def test_bad_report_requests_are_4xx(
    served: tuple[Hub, TestClient], body: dict[str, str], status: int
) -> None:
    hub, client = served
    csrf = as_role(hub, client, "compliance_officer")
    r = client.post("/ui/api/reports", json=body, headers={"x-csrf-token": csrf})
    assert r.status_code == status, r.text


@pytest.mark.parametrize("path", ["/ui/api/reports/nope/pdf", "/ui/api/reports/../../etc/pdf"])
def test_report_ids_are_checked(served: tuple[Hub, TestClient], path: str) -> None:
    hub, client = served
    as_role(hub, client, "compliance_officer")
    assert client.get(path).status_code in (404, 422)
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/ui/api/reports/{missing}/pdf").status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_explore_signed_export_verifies(served: tuple[Hub, TestClient], fmt: str) -> None:
    hub, client = served
    csrf = as_role(hub, client, "analyst")
    sql = "SELECT instrument, sum(volume) AS volume FROM ohlcv_1m GROUP BY instrument"
    r = client.post(
        "/ui/api/query",
        json={"sql": sql, "format": fmt, "signed": True},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    out = verify_pack(r.content, parse_verifier_key(hub.ledger.public_key()))
    assert out.startswith("OK hub-export/v1 export")
    bad = client.post(
        "/ui/api/query",
        json={"sql": sql, "format": "json", "signed": True},
        headers={"x-csrf-token": csrf},
    )
    assert bad.status_code == 422 and "csv or parquet" in bad.text
