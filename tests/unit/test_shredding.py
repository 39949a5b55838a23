"""Crypto-shredding of PII fields (core/pii.py) on the local keyring, and one erasure
end to end on the embedded hub: after the subject's key is destroyed no log read returns the
PII, and the audit ledger (leaves over the ciphertext) still verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.local_keystore import LocalKeyStore
from core.avro import serde
from core.avro.schema import parse_schema
from core.errors import InvalidInput, InvalidSchema
from core.events import STRATEGY_CONFIG
from core.pii import (
    ENCRYPTED,
    ERASED,
    PLAINTYPE,
    data_subject_field,
    data_subject_of,
    decrypt_pii,
    encrypt_pii,
    encrypted_schema,
    pii_fields,
    plain_schema,
)
from core.ports.eventlog import Record
from core.ports.keystore import DecryptionFailed, KeyDestroyed, KeyStore, make_aad_v1
from domain.catalog import schema_text
from hub.bootstrap import Hub

ACCOUNT = "hub.accounts.AccountOpened"
PAYMENT = "hub.payments.PaymentInitiated"


def with_subject(event_type: str, field: str) -> str:
    """The domain schema with the proposed ``hub.data_subject`` attribute on ``field``."""
    schema = json.loads(schema_text(event_type))
    for f in schema["fields"]:
        if f["name"] == field:
            f["hub.data_subject"] = True
    return json.dumps(schema)


ACCOUNT_SCHEMA = with_subject(ACCOUNT, "account_id")

NESTED = json.dumps(
    {
        "type": "record",
        "name": "Customer",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": "string", "hub.data_subject": True},
            {
                "name": "home",
                "type": {
                    "type": "record",
                    "name": "Address",
                    "fields": [
                        {"name": "line1", "type": "string", "classification": "pii"},
                        {"name": "city", "type": "string"},
                    ],
                },
            },
            {"name": "work", "type": ["null", "Address"], "default": None},
            {
                "name": "salary",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
                "classification": "pii",
            },
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        ],
    }
)


def account(**over: Any) -> dict[str, Any]:
    datum: dict[str, Any] = {
        "account_id": "acct-1",
        "customer_name": "Ada Lovelace",
        "email": "ada@example.com",
        "date_of_birth": date(1815, 12, 10),
        "country": "GB",
        "kyc_level": "ENHANCED",
        "risk_rating": "LOW",
        "base_currency": "GBP",
        "opened_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    datum.update(over)
    return datum


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[KeyStore]:
    ks = LocalKeyStore(tmp_path / "keyring.sqlite", bytes(range(32)))
    yield ks
    ks.close()


def round_trip(datum: dict[str, Any], plain: str, ks: KeyStore, topic: str = "accounts") -> Any:
    """Encrypt, Avro-encode with the log schema, decode, decrypt: what a reader gets."""
    log_schema = parse_schema(encrypted_schema(plain))
    subject = data_subject_of(datum, plain)
    enc = encrypt_pii(datum, plain, subject, ks, topic, tenant="default")
    wire = serde.encode(1, log_schema, enc)
    back = serde.decode(wire, log_schema)
    return (
        wire,
        back,
        decrypt_pii(
            back, log_schema.text, data_subject_of(back, plain), ks, topic, tenant="default"
        ),
    )


# -- schema analysis ------------------------------------------------------------------------------
def test_pii_fields_of_the_domain_schemas() -> None:
    assert pii_fields(schema_text(ACCOUNT)) == ["customer_name", "email", "date_of_birth"]
    assert pii_fields(schema_text(PAYMENT)) == ["counterparty_name", "counterparty_iban"]
    assert pii_fields(schema_text("hub.trading.TradeExecuted")) == []


def test_pii_fields_in_nested_records_and_named_references() -> None:
    assert pii_fields(NESTED) == ["home/line1", "work/line1", "salary"]
    assert data_subject_field(NESTED) == "id"


def test_encrypted_schema_turns_pii_fields_into_bytes() -> None:
    enc = json.loads(encrypted_schema(schema_text(ACCOUNT)))
    fields = {f["name"]: f for f in enc["fields"]}
    assert fields["customer_name"]["type"] == "bytes"
    assert fields["customer_name"][PLAINTYPE] == "string"
    assert fields["customer_name"][ENCRYPTED] is True
    assert fields["date_of_birth"]["type"] == ["null", "bytes"]
    assert fields["date_of_birth"]["default"] is None
    assert fields["date_of_birth"][PLAINTYPE] == ["null", {"type": "int", "logicalType": "date"}]
    assert fields["country"] == {
        "name": "country",
        "type": "string",
        "doc": "ISO 3166-1 alpha-2 country of residence.",
    }
    parse_schema(json.dumps(enc))  # valid for the hub's registry


def test_encrypted_schema_is_idempotent_and_plain_schema_inverts_it() -> None:
    for text in (schema_text(ACCOUNT), schema_text(PAYMENT), NESTED):
        enc = encrypted_schema(text)
        assert encrypted_schema(enc) == enc
        assert json.loads(plain_schema(enc)) == json.loads(text)
        assert pii_fields(enc) == pii_fields(text)


def test_pii_inside_arrays_is_refused() -> None:
    bad = {
        "type": "record",
        "name": "R",
        "fields": [
            {
                "name": "people",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "P",
                        "fields": [{"name": "n", "type": "string", "classification": "pii"}],
                    },
                },
            }
        ],
    }
    with pytest.raises(InvalidSchema, match="mark the whole field as PII"):
        encrypted_schema(bad)


def test_two_data_subject_fields_are_refused() -> None:
    schema = json.loads(ACCOUNT_SCHEMA)
    schema["fields"][4]["hub.data_subject"] = True
    with pytest.raises(InvalidSchema, match="mark exactly one"):
        pii_fields(json.dumps(schema))


# -- encryption ------------------------------------------------------------------------------------
def test_round_trip_restores_every_type(keystore: KeyStore) -> None:
    datum = account()
    wire, back, plain = round_trip(datum, ACCOUNT_SCHEMA, keystore)
    for secret in (b"Ada Lovelace", b"ada@example.com"):
        assert secret not in wire
    assert isinstance(back["customer_name"], bytes)
    assert back["country"] == "GB"
    assert plain == datum


def test_null_stays_null_and_unencrypted(keystore: KeyStore) -> None:
    _, back, plain = round_trip(account(date_of_birth=None), ACCOUNT_SCHEMA, keystore)
    assert back["date_of_birth"] is None
    assert plain["date_of_birth"] is None


def test_nested_and_decimal_fields(keystore: KeyStore) -> None:
    datum = {
        "id": "c-1",
        "home": {"line1": "1 Main St", "city": "Leeds"},
        "work": {"line1": "2 Mill Rd", "city": "York"},
        "salary": Decimal("1234.50"),
        "tags": ["x"],
    }
    wire, back, plain = round_trip(datum, NESTED, keystore, topic="customers")
    assert b"Main St" not in wire and b"Mill Rd" not in wire
    assert back["home"]["city"] == "Leeds"
    assert plain == datum
    assert datum["home"]["line1"] == "1 Main St"  # the input was not changed


def test_ciphertext_cannot_move_between_fields_or_topics(keystore: KeyStore) -> None:
    log_schema = encrypted_schema(ACCOUNT_SCHEMA)
    enc = encrypt_pii(account(), ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="default")
    swapped = dict(enc, email=enc["customer_name"])
    with pytest.raises(DecryptionFailed):
        decrypt_pii(swapped, log_schema, "acct-1", keystore, "accounts", tenant="default")
    with pytest.raises(DecryptionFailed):
        decrypt_pii(enc, log_schema, "acct-1", keystore, "other-topic", tenant="default")
    with pytest.raises(DecryptionFailed):  # another tenant's record, even as a legacy read
        decrypt_pii(enc, log_schema, "acct-1", keystore, "accounts", tenant="t2", legacy=True)
    keystore.for_tenant("default").ensure_key("acct-2")
    with pytest.raises(DecryptionFailed):
        decrypt_pii(enc, log_schema, "acct-2", keystore, "accounts", tenant="default")


def test_legacy_v1_records_open_only_as_stored_records(
    keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record sealed before the tenant was bound (v1 AAD) opens with ``legacy`` (every PII
    field, the later ones tried v1 first) and for no tenant without it; a v2 record opens the
    same either way, and never under another tenant."""
    import core.pii as pii

    log_schema = encrypted_schema(ACCOUNT_SCHEMA)
    new = encrypt_pii(account(), ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="acme")
    with monkeypatch.context() as m:  # how the hub sealed before
        m.setattr(pii, "make_aad", lambda t, f, s, _tenant: make_aad_v1(t, f, s))
        # and under the subject's hub-wide key, as every value was sealed before s18
        m.setattr(keystore, "for_tenant", lambda _tenant: keystore, raising=False)
        old = encrypt_pii(account(), ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="x")
    want = account()
    for tenant in ("acme", "globex"):
        got = decrypt_pii(
            old, log_schema, "acct-1", keystore, "accounts", tenant=tenant, legacy=True
        )
        assert got == want
        with pytest.raises(DecryptionFailed):
            decrypt_pii(old, log_schema, "acct-1", keystore, "accounts", tenant=tenant)
    for legacy in (False, True):
        got = decrypt_pii(
            new, log_schema, "acct-1", keystore, "accounts", tenant="acme", legacy=legacy
        )
        assert got == want
        with pytest.raises(DecryptionFailed):
            decrypt_pii(
                new, log_schema, "acct-1", keystore, "accounts", tenant="globex", legacy=legacy
            )
    # a record mixing one v1 field into a v2 one still opens field by field (legacy) ...
    mixed = dict(new, email=old["email"])
    assert (
        decrypt_pii(mixed, log_schema, "acct-1", keystore, "accounts", tenant="acme", legacy=True)
        == want
    )
    # ... and a field of neither form fails, also after a v1 one opened
    bad = dict(old, email=new["customer_name"])
    with pytest.raises(DecryptionFailed):
        decrypt_pii(bad, log_schema, "acct-1", keystore, "accounts", tenant="acme", legacy=True)


