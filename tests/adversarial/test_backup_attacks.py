"""Backups attacked: who may run the storage commands, and what a hostile store can plant.

1. Every ``hub backup|dr|lake|tier`` command tried with a key of each role: the backup, restore,
   drill and lake commands are the admin's alone (the role table grants ``backup.*`` and
   ``lake.export`` to no other role); ``tier offload`` is a retention operation (the roles that
   hold ``retention.write``) and ``tier status`` a topic read. A refused command leaves no trace
   (no backup listed, no restored folder, no lake table). The admin's run succeeds, so the
   matrix cannot pass by refusing everyone.
2. What someone with write access to the object store (not to the KEK, nor the ledger key) can
   do, each refused by ``hub backup restore`` with the object named and no data folder written:
   a manifest changed and re-signed with the attacker's own key; a chunk replaced by a valid chunk
   of another backup; an old backup's manifest, signature and sealed keys replayed under a newer
   backup's id; path traversal in a manifest's file names, chunk names and backup ids (even in a
   manifest signed with the real ledger key, as an insider could); a KEK kept beside the data or
   the store (also through a symlink), readable by others; a restore over a non-empty target.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from audit.note import generate_key, parse_signer_key, sign_note
from core.events import OutgoingEvent
from core.roles import ROLE_ACTIONS, ROLES
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from storage.backup import Manifest, chunk_key, manifest_key, signed_text
from tests.service.accounts import account_opened


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def account(account_id: str) -> OutgoingEvent:
    return account_opened(
        account_id,
        name=f"Name {account_id}",
        date_of_birth="1980-02-03",
        opened_at="2026-11-25T10:00:00Z",
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A hub with a few accounts, one key per role, a KEK apart, and two backups."""
    root = tmp_path_factory.mktemp("backup-attacks")
    data, objects, kek = root / "hub", root / "store", root / "vault" / "backup.kek"
    mp = pytest.MonkeyPatch()
    mp.setenv("HUB_OBJECT_STORE_DIR", str(objects))
    mp.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    mp.setenv("HUB_LAKE_CATALOG_URL", f"sqlite:///{root / 'lake.db'}")
    mp.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(data_dir=data))
    try:
        keys = {role: h.keys.create([role], owner=f"{role}-1").token for role in ROLES}
        h.publisher.publish("accounts", [account(f"ACC-{i}") for i in range(5)], producer="t")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    first = json.loads(
        run("--data-dir", str(data), "--key", keys["admin"], "backup", "create").stdout
    )
    h = bootstrap(load_settings(data_dir=data))
    try:
        h.publisher.publish("accounts", [account(f"ACC-{i}") for i in range(5, 9)], producer="t")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    second = json.loads(
        run("--data-dir", str(data), "--key", keys["admin"], "backup", "create").stdout
    )
    yield {
        "root": root,
        "data": data,
        "objects": objects,
        "kek": kek,
        "keys": keys,
        "first": first["id"],
        "second": second["id"],
    }
    mp.undo()


def as_role(site: dict[str, Any], role: str, *args: str) -> Result:
    return run("--data-dir", str(site["data"]), "--key", site["keys"][role], *args)


def backups_listed(site: dict[str, Any]) -> list[str]:
    r = as_role(site, "admin", "backup", "list")
    assert r.exit_code == 0, r.output
    return [b["id"] for b in json.loads(r.stdout)]


# -- 1. the role matrix ------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (action the role table must grant, argv after the global options)
    "backup create": ("backup.create", ("backup", "create")),
    "backup list": ("backup.read", ("backup", "list")),
    "backup show": ("backup.read", ("backup", "show", "{first}")),
    "backup verify": ("backup.read", ("backup", "verify", "{first}")),
    "backup restore": ("backup.restore", ("backup", "restore", "{first}", "--target", "{out}")),
    "dr drill": ("backup.restore", ("dr", "drill", "--scratch", "{out}")),
    "lake export": ("lake.export", ("lake", "export", "--topic", "accounts", "--no-views")),
    "tier offload": ("retention.write", ("tier", "offload", "--topic", "accounts")),
    "tier status": ("topic.read", ("tier", "status", "--topic", "accounts")),
}
ADMIN_ONLY = {"backup create", "backup list", "backup show", "backup verify", "backup restore"}
ADMIN_ONLY |= {"dr drill", "lake export"}


