"""The lake: ``hub lake export`` writes Iceberg tables that pyiceberg and an independent engine
(ClickHouse through chDB's ``icebergLocal``) read back; a second export appends only new
records; PII never reaches the lake in plaintext."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import chdb
import pytest

from storage.lake import open_catalog
from tests.cli_keys import admin_args
from tests.lake_accounts import publish, run


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "objects"))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    return tmp_path / "hub"


def export(data: Path, *extra: str) -> dict[str, object]:
    r = run(*admin_args(data), "lake", "export", *extra)
    assert r.exit_code == 0, r.output
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_export_is_iceberg_readable_by_pyiceberg_and_clickhouse(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(data, 0, 50)
    first = export(data)
    tables = first["tables"]
    assert isinstance(tables, dict)
    assert tables["raw.accounts"] == 50
    assert tables["views.accounts__accounts_current"] == 50

    publish(data, 50, 7)
    second = export(data, "--no-views")
    assert second["tables"] == {
        "raw.accounts": 7,
        **{k: 0 for k in second["tables"] if k != "raw.accounts"},  # type: ignore[union-attr]
    }

    lake = tmp_path / "objects" / "lake"
    catalog = open_catalog(f"sqlite:///{lake / 'catalog.sqlite'}", (lake / "warehouse").as_uri())
    raw = catalog.load_table("raw.accounts").scan().to_arrow()
    assert raw.num_rows == 57
    assert len(set(zip(raw["partition"].to_pylist(), raw["offset"].to_pylist(), strict=True))) == 57
    assert not any("Secret Name" in (v or "") for v in raw["value_json"].to_pylist())
    assert all(b"Secret Name" not in v for v in raw["value"].to_pylist())  # ciphertext stays
    view = catalog.load_table("views.accounts__accounts_current").scan().to_arrow()
    assert view.num_rows == 50
    assert set(view["customer_name"].to_pylist()) == {None}  # PII columns are NULL

    location = Path(catalog.load_table("raw.accounts").location().removeprefix("file://"))
    monkeypatch.chdir(lake)  # chDB reads files below its working folder only
    got = chdb.query(
        "SELECT count(), uniqExact(partition, offset) FROM "
        f"icebergLocal('{location.relative_to(lake)}')",
        "CSV",
    )
    assert str(got).strip() == "57,57"


def test_export_to_s3(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.contract.test_objectstore_s3 import s3_settings

    s3 = s3_settings()
    prefix = f"lake-{uuid.uuid4().hex[:12]}"
    for name, value in {
        "HUB_OBJECT_STORE": "s3",
        "HUB_S3_ENDPOINT": s3["endpoint"],
        "HUB_S3_ACCESS_KEY": s3["access_key"],
        "HUB_S3_SECRET_KEY": s3["secret_key"],
        "HUB_S3_BUCKET": "hub-lake-tests",
        "HUB_S3_PREFIX": prefix,
    }.items():
        monkeypatch.setenv(name, value)
    publish(data, 0, 12)
    out = export(data, "--topic", "accounts", "--no-views")
    assert out["warehouse"] == f"s3://hub-lake-tests/{prefix}/lake"
    catalog = open_catalog(
        f"sqlite:///{data / 'lake' / 'catalog.sqlite'}",
        str(out["warehouse"]),
        {
            "s3.endpoint": f"http://{s3['endpoint']}",
            "s3.access-key-id": s3["access_key"],
            "s3.secret-access-key": s3["secret_key"],
            "s3.region": "us-east-1",
        },
    )
    assert catalog.load_table("raw.accounts").scan().to_arrow().num_rows == 12