def test_erased_subject_reads_as_markers(keystore: KeyStore) -> None:
    log_schema = encrypted_schema(ACCOUNT_SCHEMA)
    enc = encrypt_pii(account(), ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="default")
    other = encrypt_pii(
        account(account_id="acct-2", customer_name="Bob"),
        ACCOUNT_SCHEMA,
        "acct-2",
        keystore,
        "a",
        tenant="default",
    )
    keystore.for_tenant("default").destroy("acct-1")
    out = decrypt_pii(enc, log_schema, "acct-1", keystore, "accounts", tenant="default")
    assert out["customer_name"] == ERASED
    assert out["email"] == ERASED
    assert out["date_of_birth"] is None  # a date cannot hold the marker
    assert out["country"] == "GB" and out["account_id"] == "acct-1"
    assert (
        decrypt_pii(other, log_schema, "acct-2", keystore, "a", tenant="default")["customer_name"]
        == "Bob"
    )


def test_late_event_for_an_erased_subject_is_refused(keystore: KeyStore) -> None:
    keystore.for_tenant("default").destroy("acct-1")
    with pytest.raises(KeyDestroyed):
        encrypt_pii(account(), ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="default")


def test_pii_without_a_data_subject_is_refused(keystore: KeyStore) -> None:
    with pytest.raises(InvalidInput, match="names no data subject"):
        encrypt_pii(account(), ACCOUNT_SCHEMA, None, keystore, "accounts", tenant="default")
    # No PII value present: nothing to encrypt, no subject needed.
    datum = {"id": "", "home": {"line1": None}, "work": None, "salary": None, "tags": []}
    assert encrypt_pii(datum, NESTED, None, keystore, "t", tenant="default")["work"] is None