def test_the_backup_restore_drill_and_lake_actions_are_the_admins_alone() -> None:
    for name in ADMIN_ONLY:
        action = COMMANDS[name][0]
        holders = {role for role in ROLES if action in ROLE_ACTIONS[role]}
        assert holders == {"admin"}, f"{name} ({action}) is granted to {holders}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_storage_command_with_each_role(
    site: dict[str, Any], command: str, role: str, tmp_path: Path
) -> None:
    action, argv = COMMANDS[command]
    out = tmp_path / "out"
    args = [a.format(first=site["first"], out=out) for a in argv]
    before = backups_listed(site)
    r = as_role(site, role, *args)
    allowed = action in ROLE_ACTIONS[role]
    if not allowed:
        assert r.exit_code == 1, f"{role} ran {command}: {r.output}"
        assert "denied" in r.stderr.lower() and "Traceback" not in r.output
        assert backups_listed(site) == before  # nothing was made
        assert not out.exists() or not any(out.iterdir())  # nothing restored
        return
    assert r.exit_code == 0, f"{role} was refused {command}: {r.output}"
    if command == "backup create":
        made = json.loads(r.stdout)["id"]
        assert backups_listed(site) == [*before, made]
    if command == "backup restore":
        assert json.loads(r.stdout)["backup"] == site["first"]
        assert (out / "ledger-tiles.sqlite").exists()  # the default store's file, restored


