"""Keys of unattributed quarantine entries (session 14 leftovers, fixed in session 15).

Each quarantined personal record naming no data subject is sealed under a key of its own
(``unattributed:<entry id>``).
* Retention removing such entries left their keys behind: the key store grew forever, and a
  copy of the topic from before the cut (a backup) could still be opened. Retention now
  destroys the keys only the removed entries used, and says how many on the ledger.
* Nothing bounded the keys: a sender flooding unparseable personal records made one key per
  record. Beyond a limit per tenant the originals are sealed under one shared key per tenant
  (their reason says so); nothing is refused or lost."""

from __future__ import annotations

import json
from typing import Any

from core.pii import UNATTRIBUTED
from hub.bootstrap import Hub
from ingest.pipeline import QUARANTINE_TOPIC, RawRecord
from ingest.quarantine import decode_entry, entries
from tests.adversarial.test_quarantine_erasure import OPENED, account


def _send(h: Hub, value: dict[str, Any], tenant: str = "default") -> bytes:
    original = json.dumps(value).encode()
    raw = RawRecord(original, value=value, event_type=OPENED, content_type="application/json")
    h.ingest.ingest("accounts", [raw], source="test", tenant=tenant)
    return original


def _keep_from(h: Hub, offset: int) -> None:
    """A retention policy on the quarantine that keeps the entries from ``offset`` on (each
    transaction's commit marker takes an offset too)."""
    end = h.log.end_offsets(QUARANTINE_TOPIC)[0]
    h.governance.set_policy(f"topic:{QUARANTINE_TOPIC}", max_records=end - offset, actor="o")


def test_retention_destroys_the_keys_of_the_unattributed_entries_it_removes(hub: Hub) -> None:
    for _ in range(3):
        _send(hub, account(None))
    listed = entries(hub.ingest)
    subjects = [e["sealed_for"] for e in listed]
    assert len(set(subjects)) == 3 and all(s.startswith(UNATTRIBUTED) for s in subjects)
    # the keys are the entries' tenant's (s18: per tenant and subject)
    keystore = hub.publisher.pii.keystore.for_tenant("default")  # type: ignore[union-attr]
    assert all(keystore.exists(s) for s in subjects)
    _keep_from(hub, listed[2]["offset"])
    report = hub.retention.run()
    assert [d.as_dict()["topic"] for d in report.deleted] == [QUARANTINE_TOPIC]
    # before: both keys still there, opening any copy of the removed entries
    assert [keystore.erased(s) for s in subjects] == [True, True, False]
    assert keystore.exists(subjects[2])
    (kept,) = entries(hub.ingest)
    assert decode_entry(hub.ingest, kept["offset"])["original"]  # the kept one still opens
    found = [
        rec["value"]
        for rec in hub.reader.read("hub.audit", 0, 0, hub.log.end_offsets("hub.audit")[0])
        if isinstance(rec["value"], dict) and rec["value"].get("action") == "retention.delete"
    ]
    assert found and "unattributed_keys_destroyed" in json.dumps(found[-1], default=str), found


def test_a_flood_of_unattributed_records_is_bounded_per_tenant(hub: Hub) -> None:
    hub.ingest.unattributed.limit = 2
    originals = [_send(hub, account(None, email=f"x{i}@example.org"), "acme") for i in range(4)]
    _send(hub, account(None), "globex")
    listed = entries(hub.ingest)
    acme = [e for e in listed if e["tenant"] == "acme"]
    shared = UNATTRIBUTED + "overflow:acme"
    assert [e["sealed_for"] == shared for e in acme] == [False, False, True, True]
    assert "shared" in acme[-1]["reason"] and shared in acme[-1]["reason"]
    # nothing lost: each overflowed original opens, for a reader who may see originals
    for e, original in zip(acme, originals, strict=True):
        assert decode_entry(hub.ingest, e["offset"])["original"] == original
    (globex,) = [e for e in listed if e["tenant"] == "globex"]
    assert globex["sealed_for"] != UNATTRIBUTED + "overflow:globex"  # another tenant's quota
    # retention cutting acme's own two entries keeps the shared key, which kept entries use
    _keep_from(hub, acme[2]["offset"])
    hub.retention.run()
    keystore = hub.publisher.pii.keystore.for_tenant("acme")  # type: ignore[union-attr]
    assert keystore.erased(acme[0]["sealed_for"]) and keystore.erased(acme[1]["sealed_for"])
    assert keystore.exists(shared)