def test_records_written_in_plaintext_pass_through(keystore: KeyStore) -> None:
    datum = account()
    assert (
        decrypt_pii(datum, ACCOUNT_SCHEMA, "acct-1", keystore, "accounts", tenant="default")
        == datum
    )


# -- end to end on the embedded hub --------------------------------------------------------------
def test_erasure_end_to_end(hub: Hub) -> None:
    """Publish encrypted, erase, then: no log read returns the PII and the ledger verifies."""
    from ledger.verify import verify_ledger

    topic = "test.accounts"
    hub.log.create_topic(topic, 1, {STRATEGY_CONFIG: "topic"})
    sv = hub.registry.register(f"{topic}-value", encrypted_schema(ACCOUNT_SCHEMA))
    log_schema = hub.registry.parsed(sv.id)
    people = [
        account(account_id="acct-1"),
        account(account_id="acct-2", customer_name="Grace Hopper", email="grace@example.com"),
    ]
    records = []
    for datum in people:
        subject = data_subject_of(datum, log_schema.text)
        enc = encrypt_pii(datum, log_schema.text, subject, hub.keystore, topic, tenant="default")
        records.append(Record(value=serde.encode(sv.id, log_schema, enc), key=subject.encode()))
    hub.log.append(topic, records)
    hub.ledger.sync(force_checkpoint=True)

    def read_all() -> list[dict[str, Any]]:
        out = []
        for rec in hub.log.scan(topic, 0):
            decoded = hub.reader.decode(rec)
            writer = hub.registry.parsed(decoded["schema_id"])
            datum = serde.decode(rec.value or b"", writer)
            subject = data_subject_of(datum, writer.text)
            plain = decrypt_pii(datum, writer.text, subject, hub.keystore, topic, tenant="default")
            out.append(serde.to_json(plain))
        return out

    before = read_all()
    assert [r["customer_name"] for r in before] == ["Ada Lovelace", "Grace Hopper"]

    hub.keystore.for_tenant("default").destroy("acct-1")
    hub.ledger.record_action(
        "operator", "subject.erase", "subject:acct-1", details={"keys_destroyed": True}
    )
    hub.ledger.sync(force_checkpoint=True)

    after = read_all()
    assert after[0]["customer_name"] == ERASED and after[0]["email"] == ERASED
    assert after[0]["date_of_birth"] is None
    assert after[1]["customer_name"] == "Grace Hopper"
    raw = b"".join(r.value or b"" for r in hub.log.scan(topic, 0))
    for secret in (b"Ada Lovelace", b"ada@example.com", b"Grace Hopper"):
        assert secret not in raw
    report = verify_ledger(hub.ledger)
    assert report.ok, report.as_dict()
    erasures = [e for e in hub.ledger.entries() if e.get("action") == "subject.erase"]
    assert len(erasures) == 1
