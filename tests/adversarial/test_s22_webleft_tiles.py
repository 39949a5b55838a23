"""Ledger tiles are kept by the reader's own cache only, per key (s22 web-left, low).

The tlog-tiles routes need ``ledger.read``, yet full hash tiles answered ``Cache-Control: public,
max-age=31536000, immutable``: ``public`` lets a shared cache (a proxy, a CDN in front of the
hub) store the tile and hand it to a client that sent no key at all. Entry bundles were
``private`` but named no ``Vary``: one browser used under two keys (a hub-wide officer's, then a
tenant's) served the bundle fetched under the first to the second from its cache, although the
hub refuses that bundle to a tenant-limited key. Now every tile answer is ``private`` (full ones
still ``immutable``: their bytes never change) and every tlog answer carries ``Vary:
Authorization``, so a cache reuses it only for the same key.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.service.test_ledger_tlog import published, served  # noqa: F401  (fixtures)

FULL = "private, max-age=31536000, immutable"


def _varies_on_the_key(r: object) -> None:
    vary = r.headers.get("vary", "")  # type: ignore[attr-defined]
    assert "authorization" in [v.strip().lower() for v in vary.split(",")], vary


def test_full_hash_tiles_are_private_and_vary_on_the_key(
    served: tuple[Hub, TestClient],  # noqa: F811
) -> None:
    _, client = served
    r = client.get("/v1/ledger/tlog/tile/0/000")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == FULL
    assert "public" not in r.headers["cache-control"]
    _varies_on_the_key(r)


def test_entry_bundles_and_partial_tiles_vary_on_the_key(
    served: tuple[Hub, TestClient],  # noqa: F811
) -> None:
    hub, client = served
    r = client.get("/v1/ledger/tlog/tile/entries/000")
    assert r.status_code == 200
    assert r.headers["cache-control"] == FULL
    _varies_on_the_key(r)
    size = hub.ledger.store.tree_size()
    for path in (f"0/00{size // 256}.p/1", f"entries/00{size // 256}.p/1"):
        r = client.get(f"/v1/ledger/tlog/tile/{path}")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-cache"
        _varies_on_the_key(r)
    r = client.get("/v1/ledger/tlog/checkpoint")
    assert r.headers["cache-control"] == "no-cache"
    _varies_on_the_key(r)
