"""A signed export MUST say under which scope its rows were read: whose tenant, which columns
masked.

``hub-export/v1`` (``POST /ui/api/query`` with ``signed``, ``hub query --signed``) signs, with
the ledger's key, the SQL, the row count and the data file's digest. The rows come from the
guarded query path: a tenant's reader gets its own tenant's rows, a reader without ``pii.read``
masked personal columns. The manifest said neither, so a tenant's analyst handed an auditor a
pack the hub itself signed as the answer to ``SELECT count() FROM payments_by_day``: the
verifier's OK line and the manifest read as the whole hub's figure. A signed report records its
``tenant_scope``; the signed export now records its scope too, and the verifier names it.
Session 17's live-surface review.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.note import parse_verifier_key
from core.ports.policy import Principal
from hub.bootstrap import Hub
from hub.reports import signed_export, verify_pack
from tests.adversarial._api import quiet_hub

SQL = "SELECT count() AS n FROM ohlcv_1m"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


def _manifest(pack: bytes) -> dict[str, object]:
    with zipfile.ZipFile(io.BytesIO(pack)) as zf:
        out: dict[str, object] = json.loads(zf.read("manifest.json"))
    return out


def test_a_tenants_signed_export_names_its_tenant_and_masks(hub: Hub) -> None:
    analyst = Principal("ann", frozenset({"analyst"}), tenant="acme")
    pack = signed_export(hub, analyst, SQL, "csv", "analytics")
    manifest = _manifest(pack)
    assert manifest.get("tenant_scope") == "acme", manifest
    assert isinstance(manifest.get("masked_columns"), list), manifest
    ok = verify_pack(pack, parse_verifier_key(hub.ledger.public_key()))
    assert "tenant 'acme'" in ok, ok


def test_an_operators_signed_export_says_every_tenant(hub: Hub) -> None:
    admin = Principal("root", frozenset({"admin"}))
    pack = signed_export(hub, admin, SQL, "parquet", "analytics")
    manifest = _manifest(pack)
    assert "tenant_scope" in manifest and manifest["tenant_scope"] is None, manifest
    ok = verify_pack(pack, parse_verifier_key(hub.ledger.public_key()))
    assert "rows of every tenant" in ok, ok
