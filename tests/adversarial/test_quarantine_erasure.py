"""Quarantine and erasure: no personal data outlives an erasure through the quarantine.

* A rejected record for a topic with personal data whose data subject cannot be told (no
  ``account_id``) MUST NOT be kept in clear: no subject key could ever shred it. Its original
  and digest are not kept; the entry still says why it was refused and is not replayable.
* The digest of a quarantined original sealed for a subject MUST NOT be stored in clear: a
  SHA-256 of a small personal record confirms a guess of it. It is sealed with the original, so
  after an erasure it is gone while the entry still shows that the record was quarantined, why
  and how large it was. A late record for an erased subject keeps no digest either.
* An erased subject's data does not come back through a quarantine replay, a projection
  rebuild, the lake export or a backup restore.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidInput
from core.ports.policy import Principal
from hub.bootstrap import Hub
from ingest.pipeline import QUARANTINE_TOPIC, RawRecord
from ingest.quarantine import decode_entry, entries, replay

OPERATOR = Principal("ops", frozenset({"admin"}))
OPENED = "hub.accounts.AccountOpened"
NAME, EMAIL = "Carol Quarantined", "carol.q@example.org"


def account(account_id: str | None, email: str = EMAIL) -> dict[str, Any]:
    value = {
        "account_id": account_id,
        "customer_name": NAME,
        "email": email,
        "date_of_birth": "1980-02-03",
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-11-25T10:00:00Z",
    }
    if account_id is None:
        del value["account_id"]
    return value


def send(h: Hub, value: dict[str, Any], event_type: str = OPENED) -> bytes:
    original = json.dumps(value).encode()
    raw = RawRecord(original, value=value, event_type=event_type, content_type="application/json")
    h.ingest.ingest("accounts", [raw], source="test")
    return original


def stored_quarantine(h: Hub) -> bytes:
    end = h.log.end_offsets(QUARANTINE_TOPIC).get(0, -1)
    return b"".join(r.value or b"" for r in h.log.read(QUARANTINE_TOPIC, 0, 0, end + 1))


@pytest.mark.parametrize(
    ("account_id", "event_type"),
    [(None, OPENED), ("ACC-U", "hub.accounts.NoSuchEvent")],
    ids=["no-subject-field", "unknown-event-type"],
)
def test_unidentifiable_personal_record_is_not_kept_in_clear(
    hub: Hub, account_id: str | None, event_type: str
) -> None:
    # no data subject that could be told (or no schema to tell it by): no key could shred it
    original = send(hub, account(account_id), event_type)
    (entry,) = entries(hub.ingest)
    assert entry["reason_code"] and entry["reason"]  # why it was refused stays visible
    assert entry["original_size"] == len(original)
    stored = stored_quarantine(hub)
    for secret in (NAME, EMAIL):
        assert secret.encode() not in stored, f"{secret!r} quarantined in clear"
    assert hashlib.sha256(original).hexdigest().encode() not in stored
    e = decode_entry(hub.ingest, entry["offset"])
    assert e["original"] == b"" and e["original_dropped"] == "unidentified_subject"
    with pytest.raises(InvalidInput, match="not kept") as exc:
        replay(hub.ingest, [entry["offset"]])
    assert exc.value.code == "not_replayable"


def test_a_record_for_a_topic_without_personal_data_is_still_kept_whole(hub: Hub) -> None:
    bad = b'{"broken json'
    hub.ingest.ingest("quotes", [RawRecord(bad)], source="test")
    (entry,) = entries(hub.ingest)
    e = decode_entry(hub.ingest, entry["offset"])
    assert e["original"] == bad and e["original_sha256"] == hashlib.sha256(bad).hexdigest()


def test_quarantine_digest_is_shredded_by_the_erasure(hub: Hub) -> None:
    original = send(hub, account("ACC-Q", email="carol q@example"))  # fails the e-mail rule
    digest = hashlib.sha256(original).hexdigest()
    (entry,) = entries(hub.ingest)
    assert entry["original_sha256"] == "sealed"
    assert digest.encode() not in stored_quarantine(hub)
    before = decode_entry(hub.ingest, entry["offset"])  # the operator still sees it before
    assert before["original"] == original and before["original_sha256"] == digest
    masked = decode_entry(hub.ingest, entry["offset"], unseal=False)
    assert masked["original_sha256"] == "sealed"

    hub.eraser.erase(OPERATOR, "ACC-Q", "DSR-Q1")
    after = decode_entry(hub.ingest, entry["offset"])
    assert after["erased"] and after["original"] == b"" and after["original_sha256"] == ""
    assert after["reason_code"] == entry["reason_code"] and after["field_path"] == "/email"
    assert after["original_size"] == len(original)
    assert digest.encode() not in stored_quarantine(hub)
    with pytest.raises(InvalidInput) as exc:  # path: quarantine replay
        replay(hub.ingest, [entry["offset"]])
    assert exc.value.code == "not_replayable"

    late = send(hub, account("ACC-Q"))  # a late record for the erased subject
    last = entries(hub.ingest)[-1]
    assert last["reason_code"] == "key_destroyed" and last["original_sha256"] == ""
    stored = stored_quarantine(hub)
    assert hashlib.sha256(late).hexdigest().encode() not in stored
    assert EMAIL.encode() not in stored and NAME.encode() not in stored


def test_replay_all_passes_over_entries_whose_original_was_not_kept(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.bootstrap import bootstrap
    from hub.cli import main
    from hub.settings import load_settings
    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        send(h, account(None))  # not kept: not replayable
        send(h, account("ACC-R", email="r r@example"))  # sealed: replayable (fails again)
    finally:
        h.close()
    r = CliRunner().invoke(main, [*admin_args(data), "quarantine", "replay", "--all"])
    assert r.exit_code == 0, r.output
    assert "accounts: accepted=0 rejected=1" in r.stdout
    assert "skipped 1 entries whose original was not kept" in r.stderr
