"""Crypto-shredding end to end: PII is ciphertext in the log, and after ``hub erase`` no view,
export, log read or quarantine entry returns the subject's PII, while the ledger still verifies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.errors import Conflict, HubError
from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.pipeline import RawRecord
from ingest.quarantine import decode_entry, entries
from ledger.verify import verify_ledger
from tests.cli_keys import admin_args

OPERATOR = Principal("ops", frozenset({"admin"}))  # a service-level caller in tests

NOW = "2026-11-25T10:00:00Z"
ALICE = {"name": "Alice Erasable", "email": "alice.erasable@example.org", "iban": "GB33BUKB2020"}
BAD_EMAIL = "alice erasable@example"  # fails the e-mail rule, whose message quotes the value
BOB = {"name": "Bob Keeper", "email": "bob.keeper@example.org", "iban": "DE89370400440532"}


def opened(account: str, who: dict[str, str]) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": account,
            "customer_name": who["name"],
            "email": who["email"],
            "date_of_birth": "1980-02-03",
            "country": "GB",
            "kyc_level": "STANDARD",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": NOW,
        },
    )


def initiated(payment: str, account: str, who: dict[str, str]) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.payments.PaymentInitiated",
        value={
            "payment_id": payment,
            "account_id": account,
            "amount": "125.50",
            "currency": "EUR",
            "counterparty_name": who["name"] + " Ltd",
            "counterparty_iban": who["iban"],
            "counterparty_country": "GB",
            "reference": None,
            "initiated_at": NOW,
        },
    )


def load(h: Hub) -> None:
    h.publisher.publish("accounts", [opened("ACC-A", ALICE), opened("ACC-B", BOB)], "test")
    h.publisher.publish(
        "payments", [initiated("P-1", "ACC-A", ALICE), initiated("P-2", "ACC-B", BOB)], "test"
    )
    # a rejected record naming Alice: its original (with her PII) goes to quarantine
    bad = {**opened("ACC-A", ALICE).value, "email": BAD_EMAIL}
    h.ingest.ingest(
        "accounts",
        [
            RawRecord(
                json.dumps(bad).encode(),
                value=bad,
                event_type="hub.accounts.AccountOpened",
                content_type="application/json",
            )
        ],
        source="test",
    )
    h.projections.run(["accounts", "payments"])


def log_text(h: Hub) -> str:
    """Everything the log returns to a reader, decoded, as one string."""
    out = []
    for topic in ("accounts", "payments"):
        for p, end in h.log.end_offsets(topic).items():
            out += [json.dumps(r, default=str) for r in h.reader.read(topic, p, 0, end + 1)]
    return "\n".join(out)


def views_text(h: Hub) -> str:
    rows = []
    for sql in ("SELECT * FROM accounts_current", "SELECT * FROM payment_status"):
        table = h.projections.query(h.policy, OPERATOR, sql, store="transactional")
        rows.append(json.dumps(table.to_pylist(), default=str))
    return "\n".join(rows)


def secrets(who: dict[str, str]) -> list[str]:
    return [who["name"], who["email"], who["iban"]]


def test_pii_is_ciphertext_in_the_log_and_plaintext_to_readers(hub: Hub) -> None:
    load(hub)
    raw = b"".join(
        (r.value or b"")
        for t in ("accounts", "payments")
        for p, end in hub.log.end_offsets(t).items()
        for r in hub.log.read(t, p, 0, end + 1)
    )
    quarantined = b"".join(r.value or b"" for r in hub.log.read("hub.quarantine", 0, 0, 100))
    for s in secrets(ALICE) + secrets(BOB):
        assert s.encode() not in raw, f"{s!r} is stored in clear"
        assert s.encode() not in quarantined, f"{s!r} is quarantined in clear"
    text, views = log_text(hub), views_text(hub)
    for s in secrets(ALICE) + secrets(BOB):
        assert s in text
    assert ALICE["email"] in views and BOB["email"] in views
    (entry,) = entries(hub.ingest)
    assert entry["reason_code"] == "rule_failed" and entry["field_path"] == "/email"
    assert BAD_EMAIL not in entry["reason"] and "***" in entry["reason"]  # redacted
    assert BAD_EMAIL.encode() not in quarantined
    assert BAD_EMAIL.encode() in decode_entry(hub.ingest, entry["offset"])["original"]
    # a wire-format copy of a stored record (ciphertext PII) is accepted and kept byte for byte
    stored = next(r for r in hub.log.scan("accounts", 0) if r.value is not None)
    copy = RawRecord(stored.value or b"", kind="wire", event_type="hub.accounts.AccountOpened")
    result = hub.ingest.ingest("accounts", [copy], source="copy")
    assert result.accepted == 1, result.as_dict()
    last = [r for r in hub.log.scan("accounts", stored.partition) if r.value is not None][-1]
    assert last.offset > stored.offset and last.value == stored.value


def test_erase_shreds_the_subject_everywhere_and_the_ledger_still_verifies(hub: Hub) -> None:
    load(hub)
    hub.ledger.sync(force_checkpoint=True)
    done = hub.eraser.erase(OPERATOR, "ACC-A", "DSR-17", tenant_scope=None)
    # every PII projection is handled: scrubbed in place (see test_erasure_scrub.py), not rebuilt
    assert done.key_existed and set(done.rows_scrubbed) == {"accounts", "payments"}
    assert done.projections_rebuilt == ()

    text, views = log_text(hub), views_text(hub)
    for s in secrets(ALICE):
        assert s not in text, f"log read still returns {s!r}"
        assert s not in views, f"a view still holds {s!r}"
    for s in secrets(BOB):  # the other subject is untouched
        assert s in text
    assert "[erased]" in text and "[erased]" in views
    # exports are query results: CSV of the same rows holds no PII of the subject
    with TestClient(create_app(hub)) as client:
        token = hub.keys.create(["admin"], principal="auditor").token
        auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        for table in ("accounts_current", "payment_status"):
            r = client.post(
                "/v1/query?format=csv",
                json={"sql": f"SELECT * FROM {table}", "store": "transactional"},
                headers=auth,
            )
            assert r.status_code == 200, r.text
            assert not any(s in r.text for s in secrets(ALICE))
            assert BOB["email"] in r.text or table == "payment_status"
    (entry,) = entries(hub.ingest)
    shown = decode_entry(hub.ingest, entry["offset"])
    assert shown["erased"] and shown["original"] == b""
    # a late event for the erased subject is refused, and its PII is not kept
    with pytest.raises(HubError) as refused:
        hub.publisher.publish("accounts", [opened("ACC-A", ALICE)], "late")
    assert refused.value.code == "key_destroyed"
    late = {**opened("ACC-A", ALICE).value}
    result = hub.ingest.ingest(
        "accounts",
        [RawRecord(json.dumps(late).encode(), value=late, event_type="hub.accounts.AccountOpened")],
        source="late",
    )
    assert result.rejected == 1 and result.rejections[0].reason_code == "key_destroyed"
    # a copy of one of the subject's stored records (wire format, ciphertext PII) is refused too
    stored = next(
        r
        for p, end in hub.log.end_offsets("accounts").items()
        for r in hub.log.read("accounts", p, 0, end + 1)
        if r.key == b"ACC-A"
    )
    assert stored.value is not None
    copy = RawRecord(stored.value, kind="wire", event_type="hub.accounts.AccountOpened")
    result = hub.ingest.ingest("accounts", [copy], source="copy")
    assert result.rejected == 1 and result.rejections[0].reason_code == "key_destroyed"
    assert ALICE["email"].encode() not in b"".join(
        r.value or b"" for r in hub.log.read("hub.quarantine", 0, 0, 100)
    )
    # the erasure is on the ledger, and the ledger verifies (its leaves hash the ciphertext)
    audit = [hub.reader.decode(r)["value"] for r in hub.log.read("hub.audit", 0, 0, 1000)]
    assert any(a["action"] == "subject.erase" and a["resource"] == "subject:ACC-A" for a in audit)
    report = verify_ledger(hub.ledger)
    assert report.ok, report.as_dict()


def test_a_held_subject_cannot_be_erased(hub: Hub) -> None:
    load(hub)
    hub.governance.place_hold("subject:ACC-A", actor="legal", matter="M-1", reason="litigation")
    with pytest.raises(Conflict) as held:
        hub.eraser.erase(OPERATOR, "ACC-A", "DSR-18", tenant_scope=None)
    assert held.value.code == "legal_hold"
    assert ALICE["email"] in log_text(hub)


def test_masked_readers_never_see_pii(hub: Hub) -> None:
    load(hub)
    with TestClient(create_app(hub)) as client:

        def auth(roles: list[str]) -> dict[str, str]:
            token = hub.keys.create(roles, principal="-".join(roles)).token
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

        analyst, officer = auth(["analyst"]), auth(["compliance_officer"])
        seen: dict[str, Any] = {}
        for who, headers in (("analyst", analyst), ("officer", officer)):
            r = client.get("/v1/topics/accounts/events?partition=0&limit=100", headers=headers)
            parts = [r.text]
            for p in range(1, 3):
                parts.append(
                    client.get(f"/v1/topics/accounts/events?partition={p}", headers=headers).text
                )
            seen[who] = "".join(parts)
        assert not any(s in seen["analyst"] for s in secrets(ALICE) + secrets(BOB))
        assert "***" in seen["analyst"]
        assert ALICE["email"] in seen["officer"] or BOB["email"] in seen["officer"]


def test_erase_cli_and_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        load(h)
        with TestClient(create_app(h)) as client:

            def auth(roles: list[str]) -> dict[str, str]:
                token = h.keys.create(roles, principal="-".join(roles)).token
                return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}

            body = {"subject": "ACC-B", "reason": "DSR-19"}
            r = client.post("/v1/erasures", json=body, headers=auth(["analyst"]))
            assert r.status_code == 403, r.text
            r = client.post("/v1/erasures", json=body, headers=auth(["compliance_officer"]))
            assert r.status_code == 201, r.text
            assert r.json()["subject"] == "ACC-B" and r.json()["actor"] == "compliance_officer"
    finally:
        h.close()
    runner = CliRunner()
    result = runner.invoke(main, [*admin_args(data), "erase", "ACC-A"])
    assert result.exit_code != 0 and "--reason" in result.output
    result = runner.invoke(main, [*admin_args(data), "erase", "ACC-A", "--reason", "DSR-20"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key_existed"] is True
    # no backup KEK configured: the erasure is not witnessed beside it, and says so
    assert "journalled in the object store only" in result.stderr
    result = runner.invoke(main, [*admin_args(data), "ledger", "verify"])
    assert result.exit_code == 0, result.output
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        text, views = log_text(h), views_text(h)
        for s in secrets(ALICE) + secrets(BOB):
            assert s not in text and s not in views
    finally:
        h.close()


def test_files_of_every_format_are_encrypted_on_the_way_in(hub: Hub, tmp_path: Path) -> None:
    """CSV and Avro files carry the plain schema; the hub encrypts their PII all the same."""
    import csv
    from datetime import UTC, date, datetime

    import fastavro

    from domain.catalog import schema_text
    from ingest.files import publish_file

    who = {"name": "Carol Filed", "email": "carol.filed@example.org", "iban": "-"}
    row = {**opened("ACC-C", who).value}
    path = tmp_path / "accounts.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    r = publish_file(hub.ingest, path, "accounts", event_type="hub.accounts.AccountOpened")
    assert r.result.accepted == 1, r.result.as_dict()
    plain = json.loads(schema_text("hub.accounts.AccountOpened"))
    datum = {
        **row,
        "account_id": "ACC-D",
        "customer_name": "Dan Avro",
        "email": "dan.avro@example.org",
        "date_of_birth": date(1980, 2, 3),
        "opened_at": datetime(2026, 11, 25, 10, tzinfo=UTC),
    }
    avro = tmp_path / "accounts.avro"
    with avro.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(plain), [datum])
    r = publish_file(hub.ingest, avro, "accounts", event_type="hub.accounts.AccountOpened")
    assert r.result.accepted == 1, r.result.as_dict()
    stored = b"".join(
        rec.value or b""
        for p, end in hub.log.end_offsets("accounts").items()
        for rec in hub.log.read("accounts", p, 0, end + 1)
    )
    for secret in ("Carol Filed", "carol.filed@example.org", "Dan Avro", "dan.avro@example.org"):
        assert secret.encode() not in stored
        assert secret in log_text(hub)


def test_a_rebuild_after_a_query_in_the_same_process(hub: Hub) -> None:
    """A view query must leave nothing on its pooled connection that blocks a later swap."""
    load(hub)
    before = views_text(hub)
    hub.projections.rebuild("accounts")  # renames the tables the query's views read
    hub.projections.rebuild("payments")
    assert views_text(hub) == before


def trade(trade_id: str, account: str) -> dict[str, Any]:
    return {
        "trade_id": trade_id,
        "account_id": account,
        "instrument": "XS0001",
        "side": "BUY",
        "quantity": "100",
        "price": "101.25",
        "currency": "EUR",
        "executed_at": NOW,
    }


def test_a_late_trade_naming_an_erased_account_is_refused(hub: Hub, tmp_path: Path) -> None:
    # (issue 11.18) after `hub erase ACC-0001` a new trade naming it was accepted (201): trades
    # name the account in account_id, which is now marked as naming the data subject.
    load(hub)
    hub.publisher.publish("trades", [OutgoingEvent(value=trade("T-0", "ACC-A"))], "desk")
    hub.eraser.erase(OPERATOR, "ACC-A", "DSR-18", tenant_scope=None)
    with TestClient(create_app(hub)) as client:
        token = hub.keys.create(["admin"], principal="desk").token
        auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        strict = client.post(
            "/v1/topics/trades/events",
            json={"events": [{"value": trade("T-1", "ACC-A")}]},
            headers=auth,
        )
        assert strict.status_code == 410, strict.json()
        assert strict.json()["reason"] == "key_destroyed"
        assert "Data subject 'ACC-A' (field account_id) was erased" in strict.json()["message"]
        lines = [json.dumps(trade("T-2", "ACC-A")), json.dumps(trade("T-3", "ACC-B"))]
        per_record = client.post(
            "/v1/ingest/trades",
            content="\n".join(lines).encode(),
            headers={**auth, "Content-Type": "application/x-ndjson"},
        ).json()
    assert (per_record["accepted"], per_record["rejected"]) == (1, 1)
    assert per_record["rejections"][0]["reason_code"] == "key_destroyed"
    # the same through a file, on the per-record and on the columnar Parquet path
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.files import publish_file

    at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    for columnar in (False, True):
        f = tmp_path / f"late-{columnar}.parquet"
        rows = [
            {**trade(f"T-4{columnar}", "ACC-A"), "quantity": Decimal(100), "executed_at": at},
            {**trade(f"T-5{columnar}", "ACC-B"), "quantity": Decimal(100), "executed_at": at},
        ]
        for row in rows:
            row["price"] = float(row["price"])  # as pandas writes it
        pq.write_table(pa.Table.from_pylist(rows), f)
        calls: list[int] = []
        real = hub.ingest.accept_one

        def counting(*a: Any, calls: list[int] = calls, real: Any = real, **k: Any) -> Any:
            calls.append(1)
            return real(*a, **k)

        hub.ingest.accept_one = counting  # type: ignore[method-assign]
        done = publish_file(hub.ingest, f, "trades", columnar=columnar)
        hub.ingest.accept_one = real  # type: ignore[method-assign]
        assert len(calls) == (1 if columnar else 2)  # columnar: only the refused row goes by row
        assert (done.result.accepted, done.result.rejected) == (1, 1), done.result
        assert done.result.rejections[0].reason_code == "key_destroyed"
    stored = {
        r.key
        for p, end in hub.log.end_offsets("trades").items()
        for r in hub.log.read("trades", p, 0, end + 1)
    }
    assert stored == {b"ACC-A", b"ACC-B"}  # only T-0, from before the erasure, names ACC-A
    kept = [r.value or b"" for r in hub.log.read("hub.quarantine", 0, 0, 100)]
    assert not any(b"T-2" in v or b"T-4" in v for v in kept)  # the late trades are not kept
    assert len(stored) == 2 and len(kept) >= 3
