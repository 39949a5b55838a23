"""Secrets kept in the data folder under other names than ``*.key`` (session 21, redteam-ops).

A backup seals key material (``keys/``, ``*.key``) under the KEK: whoever reads the object store
(a bucket's readers, a storage admin) must not learn a secret. Other secret files an operator
keeps in the data folder went to the store as plain chunks: the scrape token
(``HUB_METRICS_TOKEN_FILE``: GET /metrics without an API key), the alert webhook's HMAC key
(``HUB_ALERT_WEBHOOK_SECRET_FILE``: forged alerts), and an API key saved under another name
(``hub serve --admin-key-file .hub/admin-key.txt``, ``hub enrol --out``, ``hub keys create >
.hub/bob.token``). A backup now seals the secret files the settings name when they lie in the
data folder, and every small file that holds a hub credential; the restore writes them back
(0600).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("rto-backup-secrets")
    data, objects, kek = root / "hub", root / "store", root / "vault" / "backup.kek"
    mp = pytest.MonkeyPatch()
    mp.setenv("HUB_OBJECT_STORE_DIR", str(objects))
    mp.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    mp.setenv("HUB_METRICS_TOKEN_FILE", str(data / "metrics.token"))
    mp.setenv("HUB_ALERT_WEBHOOK_SECRET_FILE", str(data / "webhook.secret"))
    mp.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(data_dir=data))
    try:
        admin = h.keys.create(["admin"], owner="admin-1").token
        bob = h.keys.create(["analyst"], owner="bob").token
    finally:
        h.close()
    files = {
        "metrics.token": "scrape-token-0123456789abcdef0123456789abcdef",
        "webhook.secret": "webhook-hmac-key-fedcba9876543210fedcba98765",
        "bob-key.txt": bob + "\n",
    }
    for name, text in files.items():
        secret(data / name, text)
    made = run("--data-dir", str(data), "--key", admin, "backup", "create")
    assert made.exit_code == 0, made.output
    yield {"root": root, "objects": objects, "admin": admin, "files": files}
    mp.undo()


def test_no_secret_file_reaches_the_store_in_plaintext(site: dict[str, Any]) -> None:
    leaked = []
    for path in site["objects"].rglob("*"):
        if path.is_file():
            body = path.read_bytes()
            for name, text in site["files"].items():
                if text.strip().split(":")[-1].encode() in body:
                    leaked.append(f"{name} in {path.relative_to(site['objects'])}")
    assert leaked == []


def test_the_restore_gives_the_secret_files_back_owner_only(site: dict[str, Any]) -> None:
    target = site["root"] / "restored"
    r = run("--data-dir", str(target), "--key", site["admin"], "backup", "restore")
    assert r.exit_code == 0, r.output
    for name, text in site["files"].items():
        assert (target / name).read_text() == text
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600
