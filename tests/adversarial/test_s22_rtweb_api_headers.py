"""The API's answers carry tenant data: no cache keeps them, no browser sniffs or frames them
(s22, low).

The console's gate sent ``Cache-Control: no-store``, ``nosniff`` and no framing on every console
answer; the API sent none of them. A browser that read ``/v1/...`` with the Basic credentials it
holds (the docs page, a link) kept the tenant's JSON in its disk cache (no ``no-store``: stored,
revalidated later), the docs page (``HUB_API_DOCS``, the admin's key in the browser) could be
framed by any site and its buttons clicked through a decoy (clickjacking), and error answers
that echo the path (``GET /v1/<script>...``) were sniffable. Now every answer outside the console
carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` with
``Content-Security-Policy: frame-ancestors 'none'``, and ``Cache-Control: no-store`` unless the
route chose its own (the tlog-tiles routes' immutable tiles and ``no-cache`` checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import Api, basic

FRAME = "frame-ancestors 'none'"


def _guarded(r: object, cache: str = "no-store") -> None:
    headers = r.headers  # type: ignore[attr-defined]
    assert headers.get("x-content-type-options") == "nosniff", dict(headers)
    assert headers.get("x-frame-options") == "DENY", dict(headers)
    assert FRAME in headers.get("content-security-policy", ""), dict(headers)
    assert headers.get_list("cache-control") == [cache], dict(headers)


@pytest.mark.parametrize(
    "path", ["/v1/topics", "/v1/whoami", "/subjects", "/v1/ledger/checkpoints", "/openapi.json"]
)
def test_data_answers_are_not_cached_sniffed_or_framed(shared_api: Api, path: str) -> None:
    r = shared_api.client.get(path, headers=shared_api.admin)
    assert r.status_code == 200, r.text
    _guarded(r)


def test_errors_and_refusals_too(shared_api: Api) -> None:
    _guarded(shared_api.client.get("/v1/topics"))  # 401, no key
    r = shared_api.client.get("/v1/%3Cscript%3E", headers=shared_api.admin)  # echoes the path
    assert r.status_code == 404
    _guarded(r)
    r = shared_api.client.post(
        "/v1/ingest/quotes", content=b"{", headers={**shared_api.admin, "origin": "http://x"}
    )
    assert r.status_code == 403
    _guarded(r)


def test_schema_by_id_fast_path_too(shared_api: Api) -> None:
    """The registry's lean reads answer before FastAPI (hub.api.registry_fast)."""
    c, admin = shared_api.client, shared_api.admin
    ids = c.get("/subjects/quotes-value/versions/latest", headers=admin).json()
    r = c.get(f"/schemas/ids/{ids['id']}", headers=admin)
    assert r.status_code == 200, r.text
    _guarded(r)


def test_the_tile_routes_keep_their_own_caching(shared_api: Api) -> None:
    r = shared_api.client.get("/v1/ledger/tlog/checkpoint", headers=shared_api.admin)
    assert r.status_code == 200, r.text
    _guarded(r, "no-cache")
    size = int(r.text.splitlines()[1])
    assert size >= 1
    r = shared_api.client.get(
        f"/v1/ledger/tlog/tile/0/000.p/{min(size, 255)}", headers=shared_api.admin
    )
    assert r.status_code == 200, r.text
    _guarded(r, "no-cache")


def test_the_docs_page_cannot_be_framed(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_API_DOCS": "true"},
        data_dir=tmp_path / "data",
    )
    hub = bootstrap(settings)
    try:
        token = hub.keys.create(["admin"], principal="root").token
        with TestClient(create_app(hub)) as c:
            r = c.get("/docs", headers=basic(token))
            assert r.status_code == 200 and "swagger" in r.text.lower(), r.text
            _guarded(r)
    finally:
        hub.close()


def test_the_console_keeps_one_set_of_headers(shared_api: Api) -> None:
    r = shared_api.client.get("/ui/login")
    assert r.status_code == 200
    assert r.headers.get_list("x-frame-options") == ["DENY"]
    assert r.headers.get_list("cache-control") == ["no-store"]
    assert len(r.headers.get_list("content-security-policy")) == 1
    assert "script-src 'self'" in r.headers["content-security-policy"]
