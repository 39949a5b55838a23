"""The ledger served read-only in the C2SP tlog-tiles layout (``/v1/ledger/tlog/...``): a client
that knows only the layout, the checkpoint note and the public key rebuilds the signed root
from hash tiles, proves an entry from them and reads the entries from bundles; on both the
row store and the tile store."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit.merkle import HASH_SIZE, inclusion_proof, leaf_hash, range_root, verify_inclusion
from audit.note import open_checkpoint, parse_verifier_key
from audit.tiles import TILE_HEIGHT, TILE_WIDTH, decode_bundle, tile_path
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic
from tests.service.test_ledger import make_hub, publish

N = 600  # two full level-0 tiles and a partial one


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A closed data folder per ledger store with N trades published and synced, built once per
    module: every test serves a copy of it (the tests read tiles; one build each proved nothing
    more, and a copy keeps them apart)."""
    made: dict[str, Path] = {}

    def folder(store: str) -> Path:
        if store not in made:
            data = tmp_path_factory.mktemp(f"tlog-{store}") / "data"
            hub = make_hub(data, ledger_store=store, projection_autostart=False)
            publish(hub, N)
            hub.ledger.sync(force_checkpoint=True)
            hub.close()
            made[store] = data
        return made[store]

    return folder


@pytest.fixture(params=["sqlite", "tiles"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, published: Callable[[str], Path]
) -> Iterator[tuple[Hub, TestClient]]:
    shutil.copytree(published(request.param), tmp_path / "data")
    hub = make_hub(tmp_path / "data", ledger_store=request.param, projection_autostart=False)
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    client.headers.update(
        basic(hub.keys.create(["compliance_officer"], principal="tiles-reader").token)
    )
    yield hub, client
    client.close()
    hub.close()


class TileClient:
    """A NodeReader over HTTP tiles, as a tlog-tiles client builds one (tiles of one size)."""

    def __init__(self, client: TestClient, size: int) -> None:
        self.client = client
        self.size = size
        self.fetched: dict[str, bytes] = {}

    def get(self, path: str) -> bytes:
        if path not in self.fetched:
            r = self.client.get(f"/v1/ledger/tlog/{path}")
            assert r.status_code == 200, (path, r.text)
            self.fetched[path] = r.content
        return self.fetched[path]

    def node(self, level: int, index: int) -> bytes:
        tl, depth = divmod(level, TILE_HEIGHT)
        first = index << depth
        n = first // TILE_WIDTH
        width = min(TILE_WIDTH, (self.size >> (tl * TILE_HEIGHT)) - n * TILE_WIDTH)
        data = self.get(tile_path(tl, n, width))
        nodes = data[(first % TILE_WIDTH) * HASH_SIZE : ((first % TILE_WIDTH) + (1 << depth)) * 32]
        for _ in range(depth):
            nodes = b"".join(
                hashlib.sha256(b"\x01" + nodes[i : i + 64]).digest()
                for i in range(0, len(nodes), 64)
            )
        return nodes


def test_a_tiles_client_verifies_the_signed_root_and_a_proof(
    served: tuple[Hub, TestClient],
) -> None:
    _hub, client = served
    r = client.get("/v1/ledger/tlog/checkpoint")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    key = parse_verifier_key(client.get("/v1/ledger/public-key").text.strip())
    cp, _ = open_checkpoint(r.content, [key])
    assert cp.size >= N
    tiles = TileClient(client, cp.size)
    assert range_root(tiles, 0, cp.size) == cp.root  # the root, from tiles alone
    index = 300
    proof = inclusion_proof(tiles, index, cp.size)
    entries = decode_bundle(tiles.get(tile_path(None, index // 256)))
    assert len(entries) == 256
    leaf = leaf_hash(entries[index % 256])
    verify_inclusion(leaf, index, cp.size, proof, cp.root)  # raises when it does not hold
    # every entry of the bundle is the leaf its level-0 tile holds
    level0 = tiles.get(tile_path(0, 1))
    assert [leaf_hash(e) for e in entries] == [level0[i : i + 32] for i in range(0, 8192, 32)]


def test_full_tiles_are_immutable_and_partial_ones_are_not_cached(
    served: tuple[Hub, TestClient],
) -> None:
    hub, client = served
    size = hub.ledger.store.tree_size()
    full = client.get("/v1/ledger/tlog/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 256 * 32
    assert full.headers["cache-control"] == "private, max-age=31536000, immutable"
    entries = client.get("/v1/ledger/tlog/tile/entries/000")  # the reader's cache only, as tiles
    assert entries.headers["cache-control"] == "private, max-age=31536000, immutable"
    w = size % 256
    part = client.get(f"/v1/ledger/tlog/tile/0/00{size // 256}.p/{w}")
    assert part.status_code == 200 and len(part.content) == w * 32
    assert part.headers["cache-control"] == "no-cache"
    smaller = client.get(f"/v1/ledger/tlog/tile/0/00{size // 256}.p/1")
    assert smaller.content == part.content[:32]  # a narrower partial tile is a prefix
    bundle = client.get(f"/v1/ledger/tlog/tile/entries/00{size // 256}.p/{w}")
    assert bundle.status_code == 200 and len(decode_bundle(bundle.content)) == w


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("tile/0/x001/000", 404, "tile_not_found"),  # beyond the tree
        ("tile/0/002", 404, "tile_not_found"),  # only partial so far
        ("tile/entries/002", 404, "tile_not_found"),
        ("tile/0/2", 422, "invalid_tile_path"),
        ("tile/0/000.p/0", 422, "invalid_tile_path"),
        ("tile/zz/000", 422, "invalid_tile_path"),
    ],
)
def test_bad_tile_requests_get_a_clear_4xx(
    served: tuple[Hub, TestClient], path: str, status: int, code: str
) -> None:
    _, client = served
    r = client.get(f"/v1/ledger/tlog/{path}")
    assert r.status_code == status, r.text
    assert r.json()["reason"] == code and r.json()["message"]


def test_tiles_need_ledger_read(served: tuple[Hub, TestClient]) -> None:
    hub, client = served
    r = client.get("/v1/ledger/tlog/tile/0/000", headers={"Authorization": "Basic eDp5"})
    assert r.status_code == 401
    producer = hub.keys.create(["publisher"], principal="p").token
    r = client.get("/v1/ledger/tlog/checkpoint", headers=basic(producer))
    assert r.status_code == 403
