"""Signing the erasure journal entries written before session 14 (``hub migrate``).

Entries written before they carried the ledger's signed note are refused by a restore, so an
erasure made then would not be re-applied after a restore. ``hub migrate erasure-journal``
signs an unsigned entry only when the ledger confirms it (a ``subject.erase`` of the same
subject), with a plan a second person approved; an entry the ledger does not confirm (a planted
one) is never signed: that would make a restore crypto-shred someone on the store's word."""

from __future__ import annotations

import json

import pytest

from core.errors import Conflict, Forbidden
from core.ports.policy import Principal
from governance.configchanges import TwoPersonRequired
from hub.bootstrap import Hub, build_object_store
from hub.commands.migrate import RESOURCE, apply_journal_plan, journal_plan
from storage.erasures import ErasureJournalCorrupt, erased_subjects, journal_key
from tests.service.test_config_changes import ALICE, CAROL

OPERATOR = Principal("ops", frozenset({"admin"}))


def _legacy(store: object, subject: str, **more: object) -> None:
    body = {"subject": subject, "erased_at_ms": 1_700_000_000_000, "reason_ref": "DSR", **more}
    store.put(journal_key(subject), json.dumps(body).encode())  # type: ignore[attr-defined]


def test_only_ledger_confirmed_entries_are_signed_with_a_second_persons_approval(
    hub: Hub,
) -> None:
    done = hub.eraser.erase(OPERATOR, "ACC-OLD", "DSR-1 (before session 14)", tenant_scope=None)
    store = build_object_store(hub.settings, write_once=False)
    _legacy(store, "ACC-OLD")  # what the journal held for that erasure: no note
    _legacy(store, "ACC-PLANTED")  # never erased: planted by whoever can write the store
    _legacy(store, "ACC-OLD-2", audit_offset=10**6)  # names an offset the ledger does not
    verifier = [hub.ledger.signer.verifier()]
    with pytest.raises(ErasureJournalCorrupt):
        erased_subjects(store, verifier)
    plan = journal_plan(hub, store)
    assert [(s, o) for _, s, o, _ in plan.sign] == [("ACC-OLD", done.audit_offset)]
    refused = {k: why for k, why in plan.refused}
    assert set(refused) == {journal_key("ACC-PLANTED"), journal_key("ACC-OLD-2")}
    # one admin alone cannot apply: no approved plan, and approving one's own is refused
    with pytest.raises(Conflict, match="approved"):
        apply_journal_plan(hub, store, ALICE)
    changes = hub.config_changes
    change = changes.propose(ALICE, RESOURCE, plan.digest, "sign the pre-14 journal")
    assert change.requires_approval
    with pytest.raises(TwoPersonRequired):
        changes.set_direct(ALICE, RESOURCE, plan.digest, "alone")
    with pytest.raises(Forbidden):  # the proposer cannot approve their own plan
        changes.approve(ALICE, change.change_id, "me again")
    changes.approve(CAROL, change.change_id, "checked against the ledger")
    out = apply_journal_plan(hub, store, ALICE)
    assert [s["subject"] for s in out["sign"]] == ["ACC-OLD"]
    # the planted entries stay unsigned: the restore still refuses them, naming one
    with pytest.raises(ErasureJournalCorrupt, match="erasures/"):
        erased_subjects(store, verifier)
    store.delete(journal_key("ACC-PLANTED"))
    store.delete(journal_key("ACC-OLD-2"))
    (entry,) = erased_subjects(store, verifier)
    assert (entry.subject, entry.audit_offset) == ("ACC-OLD", done.audit_offset)
    # the migration is on the ledger
    end = hub.log.end_offsets("hub.audit")[0]
    actions = [dict(r.headers).get("hub_action") for r in hub.log.read("hub.audit", 0, 0, end)]
    assert b"migration.apply" in actions
    # a plan that changed after its approval is not applied
    _legacy(store, "ACC-OLD")
    hub.eraser.erase(OPERATOR, "ACC-NEW", "DSR-2", tenant_scope=None)
    _legacy(store, "ACC-NEW")
    with pytest.raises(Conflict, match="approved"):
        apply_journal_plan(hub, store, ALICE)


def test_the_legacy_report_lists_untagged_records_and_changes_nothing(hub: Hub) -> None:
    from core.ports.eventlog import Record
    from hub.commands.migrate import legacy_report
    from tests.adversarial.test_quarantine_erasure import account, send

    send(hub, account(None))  # a session-14 quarantine entry: tagged, its digest sealed
    clean = legacy_report(hub)
    assert all(v["count"] == 0 for v in clean["read_as_default_tenant"].values()), clean
    assert clean["quarantine_clear_digests"]["count"] == 0
    # a prediction as written before session 14: no ce_tenant header
    hub.log.create_topic("hub.predictions", 1, {})
    hub.log.append("hub.predictions", [Record(value=b"{}", headers=(("ce_type", b"x"),))])
    ends = {t: hub.log.end_offsets(t) for t in ("hub.predictions", "hub.quarantine")}
    found = legacy_report(hub)["read_as_default_tenant"]["predictions"]
    assert found["count"] == 1 and found["first"] == [{"partition": 0, "offset": 0}]
    assert {t: hub.log.end_offsets(t) for t in ends} == ends  # read-only
