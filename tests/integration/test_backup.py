"""Backup, restore and the DR drill end to end, through the CLI, on the local object folder and
(one round trip) on the S3 server infra/s3.sh runs.

What must hold: a restore gives the same ledger root and the same projection digests as the
original; one changed byte in any backup object fails the restore naming the object (and
leaves no data folder behind); a wrong KEK, a KEK beside the data and a non-empty target are
refused; an erasure made after the backup is re-applied on restore; a second backup uploads
only what changed; the drill prints measured RTO and RPO.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.publish import OutgoingEvent
from projections.catalog import PROJECTIONS
from tests.cli_keys import admin_args, admin_key_file


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data folder, an object folder and a KEK apart from both."""
    return make_env(tmp_path, monkeypatch)


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {
        "data": tmp_path / "site-a" / "hub",
        "objects": tmp_path / "store",
        "kek": tmp_path / "vault" / "backup.kek",
        "restored": tmp_path / "site-b" / "hub",
    }
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(paths["objects"]))
    monkeypatch.setenv("HUB_BACKUP_KEK_FILE", str(paths["kek"]))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    r = CliRunner().invoke(main, ["backup", "kek", str(paths["kek"])])
    assert r.exit_code == 0, r.output
    return paths


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def open_hub(data: Path) -> Hub:
    return bootstrap(load_settings(data_dir=data))


def restore_args(env: dict[str, Path], *extra: str) -> list[str]:
    # The credential is the backed-up hub's admin key (kept outside the restored folder here).
    key = env["data"].parent / "admin.key.copy"
    if not key.exists():
        key.write_text(admin_key_file(env["data"]).read_text())
    return ["--data-dir", str(env["restored"]), "--key-file", str(key), "backup", "restore", *extra]


def account(account_id: str, name: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": account_id,
            "customer_name": name,
            "email": f"{account_id.lower()}@example.org",
            "date_of_birth": "1980-02-03",
            "country": "GB",
            "kyc_level": "STANDARD",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": "2026-11-25T10:00:00Z",
        },
    )


def publish_accounts(data: Path, ids: list[str]) -> None:
    h = open_hub(data)
    try:
        h.publisher.publish("accounts", [account(a, f"Name {a}") for a in ids], producer="test")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()


def ledger_root(data: Path, size: int | None = None) -> tuple[int, str]:
    h = open_hub(data)
    try:
        n = h.ledger.store.tree_size() if size is None else size
        return n, h.ledger.store.root(n).hex()
    finally:
        h.close()


def backup_create(env: dict[str, Path]) -> dict[str, Any]:
    r = run(*admin_args(env["data"]), "backup", "create")
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


# -- the demo round trip -----------------------------------------------------------------------


def test_restore_of_the_demo_gives_the_same_ledger_root_and_projection_digests(
    env: dict[str, Path],
) -> None:
    data = env["data"]
    r = run(*admin_args(data), "demo", "load")
    assert r.exit_code == 0, r.output
    names = [p.name for p in PROJECTIONS]
    h = open_hub(data)
    try:
        h.projections.run(names)
        before = {n: h.projections.digest(n, save=False) for n in names}
    finally:
        h.close()
    made = backup_create(env)
    size, root = ledger_root(data, made["ledger_size"])
    assert made["ledger_root"] == root and made["records"] > 10_000

    r = run(*restore_args(env))
    assert r.exit_code == 0, r.output
    restored = json.loads(r.stdout)
    assert restored["ledger"]["root"] == root and restored["ledger"]["verified"]

    h = open_hub(env["restored"])
    try:  # the restore ran the full verify; `hub ledger verify` below runs it once more
        assert h.ledger.store.root(size).hex() == root
        h.projections.run(names)
        after = {n: h.projections.digest(n, save=False) for n in names}
    finally:
        h.close()
    assert after == before
    r = run(*admin_args(env["restored"]), "ledger", "verify", "--full")
    assert r.exit_code == 0, r.output