def test_the_store_credentials_gate_listing_when_no_hub_is_there(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """On a machine without the hub (after the disaster) listing needs no hub key, but a restore
    still needs a principal the restored hub's policy allows ``backup.restore``."""
    empty = tmp_path / "new-site"
    r = run("--data-dir", str(empty), "--key", site["keys"]["analyst"], "backup", "restore")
    assert r.exit_code == 1 and "denied" in r.stderr.lower()
    assert not empty.exists()


# -- 2. a hostile object store -----------------------------------------------------------------


def restore(site: dict[str, Any], target: Path, *extra: str) -> Result:
    return as_role(site, "admin", "backup", "restore", *extra, "--target", str(target))


def obj(site: dict[str, Any], key: str) -> Path:
    return Path(site["objects"]) / key


def overwrite(path: Path, data: bytes) -> None:
    """What an attacker with the store's credentials does: replace an object's bytes."""
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.fixture
def copy_site(site: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The site with its own copy of the object folder (attacks change it)."""
    objects = tmp_path / "store"
    shutil.copytree(site["objects"], objects)
    mp = pytest.MonkeyPatch()
    mp.setenv("HUB_OBJECT_STORE_DIR", str(objects))
    yield {**site, "objects": objects}
    mp.undo()


def refused(r: Result, target: Path, *names: str) -> None:
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    for name in names:
        assert name in r.stderr, (name, r.stderr)
    assert not target.exists()
    assert not list(target.parent.glob(f".{target.name}*"))


def test_a_manifest_re_signed_with_the_attackers_key_is_refused(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site, bid = copy_site, copy_site["second"]
    body = obj(site, manifest_key(bid)).read_bytes()
    m = json.loads(body)
    attacker = generate_key(m["ledger"]["origin"])
    m["ledger"]["public_key"] = attacker.verifier.encode()
    m["ledger"]["root"] = "00" * 32
    new = (json.dumps(m, indent=1, sort_keys=True) + "\n").encode()
    overwrite(obj(site, manifest_key(bid)), new)
    overwrite(
        obj(site, manifest_key(bid, "manifest.sig")),
        sign_note(signed_text(bid, hashlib.sha256(new).hexdigest()), attacker),
    )
    target = tmp_path / "restored"
    refused(restore(site, target, bid), target, "backup_corrupt", "its sealed key is")


def test_a_valid_chunk_of_another_backup_in_place_of_a_chunk_is_refused(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    site = copy_site
    first = Manifest.decode(obj(site, manifest_key(site["first"])).read_bytes(), "first")
    second = Manifest.decode(obj(site, manifest_key(site["second"])).read_bytes(), "second")
    own = {c for f in second.files for c in f.chunks}
    theirs = sorted({c for f in first.files for c in f.chunks} - own)
    victim = next(f for f in second.files if f.path == "log.sqlite").chunks[0]
    assert theirs and victim in own
    overwrite(obj(site, chunk_key(victim)), obj(site, chunk_key(theirs[0])).read_bytes())
    target = tmp_path / "restored"
    refused(restore(site, target, site["second"]), target, chunk_key(victim), "SHA-256")
    r = as_role(site, "admin", "backup", "verify", site["second"])
    assert r.exit_code == 1 and chunk_key(victim) in r.stderr


def test_an_old_manifest_replayed_under_a_newer_backup_id_is_refused(
    copy_site: dict[str, Any], tmp_path: Path
) -> None:
    """The signature covers the backup id and the sealed keys' AAD too: an old backup cannot be
    passed off as the newest (a rollback that would drop records and erasures)."""
    site, old, new = copy_site, copy_site["first"], copy_site["second"]
    for name in ("manifest.json", "manifest.sig"):
        overwrite(
            obj(site, manifest_key(new, name)), obj(site, manifest_key(old, name)).read_bytes()
        )
    target = tmp_path / "restored"
    refused(restore(site, target, new), target, "backup_corrupt", new)
    # and with the old sealed keys as well: the keys' AES-GCM tag binds them to the old id
    overwrite(
        obj(site, manifest_key(new, "keys.enc")),
        obj(site, manifest_key(old, "keys.enc")).read_bytes(),
    )
    refused(restore(site, target, new), target, "backup_corrupt")


def _insider_manifest(site: dict[str, Any], bid: str, change: Any) -> None:
    """Rewrite backup ``bid``'s manifest with ``change`` and sign it with the real ledger key
    (someone holding the ledger key and the store): the restore's own path checks must hold."""
    key = parse_signer_key((Path(site["data"]) / "keys" / "ledger.key").read_text().strip())
    m = json.loads(obj(site, manifest_key(bid)).read_bytes())
    change(m)
    new = (json.dumps(m, indent=1, sort_keys=True) + "\n").encode()
    overwrite(obj(site, manifest_key(bid)), new)
    overwrite(
        obj(site, manifest_key(bid, "manifest.sig")),
        sign_note(signed_text(bid, hashlib.sha256(new).hexdigest()), key),
    )


@pytest.mark.parametrize(
    "path", ["../escaped.sqlite", "/etc/hub-escaped", "views/../../escaped", "a//b", "./x"]
)
def test_path_traversal_in_a_signed_manifests_file_names_is_refused(
    copy_site: dict[str, Any], tmp_path: Path, path: str
) -> None:
    site, bid = copy_site, copy_site["second"]

    def change(m: dict[str, Any]) -> None:
        m["files"][-1]["path"] = path

    _insider_manifest(site, bid, change)
    target = tmp_path / "deep" / "restored"
    refused(restore(site, target, bid), target, "unsafe path")
    assert not (tmp_path / "deep" / "escaped.sqlite").exists()
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("chunk", ["../../../../tmp/x", "AB" * 32, "zz", "a/b"])
def test_a_chunk_name_that_is_no_sha256_is_refused(
    copy_site: dict[str, Any], tmp_path: Path, chunk: str
) -> None:
    site, bid = copy_site, copy_site["second"]

    def change(m: dict[str, Any]) -> None:
        m["files"][0]["chunks"][0] = chunk

    _insider_manifest(site, bid, change)
    target = tmp_path / "restored"
    refused(restore(site, target, bid), target, "backup_corrupt", "chunk")


@pytest.mark.parametrize("bid", ["../../etc", "..", "a/b", "x\x00y", "-"])
@pytest.mark.parametrize("command", ["show", "verify", "restore"])
def test_a_backup_id_with_path_segments_is_refused(
    site: dict[str, Any], tmp_path: Path, bid: str, command: str
) -> None:
    target = tmp_path / "restored"
    extra = ("--target", str(target)) if command == "restore" else ()
    r = as_role(site, "admin", "backup", command, bid, *extra)
    assert r.exit_code in (1, 2) and "Traceback" not in r.output
    assert "backup id" in r.stderr.lower()
    assert not target.exists()


def test_a_kek_beside_the_data_or_the_store_is_refused(
    site: dict[str, Any], tmp_path: Path
) -> None:
    kek = Path(site["kek"])
    for place in (Path(site["objects"]) / "kek.b64", Path(site["data"]) / "sub" / "kek.b64"):
        place.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(kek, place)
        place.chmod(0o600)
        r = as_role(site, "admin", "backup", "create", "--kek-file", str(place))
        assert r.exit_code == 1 and "beside what it protects" in r.stderr
        place.unlink()
    # a symlink elsewhere that points into the data folder is the same KEK beside the data
    inside = Path(site["data"]) / "kek-inside.b64"
    shutil.copy(kek, inside)
    inside.chmod(0o600)
    link = tmp_path / "innocent.kek"
    link.symlink_to(inside)
    r = as_role(site, "admin", "backup", "verify", "--kek-file", str(link))
    assert r.exit_code == 1 and "beside what it protects" in r.stderr
    inside.unlink()
    # readable by others
    loose = tmp_path / "loose.kek"
    shutil.copy(kek, loose)
    loose.chmod(0o644)
    r = as_role(site, "admin", "backup", "verify", "--kek-file", str(loose))
    assert r.exit_code == 1 and "chmod 600" in r.stderr


@pytest.mark.parametrize("kind", ["file in it", "a file", "the live data folder"])
def test_a_restore_over_a_non_empty_target_is_refused(
    site: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    if kind == "file in it":
        target = tmp_path / "t"
        target.mkdir()
        (target / "precious").write_text("keep")
    elif kind == "a file":
        target = tmp_path / "t"
        target.write_text("keep")
    else:
        target = Path(site["data"])
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else None
    r = restore(site, target, site["first"])
    if kind == "a file":  # refused as bad usage by the option's type (exit 2)
        assert r.exit_code == 2 and "is a file" in r.stderr
        assert target.read_text() == "keep"
        return
    assert r.exit_code == 1 and "not empty" in r.stderr
    assert sorted(p.name for p in target.iterdir()) == before
