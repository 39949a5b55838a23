"""A 401 MUST NOT echo a credential back: error bodies end up in client logs, CI output and
support tickets.

``Authorization: hk_ID:SECRET`` (the scheme forgotten, a common slip when pasting a key) was
answered ``Unsupported Authorization scheme 'hk_id:secret'``: the key id and the secret, only
lower-cased, in the response body, which HTTP clients print and log on failure. Session 17's
live-surface review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial._api import Api, serve_hub


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    hub = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    yield from serve_hub(hub)  # closes the hub after


@pytest.mark.parametrize("shape", ["{token}", "{token} extra", "Token{token}", "x{token}"])
def test_a_key_without_its_scheme_is_not_echoed(api: Api, shape: str) -> None:
    token = api.hub.keys.create(["analyst"], owner="ann").token
    secret = token.split(":", 1)[1]
    r = api.client.get("/v1/topics", headers={"Authorization": shape.format(token=token)})
    assert r.status_code == 401, r.text
    body = r.text.lower()
    assert secret.lower()[:12] not in body, r.text
    assert "bearer" in body and "basic" in body  # it still says what to send


def test_a_plain_unknown_scheme_is_still_named(api: Api) -> None:
    r = api.client.get("/v1/topics", headers={"Authorization": "Digest abc"})
    assert r.status_code == 401 and "'digest'" in r.text, r.text
