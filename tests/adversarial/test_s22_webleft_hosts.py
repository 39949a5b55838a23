"""An optional allow-list of Host names (s22 web-left, low).

Nothing of the hub reflects ``Host`` today, but the console's and the API's same-origin checks
compare ``Origin`` with it, and a hub reached under any name (DNS rebinding: a page of
``evil.example`` whose name now resolves to the hub on the analyst's network) is one the
browser treats as that page's own origin. ``HUB_ALLOWED_HOSTS`` (off by default) names the
hosts the hub answers for (``*.example.com`` for a domain's subdomains); any other ``Host``, or
none, is answered 400 ``host_not_allowed`` naming the host and the setting, before anything
else runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.errors import ConfigError
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import basic


@pytest.fixture
def hub_on(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    settings = load_settings(
        environ={
            "HUB_PROJECTION_AUTOSTART": "false",
            "HUB_ALLOWED_HOSTS": "hub.example.com, *.corp.example, 127.0.0.1, [::1]",
        },
        data_dir=tmp_path / "d",
    )
    hub = bootstrap(settings)
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


@pytest.mark.parametrize(
    "host",
    [
        "hub.example.com",
        "HUB.example.com:8443",
        "a.corp.example",
        "x.y.corp.example:80",
        "127.0.0.1:8080",
        "[::1]:8080",
    ],
)
def test_listed_hosts_are_answered(hub_on: tuple[Hub, TestClient], host: str) -> None:
    hub, client = hub_on
    token = hub.keys.create(["admin"], principal="root").token
    r = client.get("/v1/whoami", headers={**basic(token), "host": host})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "hub.example.com.evil.example",
        "corp.example",
        "xcorp.example",
        "localhost",
        "127.0.0.2",
        "",
    ],
)
def test_other_hosts_are_refused_400_naming_the_host(
    hub_on: tuple[Hub, TestClient], host: str
) -> None:
    _, client = hub_on
    for path in ("/v1/whoami", "/health", "/ui/login"):
        r = client.get(path, headers={"host": host})
        assert r.status_code == 400, (path, r.text)
        body = r.json()
        assert body["reason"] == "host_not_allowed", body
        assert "HUB_ALLOWED_HOSTS" in body["message"] and repr(host) in body["message"], body
        if not path.startswith("/ui"):  # the API's security headers (hub.api.headers)
            assert r.headers.get("x-content-type-options") == "nosniff"


def test_two_host_headers_are_refused_even_when_one_is_listed(
    hub_on: tuple[Hub, TestClient],
) -> None:
    """uvicorn passes both on; another layer (a proxy, a log) may read the other one."""
    _, client = hub_on
    r = client.get("/health", headers=[("host", "hub.example.com"), ("host", "evil.example")])
    assert r.status_code == 400, r.text
    assert "evil.example" in r.json()["message"]


def test_off_by_default_any_host_is_answered(tmp_path: Path) -> None:
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path))
    try:
        with TestClient(create_app(hub)) as c:
            assert c.get("/health", headers={"host": "anything.example"}).status_code == 200
    finally:
        hub.close()


@pytest.mark.parametrize("bad", ["hub.example.com/x", "*", "a*.example", "http://hub", "a b"])
def test_a_malformed_entry_is_refused_at_start(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="HUB_ALLOWED_HOSTS"):
        load_settings(environ={"HUB_ALLOWED_HOSTS": bad}, data_dir=tmp_path)
