"""Quarantine and erasure: no personal data outlives an erasure through the quarantine.

* A rejected record for a topic with personal data whose data subject cannot be told (no
  ``account_id``, unknown event type) MUST be kept (nothing refused is lost) but MUST NOT be
  kept in clear: it is sealed, with its digest, under a synthetic subject of its own
  (``unattributed:<entry id>``). A reader who may see originals opens and replays it; erasing
  that subject (the normal erasure path) shreds it and no other entry.
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
from core.events import OutgoingEvent
from core.pii import UNATTRIBUTED
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


def assert_not_in_clear(h: Hub, *originals: bytes) -> None:
    stored = stored_quarantine(h)
    for secret in (NAME, EMAIL):
        assert secret.encode() not in stored, f"{secret!r} quarantined in clear"
    for original in originals:
        assert original not in stored
        assert hashlib.sha256(original).hexdigest().encode() not in stored


@pytest.mark.parametrize(
    ("account_id", "event_type"),
    [(None, OPENED), ("ACC-U", "hub.accounts.NoSuchEvent")],
    ids=["no-subject-field", "unknown-event-type"],
)
def test_unidentifiable_personal_record_is_kept_sealed_under_its_own_subject(
    hub: Hub, account_id: str | None, event_type: str
) -> None:
    # no data subject that could be told (or no schema to tell it by): a synthetic one
    original = send(hub, account(account_id), event_type)
    (entry,) = entries(hub.ingest)
    assert entry["reason_code"] and entry["reason"]  # why it was refused stays visible
    assert entry["original_size"] == len(original)
    (rec,) = hub.log.read(QUARANTINE_TOPIC, 0, entry["offset"], 1)
    entry_id = dict(rec.headers)["ce_id"].decode()
    subject = entry["sealed_for"]
    assert subject == UNATTRIBUTED + entry_id  # the hub's id, not the sender's
    assert entry["original_sha256"] == "sealed" and not entry["erased"]
    assert_not_in_clear(hub, original)

    opened = decode_entry(hub.ingest, entry["offset"])  # a reader who may see originals
    assert opened["original"] == original and not opened["erased"]
    assert opened["original_sha256"] == hashlib.sha256(original).hexdigest()
    masked = decode_entry(hub.ingest, entry["offset"], unseal=False)
    assert masked["original"] == b"" and masked["original_sha256"] == "sealed"

    # replay works (it fails again: still no subject), and the new entry is sealed on its own
    assert replay(hub.ingest, [entry["offset"]])["accounts"].rejected == 1
    again = entries(hub.ingest)[-1]
    assert again["attempt"] == entry["attempt"] + 1
    assert again["sealed_for"].startswith(UNATTRIBUTED) and again["sealed_for"] != subject
    assert decode_entry(hub.ingest, again["offset"])["original"] == original
    assert_not_in_clear(hub, original)

    # erasing the synthetic subject (normal erasure path) shreds that entry and no other
    hub.eraser.erase(OPERATOR, subject, "DSR-U1", tenant_scope=None)
    after = decode_entry(hub.ingest, entry["offset"])
    assert after["erased"] and after["original"] == b"" and after["original_sha256"] == ""
    assert after["reason_code"] == entry["reason_code"] and after["original_size"] == len(original)
    listed = {e["offset"]: e for e in entries(hub.ingest)}
    assert listed[entry["offset"]]["erased"] and not listed[again["offset"]]["erased"]
    assert decode_entry(hub.ingest, again["offset"])["original"] == original
    assert_not_in_clear(hub, original)


def test_an_erased_unattributed_entry_is_not_replayable(hub: Hub) -> None:
    send(hub, account(None))
    (entry,) = entries(hub.ingest)
    hub.eraser.erase(OPERATOR, entry["sealed_for"], "DSR-U2", tenant_scope=None)
    with pytest.raises(InvalidInput, match="erased") as exc:
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

    hub.eraser.erase(OPERATOR, "ACC-Q", "DSR-Q1", tenant_scope=None)
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


def test_a_sender_cannot_name_an_unattributed_subject(hub: Hub) -> None:
    # the attack: put one's own record under the key of another's quarantine entry, so that
    # one erasure shreds both (or learn nothing, but share a key the hub gave one entry)
    send(hub, account(None))
    (victim,) = entries(hub.ingest)
    reserved = OutgoingEvent(event_type=OPENED, value=account(victim["sealed_for"]))
    updated = OutgoingEvent(
        event_type="hub.accounts.AccountUpdated",
        value={"account_id": "ACC-X", "reason": "kyc", "updated_at": "2026-11-25T10:00:00Z"},
    )
    # one event type (sealed column-wise) and two (sealed record by record): both refused
    for batch in ([reserved], [updated, reserved]):
        with pytest.raises(InvalidInput, match="reserves") as exc:  # strict publish: refused
            hub.publisher.publish("accounts", batch, "test")
        assert exc.value.code == "data_subject_reserved"
    original = send(hub, account(victim["sealed_for"]))  # ingest: quarantined, why, sealed apart
    mine = entries(hub.ingest)[-1]
    assert mine["reason_code"] == "data_subject_reserved"
    assert mine["sealed_for"].startswith(UNATTRIBUTED)
    assert mine["sealed_for"] != victim["sealed_for"]
    hub.eraser.erase(OPERATOR, victim["sealed_for"], "DSR-U4", tenant_scope=None)
    assert decode_entry(hub.ingest, mine["offset"])["original"] == original
    assert_not_in_clear(hub, original)


def test_an_officer_erases_an_unattributed_entry_by_name_and_replay_all_passes_over_it(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from hub.bootstrap import bootstrap
    from hub.cli import main
    from hub.settings import load_settings
    from tests.cli_keys import admin_args

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        unattributed = send(h, account(None))  # sealed under unattributed:<entry id>
        send(h, account("ACC-R", email="r r@example"))  # sealed for ACC-R: replayable
        listed = entries(h.ingest)
    finally:
        h.close()
    subject = listed[0]["sealed_for"]
    assert subject.startswith(UNATTRIBUTED) and listed[1]["sealed_for"] == "ACC-R"
    runner = CliRunner()
    r = runner.invoke(main, [*admin_args(data), "quarantine", "list"])
    assert r.exit_code == 0 and subject in r.stdout  # what the officer names
    r = runner.invoke(main, [*admin_args(data), "erase", subject, "--reason", "DSR-U3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [*admin_args(data), "quarantine", "replay", "--all"])
    assert r.exit_code == 0, r.output
    assert "accounts: accepted=0 rejected=1" in r.stdout
    assert "skipped 1 entries whose original was erased" in r.stderr
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        assert decode_entry(h.ingest, listed[0]["offset"])["original"] == b""
        assert unattributed not in stored_quarantine(h)
    finally:
        h.close()
