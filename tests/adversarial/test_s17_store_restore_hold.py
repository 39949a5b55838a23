"""A restore MUST re-apply an erasure made after its backup even where the backup still holds
a legal hold that was released before the erasure.

The restore re-applies each journalled erasure through ``Eraser.erase``, which refused a held
subject (and, since this session, a held topic holding the subject's PII) with ``Conflict``:
the backup's state still had the hold, so the whole restore failed and was rolled back, and
that backup (often the newest) could not be restored at all. The erasure was decided, holds
included, when it was made; the restore now re-applies it as is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.adversarial.test_backup_attacks import account, run


@pytest.fixture(params=["subject:ACC-7", "topic:accounts"])
def held_then_erased(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A backup made under a hold; the hold released; the subject erased afterwards."""
    data, objects, kek = tmp_path / "hub", tmp_path / "store", tmp_path / "vault" / "b.kek"
    mp = pytest.MonkeyPatch()
    mp.setenv("HUB_OBJECT_STORE_DIR", str(objects))
    mp.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    mp.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(data_dir=data))
    try:
        admin = h.keys.create(["admin"], owner="admin-1").token
        h.publisher.publish("accounts", [account(f"ACC-{i}") for i in range(5, 9)], producer="t")
        hold = h.governance.place_hold(request.param, actor="counsel", matter="M-17")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    r = run("--data-dir", str(data), "--key", admin, "backup", "create")
    assert r.exit_code == 0, r.output
    h = bootstrap(load_settings(data_dir=data))
    try:
        h.governance.release_hold(hold.hold_id, actor="counsel")  # (two persons, in the API)
    finally:
        h.close()
    r = run("--data-dir", str(data), "--key", admin, "erase", "ACC-7", "--reason", "DSR-17")
    assert r.exit_code == 0, r.output
    yield {"data": data, "admin": admin}
    mp.undo()


def test_the_restore_re_applies_the_erasure(
    held_then_erased: dict[str, Any], tmp_path: Path
) -> None:
    site = held_then_erased
    target = tmp_path / "restored"
    r = run(
        "--data-dir", str(site["data"]), "--key", site["admin"],
        "backup", "restore", "--target", str(target),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["erasures_reapplied"] == ["ACC-7"]
    h = bootstrap(load_settings(data_dir=target))
    try:
        keys = h.keystore.for_tenant("default")  # s18: keys per tenant and subject
        assert keys.erased("ACC-7")
        assert keys.exists("ACC-8")
    finally:
        h.close()
