"""One tenant's legal hold kept every tenant's expired view rows (session 19 red team, finding 7).

Session 18 made a tenant's hold on a shared *topic* keep only that tenant's records. Projection
retention still counted every hold whoever placed it:

- acme's officer (``legalhold.write``, limited to acme) held ``projection:payments``: the whole
  projection was skipped, globex's expired rows kept past globex's policy;
- acme's officer held any ``subject:<id>`` (even one of acme's own customers): every table
  without a subject column (``payment_history``: a row per payment event) was skipped,
  globex's expired rows kept;

in both cases under a hold globex can neither list nor release (another tenant's hold answers
404): a storage-limitation breach for globex. Every view table has a ``tenant`` column, so a
tenant's hold now keeps that tenant's rows and the cut takes the others'; the hub's own holds
(tenant ``default``) still stop the whole table, as before.
"""

from __future__ import annotations

import time

from core.ports.views import Target
from hub.bootstrap import Hub
from projections.service import projection
from tests.service.test_retention import DAY, publish_payments


def _history(hub: Hub) -> dict[str, list[str]]:
    table = projection("payments").table("payment_history")
    rows = hub.projections.store("transactional").rows(Target("payments"), table)
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["tenant"], []).append(r["payment_id"])
    return {t: sorted(ids) for t, ids in out.items()}


def _two_tenants(hub: Hub) -> int:
    now = int(time.time() * 1000)
    publish_payments(hub, now)  # acme: P0, P1 (and P0 settled) ten days old; P2, P3 an hour
    _globex_payments(hub, now)  # the same for globex
    hub.governance.set_policy("projection:payments", max_age_ms=DAY, time_column="at", actor="a")
    return now


def _globex_payments(hub: Hub, now: int) -> None:
    """``publish_payments`` (which publishes as acme) as globex."""
    publish = hub.publisher.publish

    def as_globex(topic, events, producer, tenant="default", **kw):  # type: ignore[no-untyped-def]
        return publish(topic, events, producer, tenant="globex", **kw)

    hub.publisher.publish = as_globex  # type: ignore[method-assign]
    try:
        publish_payments(hub, now)
    finally:
        hub.publisher.publish = publish  # type: ignore[method-assign]


def test_another_tenants_projection_hold_keeps_only_its_own_rows(hub: Hub) -> None:
    now = _two_tenants(hub)
    assert _history(hub) == {"acme": ["P0", "P0", "P1", "P2", "P3"]} | {
        "globex": ["P0", "P0", "P1", "P2", "P3"]
    }
    hub.governance.place_hold("projection:payments", actor="acme-officer", tenant="acme")
    hub.retention.run(now)
    got = _history(hub)
    assert got["acme"] == ["P0", "P0", "P1", "P2", "P3"]  # acme's hold keeps acme's rows
    assert got["globex"] == ["P2", "P3"], "acme's hold kept globex's expired rows"


def test_another_tenants_subject_hold_keeps_only_its_own_rows(hub: Hub) -> None:
    now = _two_tenants(hub)
    hub.governance.place_hold("subject:A-ACME-7", actor="acme-officer", tenant="acme")
    hub.retention.run(now)
    got = _history(hub)
    assert got["acme"] == ["P0", "P0", "P1", "P2", "P3"]  # acme's rows may name the subject
    assert got["globex"] == ["P2", "P3"], "acme's subject hold kept globex's expired rows"


def test_the_hubs_own_projection_hold_still_keeps_everything(hub: Hub) -> None:
    now = _two_tenants(hub)
    before = _history(hub)
    hub.governance.place_hold("projection:payments", actor="legal", tenant="default")
    report = hub.retention.run(now)
    assert report.skipped == [{"scope": "projection:payments", "reason": "under legal hold"}]
    assert _history(hub) == before