# -- refusals ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backed_up_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two accounts published, backed up and the backup verified, once per module: each refusal
    test below gets a copy of the folders (data, objects, KEK), so none sees another's damage."""
    root = tmp_path_factory.mktemp("backed-up")
    with pytest.MonkeyPatch.context() as mp:
        env = make_env(root, mp)
        publish_accounts(env["data"], ["ACC-9001", "ACC-9002"])
        made = backup_create(env)
        r = run(*admin_args(env["data"]), "backup", "verify", made["id"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"] is True
    return root, made


@pytest.fixture
def backed_up(
    env: dict[str, Path], backed_up_once: tuple[Path, dict[str, Any]], tmp_path: Path
) -> dict[str, Any]:
    root, made = backed_up_once
    for path in (env["data"].parent, env["objects"], env["kek"].parent):  # as make_env laid out
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(root / path.relative_to(tmp_path), path)
    return made


def test_one_changed_byte_fails_the_restore_naming_the_object(
    env: dict[str, Path], backed_up: dict[str, Any]
) -> None:
    manifest = json.loads(run(*admin_args(env["data"]), "backup", "show", backed_up["id"]).stdout)
    log_entry = next(f for f in manifest["files"] if f["path"] == "log.sqlite")
    sha = log_entry["chunks"][0]
    key = f"backup-chunks/{sha[:2]}/{sha}"
    path = env["objects"] / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))

    r = run(*admin_args(env["data"]), "backup", "verify")
    assert r.exit_code == 1 and key in r.stderr
    r = run(*restore_args(env))
    assert r.exit_code == 1
    assert key in r.stderr and "backup_corrupt" in r.stderr
    assert not env["restored"].exists()
    assert not list(env["restored"].parent.glob(".*restoring*"))


def test_a_changed_manifest_fails_its_signature(
    env: dict[str, Path], backed_up: dict[str, Any]
) -> None:
    path = env["objects"] / "backups" / backed_up["id"] / "manifest.json"
    text = path.read_text().replace(backed_up["ledger_root"], "00" * 32)
    path.chmod(0o644)
    path.write_text(text)
    r = run(*restore_args(env))
    assert r.exit_code == 1
    assert f"backups/{backed_up['id']}/manifest.json" in r.stderr


