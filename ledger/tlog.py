"""The ledger published in the C2SP tlog-tiles layout (``audit.tiles``), from any LedgerStore.

Hash tile ``(L, N)`` is the port's chunk ``(8 * L, N)``: every store keeps those nodes (the tile
store keeps nothing else), so the layout does not depend on the adapter. Entry bundle N holds the
leaf inputs (``audit.leaf``) of leaves ``[N * 256, N * 256 + W)``, rebuilt from the event log
records the leaves point at and checked against the stored leaf hashes before they are served;
a record no longer in the log (retention) makes its bundle unavailable (410), while its hash
tiles stay servable and every proof keeps working.
"""

from __future__ import annotations

from audit.merkle import HASH_SIZE, leaf_hash
from audit.tiles import TILE_HEIGHT, TILE_WIDTH, TilePath, encode_bundle, parse_tile_path
from core.errors import Forbidden, HubError, InvalidInput, NotFound
from ledger.leaves import LeafEncoder
from ledger.service import Ledger, check_row, in_scope


class TileNotFound(NotFound):
    code = "tile_not_found"


class BundleGone(HubError):
    code = "bundle_gone"
    http_status = 410


MAX_LEAVES = 1 << 63  # leaf indices are signed 64-bit integers in every store


def parse(path: str) -> TilePath:
    """A tile path (the part after ``tile/``), or InvalidInput naming what is wrong;
    TileNotFound for a well-formed tile that starts past any tree a store can hold (its first
    leaf at 2^63 or more: ``x999/x999/.../999`` reached the store as an integer SQLite cannot
    hold, a 500)."""
    try:
        tile = parse_tile_path(path)
    except ValueError as exc:
        raise InvalidInput(
            f"{exc} Tile paths are tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] "
            "(c2sp.org/tlog-tiles).",
            code="invalid_tile_path",
        ) from exc
    if tile.index * TILE_WIDTH ** ((tile.level or 0) + 1) >= MAX_LEAVES:
        raise TileNotFound(
            f"Tile {path[:120]!r} starts past leaf 2^63, beyond any tree this ledger can hold; "
            "ask for a tile the latest checkpoint covers (GET /v1/ledger/tlog/checkpoint)."
        )
    return tile


def hash_tile(ledger: Ledger, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
    """The first ``width`` hashes of tile ``(level, index)``; TileNotFound if not that wide."""
    data = ledger.store.read_chunks([(level * TILE_HEIGHT, index)]).get(
        (level * TILE_HEIGHT, index), b""
    )
    if len(data) < width * HASH_SIZE:
        have = len(data) // HASH_SIZE
        raise TileNotFound(
            f"Tile {level}/{index} holds {have} of the {width} hashes asked for; ask for a "
            "width the latest checkpoint covers (GET /v1/ledger/tlog/checkpoint)."
        )
    return data[: width * HASH_SIZE]


def entry_bundle(
    ledger: Ledger, index: int, width: int = TILE_WIDTH, *, tenant_scope: str | None = None
) -> bytes:
    """Entry bundle ``index`` of ``width`` entries (the leaf inputs), each checked. The leaf
    inputs carry every envelope header, so a reader limited to ``tenant_scope`` gets a bundle
    only when each of its entries is that tenant's or has none (a bundle is served whole);
    otherwise ``Forbidden`` naming ``tenant.all``. Hash tiles stay served to every reader."""
    first = index * TILE_WIDTH
    rows = next(iter(ledger.store.iter_leaves(start=first, batch=width)), [])
    if len(rows) < width or rows[0][0] != first:
        raise TileNotFound(
            f"Entry bundle {index} holds {len(rows)} of the {width} entries asked for; ask for "
            "a width the latest checkpoint covers (GET /v1/ledger/tlog/checkpoint)."
        )
    if not all(in_scope(row, tenant_scope) for row in rows):
        raise Forbidden(
            f"Access denied: entry bundle {index} holds entries of tenants other than "
            f"{tenant_scope!r} (their envelope headers); reading it needs tenant.all. Hash "
            "tiles, checkpoints and proofs are served to every ledger reader."
        )
    encoder = LeafEncoder()
    inputs: list[bytes] = []
    for row in rows:
        record = ledger.record_at(row[1], row[2], row[3])
        if record is None:
            raise BundleGone(
                f"Entry {row[0]} ({row[1]}/{row[2]} offset {row[3]}) is no longer in the event "
                f"log (retention), so entry bundle {index} cannot be served; its hash tiles and "
                "proofs still are."
            )
        check_row(row, record)  # the tenant the scope check read is the record's own
        data = encoder.leaf_input(record)
        if leaf_hash(data) != row[9]:
            raise HubError(
                f"Entry {row[0]} ({row[1]}/{row[2]} offset {row[3]}) does not hash to its leaf; "
                "the log or the ledger was altered: run `hub ledger verify --full`.",
                code="ledger_mismatch",
            )
        inputs.append(data)
    return encode_bundle(inputs)
