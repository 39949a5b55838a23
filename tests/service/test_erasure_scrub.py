"""``hub erase`` scrubs the subject's view rows in place: the views it leaves are exactly those a
full rebuild after the key's destruction writes (same digests), and no other row changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

import governance.erasure as erasure
from core.events import OutgoingEvent
from core.ports.policy import Principal
from core.ports.views import Target
from core.projection import Column, Projection, Table
from governance.erasure import scrub_plan
from hub.bootstrap import Hub
from projections.catalog import ACCOUNTS, PAYMENTS, by_name
from tests.service.test_erasure import ALICE, BOB, NOW, initiated, load, secrets, views_text

OPERATOR = Principal("ops", frozenset({"admin"}))  # a service-level caller in tests

PII_PROJECTIONS = ("accounts", "payments")


def settled(payment: str, account: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentSettled",
        value={
            "payment_id": payment,
            "account_id": account,
            "amount": "125.50",
            "currency": "EUR",
            "initiated_at": NOW,
            "settled_at": NOW,
        },
    )


def load_more(h: Hub) -> None:
    """``load`` plus a second payment of Alice and a settlement of each subject."""
    load(h)
    h.publisher.publish(
        "payments",
        [initiated("P-3", "ACC-A", ALICE), settled("P-1", "ACC-A"), settled("P-2", "ACC-B")],
        "test",
    )
    h.projections.run(list(PII_PROJECTIONS))


def all_rows(h: Hub, name: str) -> dict[str, list[dict[str, Any]]]:
    proj = by_name(name)
    store = h.projections.store(proj.store)
    return {t.name: store.rows(Target(name), t) for t in proj.tables}


def rows_of(rows: dict[str, list[dict[str, Any]]], account: str) -> dict[str, list[Any]]:
    return {t: [r for r in rs if r.get("account_id") == account] for t, rs in rows.items()}


def audited_erasure(h: Hub) -> dict[str, Any]:
    audit = [h.reader.decode(r)["value"] for r in h.log.read("hub.audit", 0, 0, 1000)]
    (entry,) = [a for a in audit if a["action"] == "subject.erase"]
    details: dict[str, Any] = json.loads(entry["details"])
    return details


def test_the_shipped_pii_projections_are_scrubbed_by_account_id() -> None:
    assert scrub_plan(ACCOUNTS) == [
        (ACCOUNTS.table("accounts_current"), "account_id", ("customer_name", "email"))
    ]
    assert scrub_plan(PAYMENTS) == [
        (PAYMENTS.table("payment_status"), "account_id", ("counterparty_name",))
    ]
    # a PII table without a column naming the subject cannot be scrubbed: rebuild instead
    orphan = Table(
        "orphan", "entity", (Column("id", "string", "key"), Column("who", "string", pii=True))
    )
    assert scrub_plan(Projection("x", "transactional", ("accounts",), (orphan,))) is None
    # nor a topic whose schemas name no data subject
    assert scrub_plan(Projection("y", "transactional", ("quotes",), (orphan,))) is None


def test_erase_scrubs_the_subjects_rows_and_equals_a_full_rebuild(hub: Hub) -> None:
    load_more(hub)
    before = {n: hub.projections.digest(n, save=False) for n in PII_PROJECTIONS}
    done = hub.eraser.erase(OPERATOR, "ACC-A", "DSR-21", tenant_scope=None)
    assert done.projections_rebuilt == ()
    scrubbed = {"accounts": {"accounts_current": 1}, "payments": {"payment_status": 2}}
    assert done.rows_scrubbed == scrubbed
    assert done.as_dict()["rows_scrubbed"] == scrubbed
    details = audited_erasure(hub)
    assert details["rows_scrubbed"] == scrubbed and details["projections_rebuilt"] == []

    scrubbed_digests = {n: hub.projections.digest(n, save=False) for n in PII_PROJECTIONS}
    assert scrubbed_digests != before  # the scrub changed the views ...
    for name in PII_PROJECTIONS:  # ... into exactly what a full replay now writes
        assert hub.projections.rebuild(name)["digests"] == scrubbed_digests[name], name
    # (queried after the rebuilds: a SQLite query leaves temporary views on its pooled
    # connection, which a later rebuild's table rename on that connection trips over)
    views = views_text(hub)
    assert not any(s in views for s in secrets(ALICE)) and "[erased]" in views
    assert BOB["email"] in views
    # the live runners keep working on the scrubbed rows
    hub.publisher.publish("payments", [initiated("P-4", "ACC-B", BOB)], "test")
    hub.projections.run(list(PII_PROJECTIONS))
    assert len(all_rows(hub, "payments")["payment_status"]) == 4


def test_erase_leaves_the_other_subjects_rows_untouched(hub: Hub) -> None:
    load_more(hub)
    before = {n: all_rows(hub, n) for n in PII_PROJECTIONS}
    hub.eraser.erase(OPERATOR, "ACC-A", "DSR-22", tenant_scope=None)
    for name in PII_PROJECTIONS:
        after = all_rows(hub, name)
        assert rows_of(after, "ACC-B") == rows_of(before[name], "ACC-B"), name
        assert any(rows_of(after, "ACC-B").values()), name
        # tables without PII columns are not touched at all, the subject's rows included
        for table in by_name(name).tables:
            if not any(c.pii for c in table.columns):
                assert after[table.name] == before[name][table.name], table.name
        # in the subject's rows only the PII columns changed, each to the marker
        for table in by_name(name).tables:
            pii = {c.name for c in table.columns if c.pii}
            old, new = (
                rows_of(before[name], "ACC-A")[table.name],
                rows_of(after, "ACC-A")[table.name],
            )
            assert len(old) == len(new)
            for o, n in zip(old, new, strict=True):
                assert {k: v for k, v in n.items() if k not in pii} == {
                    k: v for k, v in o.items() if k not in pii
                }
                assert all(n[c] == ("[erased]" if o[c] is not None else None) for c in pii)


def test_a_projection_that_cannot_be_scrubbed_is_rebuilt(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_more(hub)
    real = erasure.scrub_plan
    monkeypatch.setattr(
        erasure, "scrub_plan", lambda proj: None if proj.name == "payments" else real(proj)
    )
    done = hub.eraser.erase(OPERATOR, "ACC-A", "DSR-23", tenant_scope=None)
    assert done.projections_rebuilt == ("payments",)
    assert done.rows_scrubbed == {"accounts": {"accounts_current": 1}}
    details = audited_erasure(hub)
    assert details["projections_rebuilt"] == ["payments"]
    assert details["rows_scrubbed"] == {"accounts": {"accounts_current": 1}}
    digests = hub.projections.digest("accounts", save=False)
    assert hub.projections.rebuild("accounts")["digests"] == digests
    views = views_text(hub)
    assert not any(s in views for s in secrets(ALICE)) and BOB["email"] in views
