"""An erased data subject's data MUST NOT come back through a projection rebuild, the lake
export (raw topics including ``hub.quarantine``, and the views) or a backup restore (which
re-applies erasures made after the backup): one test per path, each also checking the
subject's quarantined record (its original and digest) stays shredded. The quarantine replay
path is in test_quarantine_erasure.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from core.errors import InvalidInput
from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.pipeline import QUARANTINE_TOPIC, RawRecord
from ingest.quarantine import decode_entry, entries, replay
from tests.cli_keys import admin_args, admin_key_file

OPERATOR = Principal("ops", frozenset({"admin"}))
OPENED = "hub.accounts.AccountOpened"
SUBJECT, OTHER = "ACC-E1", "ACC-E2"
NAME, EMAIL = "Erin Erasable", "erin.erasable@example.org"
BAD_EMAIL = "erin erasable@example"  # fails the e-mail rule: quarantined, sealed for SUBJECT


def opened(account_id: str, name: str, email: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "customer_name": name,
        "email": email,
        "date_of_birth": "1980-02-03",
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-11-25T10:00:00Z",
    }


def load(h: Hub) -> bytes:
    """The subject's account and another's, and a bad record of the subject's (quarantined);
    returns the quarantined original."""
    h.publisher.publish(
        "accounts",
        [
            OutgoingEvent(event_type=OPENED, value=opened(SUBJECT, NAME, EMAIL)),
            OutgoingEvent(event_type=OPENED, value=opened(OTHER, "Otto Kept", "otto@example.org")),
        ],
        "test",
    )
    bad = opened(SUBJECT, NAME, BAD_EMAIL)
    original = json.dumps(bad).encode()
    raw = RawRecord(original, value=bad, event_type=OPENED, content_type="application/json")
    assert h.ingest.ingest("accounts", [raw], source="test").rejected == 1
    h.projections.run(["accounts"])
    h.ledger.sync(force_checkpoint=True)
    return original


SECRETS = (NAME, EMAIL, BAD_EMAIL)


def views_text(h: Hub) -> str:
    sql = "SELECT * FROM accounts_current"
    table = h.projections.query(h.policy, OPERATOR, sql, store="transactional")
    return json.dumps(table.to_pylist(), default=str)


def assert_quarantine_shredded(h: Hub, original: bytes) -> None:
    stored = b"".join(
        r.value or b"" for r in h.log.read(QUARANTINE_TOPIC, 0, 0, 1000) if r.value is not None
    )
    assert hashlib.sha256(original).hexdigest().encode() not in stored
    (entry,) = [e for e in entries(h.ingest) if e["reason_code"] != "key_destroyed"]
    shown = decode_entry(h.ingest, entry["offset"])
    assert shown["erased"] and shown["original"] == b"" and shown["original_sha256"] == ""
    assert shown["reason"] and shown["original_size"] == len(original)
    with pytest.raises(InvalidInput) as exc:
        replay(h.ingest, [entry["offset"]])
    assert exc.value.code == "not_replayable"


def test_a_projection_rebuild_after_the_erasure_brings_nothing_back(hub: Hub) -> None:
    original = load(hub)
    assert NAME in views_text(hub)
    hub.eraser.erase(OPERATOR, SUBJECT, "DSR-E1", tenant_scope=None)
    for name in ("accounts", "payments"):
        hub.projections.rebuild(name)
    views = views_text(hub)
    assert not any(s in views for s in SECRETS) and "Otto Kept" in views
    assert_quarantine_shredded(hub, original)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_the_lake_export_holds_nothing_of_an_erased_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.commands.lake import lake_location
    from storage.lake import open_catalog

    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "objects"))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    data = tmp_path / "hub"
    h = bootstrap(load_settings(data_dir=data))
    try:
        original = load(h)
        url, warehouse, props = lake_location(h.settings)
    finally:
        h.close()
    topics = ("--topic", "accounts", "--topic", QUARANTINE_TOPIC)
    r = run(*admin_args(data), "lake", "export", *topics)  # before the erasure
    assert r.exit_code == 0, r.output
    r = run(*admin_args(data), "erase", SUBJECT, "--reason", "DSR-E1")
    assert r.exit_code == 0, r.output
    r = run(*admin_args(data), "lake", "export", *topics)  # and after it
    assert r.exit_code == 0, r.output

    catalog = open_catalog(url, warehouse, props)
    lake = ""
    for ns in ("raw", "views"):
        for ident in catalog.list_tables(ns):
            rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
            lake += json.dumps(rows, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    assert "Otto" not in lake  # PII never reaches the lake, not even before an erasure
    for s in SECRETS:
        assert s not in lake and s.encode().hex() not in lake, f"{s!r} is in the lake"
    digest = hashlib.sha256(original).hexdigest()
    assert digest not in lake and digest.encode().hex() not in lake


def test_a_restore_re_applies_the_erasure_to_views_and_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, restored = tmp_path / "site-a" / "hub", tmp_path / "site-b" / "hub"
    kek = tmp_path / "vault" / "backup.kek"
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(data_dir=data))
    try:
        original = load(h)
    finally:
        h.close()
    r = run(*admin_args(data), "backup", "create")  # holds the subject's key and views
    assert r.exit_code == 0, r.output
    r = run(*admin_args(data), "erase", SUBJECT, "--reason", "DSR-E1")
    assert r.exit_code == 0, r.output

    key = tmp_path / "admin.key.copy"
    key.write_text(admin_key_file(data).read_text())
    r = run("--data-dir", str(restored), "--key-file", str(key), "backup", "restore")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["erasures_reapplied"] == [SUBJECT]
    h = bootstrap(load_settings(data_dir=restored))
    try:
        keys = h.keystore.for_tenant("default")  # the tenant load() published as
        assert not keys.exists(SUBJECT) and keys.exists(OTHER)
        h.projections.run(["accounts"])  # the views as the restored hub folds them
        views = views_text(h)
        assert not any(s in views for s in SECRETS) and "Otto Kept" in views
        assert_quarantine_shredded(h, original)
        h.projections.rebuild("accounts")  # and a rebuild there brings nothing back either
        assert not any(s in views_text(h) for s in SECRETS)
    finally:
        h.close()
