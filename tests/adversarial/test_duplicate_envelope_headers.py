"""A record carrying an envelope header (``ce_*``, ``hub_*``, ``content-type``) twice.

Found in session 10's review: ``StoredRecord.header`` read the first copy while the views, the
ledger's side index and ``tenant_of`` read the last, so such a record could belong to one tenant
for one reader and to another for the next. Now every append refuses it (naming the header),
and a record that got past the gate anyway (planted in the store here by skipping the check; on
Kafka, written by another producer) is read as no copy: its tenant is none, the views quarantine
it, the side index holds null, and ``hub ledger verify`` names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.kafka_log.batch import check_record
from core.errors import DuplicateEnvelopeHeader, InvalidInput
from core.events import OutgoingEvent, tenant_of
from core.ports.eventlog import IdempotenceKey, Record
from core.ports.ledgerstore import AMBIGUOUS_TENANT
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ledger.verify import verify_ledger
from tests.cli_keys import admin_args
from tests.service.accounts import account_opened

NOW = "2026-11-25T10:00:00Z"


def _account(account: str, headers: dict[str, str] | None = None) -> OutgoingEvent:
    return account_opened(
        account, name="Ada", email="ada@acme.example", opened_at=NOW, key=account, headers=headers
    )


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(
            environ={"HUB_PROJECTION_AUTOSTART": "false"},
            data_dir=tmp_path / "data",
            ledger_store="sqlite",
        )
    )
    try:
        yield h
    finally:
        h.close()


def _twice(hub: Hub, account: str = "A-2") -> Record:
    """A well-formed accounts record of tenant acme with a second ``ce_tenant`` (globex)."""
    (rec,) = hub.publisher.prepare("accounts", [_account(account)], "acme-app", "acme")
    return Record(rec.value, rec.key, (*rec.headers, ("ce_tenant", b"globex")))


def _ends(hub: Hub) -> dict[int, int]:
    return hub.log.end_offsets("accounts")


def test_every_append_path_refuses_it(hub: Hub) -> None:
    before = _ends(hub)
    bad = _twice(hub)
    # the log's append (every producer: publisher, ingest, connectors, CLI, internal services)
    with pytest.raises(DuplicateEnvelopeHeader, match=r"Record 1 .*'accounts'.*'ce_tenant'"):
        hub.log.append("accounts", [Record(bad.value, bad.key, bad.headers[:-1]), bad])
    with pytest.raises(DuplicateEnvelopeHeader, match="ce_tenant"):
        hub.log.append("accounts", [bad], idempotence=IdempotenceKey("p", 0))
    with pytest.raises(DuplicateEnvelopeHeader, match="ce_tenant"), hub.log.transaction("t") as tx:
        tx.append("accounts", [bad])
    # the publisher: an internal caller's header naming the envelope reaches the same gate ...
    with pytest.raises(DuplicateEnvelopeHeader, match="ce_tenant"):
        hub.publisher.publish(
            "accounts", [_account("A-3", headers={"ce_tenant": "globex"})], "svc", "acme"
        )
    # ... and an external caller is refused earlier, naming its header (any case; over HTTP:
    # test_raw_event_reads.py::test_a_publisher_cannot_set_the_envelope_or_audit_headers)
    for name in ("ce_tenant", "HUB_action", "Content-Type"):
        with pytest.raises(InvalidInput, match=name) as err:
            hub.publisher.publish(
                "accounts", [_account("A-4", headers={name: "x"})], "app", origin="external"
            )
        assert err.value.code == "reserved_header"
    # the Kafka footprint's record check (its _prepare runs the same batch check)
    with pytest.raises(DuplicateEnvelopeHeader, match="ce_tenant"):
        check_record(bad, 0, 3, "accounts")
    assert _ends(hub) == before  # nothing stored


def test_a_planted_record_is_read_as_no_copy_and_verify_names_it(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.publisher.publish("accounts", [_account("A-1")], "acme-app", "acme")
    bad = _twice(hub)
    with monkeypatch.context() as m:  # past the gate: as a foreign Kafka producer would write
        m.setattr("adapters.sqlite_log.batch.repeats_envelope", lambda *a: False)
        (md,) = hub.log.append("accounts", [bad])
    (stored,) = hub.log.read("accounts", md.partition, md.offset, 1)
    # 1. the one reader picks no copy: a named error, and no tenant
    with pytest.raises(DuplicateEnvelopeHeader, match=rf"accounts/{md.partition}@{md.offset}"):
        stored.header("ce_tenant")
    assert tenant_of(stored) is None
    shown = hub.reader.decode(stored)  # the event route's decoder shows no copy either
    assert "ce_tenant" not in shown["headers"] and "'ce_tenant'" in shown["error"]
    # 2. the views quarantine it, with the reason and its bytes
    hub.projections.run(["accounts"])
    quarantined = [
        hub.reader.decode(r)["value"]
        for p in hub.log.end_offsets("hub.quarantine")
        for r in hub.log.read("hub.quarantine", p, 0, 100)
    ]
    mine = [q for q in quarantined if q.get("reason_code") == "duplicate_envelope_header"]
    assert len(mine) == 1 and "'ce_tenant'" in mine[0]["reason"], quarantined
    assert mine[0]["original_size"] == len(bad.value or b"")
    # 3. the ledger keeps the record (its leaf hashes every header) with no tenant: the
    # side index says ambiguous (no tenant's scope matches it; null would be hub-wide) ...
    hub.ledger.sync(force_checkpoint=True)
    tenants = {(r[2], r[3]): r[8] for rows in hub.ledger.store.iter_leaves(start=0) for r in rows}
    assert tenants[(md.partition, md.offset)] == AMBIGUOUS_TENANT
    # ... and verify names the record and the header
    report = verify_ledger(hub.ledger)
    assert not report.ok
    first = report.first
    assert first is not None and first.offset == md.offset and first.topic == "accounts"
    assert "'ce_tenant' more than once" in first.describe()
    hub.close()
    data = tmp_path / "data"
    r = CliRunner().invoke(main, [*admin_args(data), "ledger", "verify"])
    assert r.exit_code != 0
    assert "INVALID" in r.stderr and f"(accounts, {md.partition}, {md.offset})" in r.stderr
    assert "ce_tenant" in r.stderr
