"""``/docs`` ran third-party script in the hub's origin (s17 live red team, open item).

It loaded ``swagger-ui-dist@5`` (a floating major) from cdn.jsdelivr.net without Subresource
Integrity, in the origin where the browser keeps the Basic credentials it prompted for: whoever
changed the file on the CDN (or published the next 5.x) read them. Now the page is off unless
``HUB_API_DOCS=true`` (``/openapi.json`` serves the same document), and when on it pins one
version and checks each asset's hash (the browser refuses a changed file).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.app import SWAGGER_CSS_SRI, SWAGGER_JS_SRI
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import Api, serve_hub


def _api(tmp_path: Path, docs: str | None) -> Iterator[Api]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false"} | ({"HUB_API_DOCS": docs} if docs else {})
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "d"))
    yield from serve_hub(hub)


@pytest.fixture
def default_api(tmp_path: Path) -> Iterator[Api]:
    yield from _api(tmp_path, None)


@pytest.fixture
def docs_api(tmp_path: Path) -> Iterator[Api]:
    yield from _api(tmp_path, "true")


def _admin(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.hub.keys.create(['admin'], owner='ops').token}"}


def test_the_docs_page_is_off_by_default_and_says_how_to_turn_it_on(default_api: Api) -> None:
    assert default_api.client.get("/docs").status_code == 401  # credentials first, as before
    r = default_api.client.get("/docs", headers=_admin(default_api))
    assert r.status_code == 404 and "HUB_API_DOCS=true" in r.text, r.text
    assert "<script" not in r.text
    assert default_api.client.get("/openapi.json", headers=_admin(default_api)).status_code == 200


def test_when_on_every_external_asset_is_pinned_and_integrity_checked(docs_api: Api) -> None:
    r = docs_api.client.get("/docs", headers=_admin(docs_api))
    assert r.status_code == 200, r.text
    tags = re.findall(r"<(?:script|link)\b[^>]*>", r.text)
    external = [t for t in tags if re.search(r'(?:src|href)="https?://', t)]
    assert len(external) == 2, tags  # the bundle and its stylesheet, nothing else from outside
    for tag in external:
        url = re.search(r'(?:src|href)="([^"]+)"', tag)
        assert url is not None and "@5.35.0/" in url.group(1), tag  # one exact version
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert 'crossorigin="anonymous"' in tag, tag
    assert {SWAGGER_JS_SRI, SWAGGER_CSS_SRI} <= set(re.findall(r'integrity="([^"]+)"', r.text))


def test_the_pinned_hashes_are_well_formed_and_distinct() -> None:
    for sri in (SWAGGER_JS_SRI, SWAGGER_CSS_SRI):
        algo, digest = sri.split("-", 1)
        assert algo == "sha384" and len(base64.b64decode(digest)) == hashlib.sha384().digest_size
    assert SWAGGER_JS_SRI != SWAGGER_CSS_SRI