def test_a_wrong_kek_is_refused(
    env: dict[str, Path], backed_up: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere" / "other.kek"
    assert run("backup", "kek", str(other)).exit_code == 0
    r = run(*restore_args(env, "--kek-file", str(other)))
    assert r.exit_code == 1
    assert "restore_refused" in r.stderr and "KEK" in r.stderr
    assert not env["restored"].exists()


def test_a_kek_inside_the_data_folder_is_refused(env: dict[str, Path]) -> None:
    inside = env["data"] / "kek.b64"
    assert run("backup", "kek", str(inside)).exit_code == 0
    r = run(*admin_args(env["data"]), "backup", "create", "--kek-file", str(inside))
    assert r.exit_code == 1
    assert "beside what it protects" in r.stderr


def test_a_non_empty_target_is_refused(env: dict[str, Path], backed_up: dict[str, Any]) -> None:
    env["restored"].mkdir(parents=True)
    (env["restored"] / "precious.txt").write_text("keep me")
    r = run(*restore_args(env))
    assert r.exit_code == 1 and "not empty" in r.stderr
    assert (env["restored"] / "precious.txt").read_text() == "keep me"


def test_restore_needs_a_principal_allowed_to_restore(
    env: dict[str, Path], backed_up: dict[str, Any]
) -> None:
    h = open_hub(env["data"])
    try:
        analyst = h.keys.create(["analyst"], owner="ann").token
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    backup_create(env)  # holds ann's key
    r = run("--data-dir", str(env["restored"]), "--key", analyst, "backup", "restore")
    assert r.exit_code == 1 and "denied" in r.stderr.lower()
    assert not env["restored"].exists()


# -- erasures after the backup -------------------------------------------------------------------


def test_an_erasure_after_the_backup_is_reapplied_on_restore(env: dict[str, Path]) -> None:
    publish_accounts(env["data"], ["ACC-7001", "ACC-7002"])
    backup_create(env)
    r = run(*admin_args(env["data"]), "erase", "ACC-7001", "--reason", "DSR-42")
    assert r.exit_code == 0, r.output

    r = run(*restore_args(env))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["erasures_reapplied"] == ["ACC-7001"]
    h = open_hub(env["restored"])
    try:
        keys = h.keystore.for_tenant("default")  # s18: keys per tenant and subject
        assert not keys.exists("ACC-7001")
        assert keys.exists("ACC-7002")
        names = {
            e["value"]["account_id"]: e["value"]["customer_name"]
            for p in range(h.log.topic("accounts").partitions)
            for e in h.reader.read("accounts", p, 0, 10_000)
        }
        assert names["ACC-7001"] == "[erased]"
        assert names["ACC-7002"] == "Name ACC-7002"
        entries = h.ledger.entries(action="subject.erase")
        assert any("ACC-7001" in json.dumps(e, default=str) for e in entries)
    finally:
        h.close()


# -- incremental, point in time, list ------------------------------------------------------------


def test_a_second_backup_uploads_only_what_changed(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_BACKUP_CHUNK_KIB", "64")
    for start in range(1000, 5000, 1000):
        publish_accounts(env["data"], [f"ACC-{i:04d}" for i in range(start, start + 1000)])
    first = backup_create(env)
    publish_accounts(env["data"], ["ACC-0500"])
    second = backup_create(env)
    assert second["parent"] == first["id"]
    assert second["stats"]["uploaded_bytes"] < second["bytes"] / 2
    assert second["stats"]["reused_bytes"] > 0
    listed = json.loads(run(*admin_args(env["data"]), "backup", "list").stdout)
    assert [b["id"] for b in listed] == [first["id"], second["id"]]

    # point in time: the newest backup at or below the first's ledger size is the first
    r = run(*restore_args(env, "--at-size", str(first["ledger_size"])))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["backup"] == first["id"]


def test_the_dr_drill_prints_rto_and_rpo(env: dict[str, Path]) -> None:
    publish_accounts(env["data"], ["ACC-8001"])
    backup_create(env)
    publish_accounts(env["data"], ["ACC-8002", "ACC-8003"])
    r = run(*admin_args(env["data"]), "dr", "drill")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["rto_s"] > 0 and report["rpo_s"] > 0
    assert report["records_lost"] >= 2  # the two accounts (and their audit records) after it
    assert report["ledger_root_matches_live"] and report["ledger_verified"]
    assert "RTO" in r.stderr and "RPO" in r.stderr


# -- the same on S3 ------------------------------------------------------------------------------


@pytest.fixture
def s3_env(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    from tests.contract.test_objectstore_s3 import s3_settings

    s3 = s3_settings()
    monkeypatch.setenv("HUB_OBJECT_STORE", "s3")
    monkeypatch.setenv("HUB_S3_ENDPOINT", s3["endpoint"])
    monkeypatch.setenv("HUB_S3_ACCESS_KEY", s3["access_key"])
    monkeypatch.setenv("HUB_S3_SECRET_KEY", s3["secret_key"])
    monkeypatch.setenv("HUB_S3_BUCKET", "hub-backup-tests")
    monkeypatch.setenv("HUB_S3_PREFIX", f"t-{uuid.uuid4().hex[:12]}")
    yield env


def test_backup_and_restore_through_s3(s3_env: dict[str, Path]) -> None:
    env = s3_env
    publish_accounts(env["data"], ["ACC-6001"])
    made = backup_create(env)
    assert not env["objects"].exists()  # nothing went to the local folder
    r = run(*restore_args(env))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ledger"]["root"] == made["ledger_root"]
    assert ledger_root(env["restored"], made["ledger_size"])[1] == made["ledger_root"]
    assert os.environ["HUB_OBJECT_STORE"] == "s3"


# The same round trip on HDFS (WebHDFS, HUB_OBJECT_STORE=hdfs) is in
# tests/contract/test_objectstore_webhdfs.py: it runs in the process that already started the
# MiniDFSCluster (a second start here cost ~33 s of CI).
