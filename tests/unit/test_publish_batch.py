"""``Publisher.prepare`` (per batch) gives byte for byte what ``prepare_reference`` (record at a
time) gives, on random batches; and a bad record fails the batch naming it as the reference does.

Fresh event ids and receipt times differ by nature (random bits, the clock): where an event
brings neither, the test checks their form instead of their bytes."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.sqlite_log import SqliteEventLog
from core.errors import HubError
from core.events import KEY_FIELD_CONFIG, STRATEGY_CONFIG, OutgoingEvent
from core.metrics import Metrics
from core.ports.eventlog import Record
from domain import envelope as env
from ingest.publish import Publisher
from registry.service import SchemaRegistry


def _schema(name: str, *fields: dict[str, object]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.hub", "fields": fields})


TRADE = _schema(
    "Trade",
    {"name": "id", "type": "string"},
    {"name": "qty", "type": "int"},
    {
        "name": "px",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
    },
    {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    {"name": "ok", "type": "boolean", "default": True},
    {"name": "ratio", "type": "double", "default": 0.0},
)
QUOTE = _schema(
    "Quote",
    {"name": "id", "type": "string", "classification": "confidential"},
    {"name": "bid", "type": "double"},
    {"name": "attrs", "type": {"type": "map", "values": "long"}, "default": {}},
)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.mixed", 2, {STRATEGY_CONFIG: "topic_record", KEY_FIELD_CONFIG: "id"})
    registry.register("t.mixed-com.hub.Trade", TRADE)
    registry.register("t.mixed-com.hub.Quote", QUOTE)
    yield Publisher(log, registry, 4096, Metrics())
    log.close()


def _event(rng: random.Random, i: int) -> OutgoingEvent:
    if rng.random() < 0.6:
        value: dict[str, Any] = {
            "id": f"T{i}-{'é' * rng.randrange(3)}",
            "qty": rng.randrange(-(2**31), 2**31),
            "px": f"{rng.randrange(-(10**9), 10**9)}.{rng.randrange(10**4):04d}",
            "side": rng.choice(["BUY", "SELL"]),
            "at": rng.choice(["2026-12-02T08:00:00.123456Z", rng.randrange(0, 2**52)]),
        }
        if rng.random() < 0.5:
            value["note"] = rng.choice([None, "", "x" * rng.randrange(200)])
        if rng.random() < 0.5:
            value["tags"] = [str(rng.random()) for _ in range(rng.randrange(4))]
            value["ok"] = rng.random() < 0.5
            value["ratio"] = rng.uniform(-1e9, 1e9)
        event_type = "com.hub.Trade"
    else:
        value = {
            "id": f"Q{i}",
            "bid": rng.uniform(0, 1000),
            "attrs": {f"k{j}": rng.randrange(-(2**63), 2**63) for j in range(rng.randrange(3))},
        }
        event_type = "com.hub.Quote"
    return OutgoingEvent(
        value=value,
        event_type=event_type,
        key=rng.choice([None, f"key-{i}"]),
        event_id=rng.choice([None, str(uuid.uuid4())]),
        occurred_at=rng.choice(
            [None, "2026-01-02T10:00:00Z", f"2026-03-0{1 + i % 9}T01:02:03.{i % 999:03d}+02:00"]
        ),
        correlation_id=rng.choice(["", f"corr-{i}"]),
        causation_id=rng.choice(["", f"cause-{i}"]),
        headers=rng.choice([{}, {"x-source": f"s{i}", "x-ü": "ü"}]),
    )


def _masked(ev: OutgoingEvent, r: Record) -> Record:
    """The record with the header values the clock or the random bits chose replaced."""
    fresh = {env.H_ID} if not ev.event_id else set()
    if not ev.event_id and not ev.correlation_id:
        fresh.add(env.H_CORRELATION)
    if not ev.occurred_at:
        fresh.add(env.H_TIME)
    headers = tuple((k, b"?" if k in fresh else v) for k, v in r.headers)
    return Record(value=r.value, key=r.key, headers=headers)


@pytest.mark.parametrize("seed", range(6))
def test_batch_path_matches_the_reference_byte_for_byte(publisher: Publisher, seed: int) -> None:
    rng = random.Random(seed)
    events = [_event(rng, i) for i in range(rng.randrange(1, 300))]
    # the batch path itself (``prepare`` would fall back to the reference on any failure)
    fast = publisher._prepare_batch("t.mixed", events, "svc-ü", "acme")
    ref = publisher.prepare_reference("t.mixed", events, producer="svc-ü", tenant="acme")
    assert len(fast) == len(ref) == len(events)
    for i, (ev, a, b) in enumerate(zip(events, fast, ref, strict=True)):
        assert _masked(ev, a) == _masked(ev, b), f"record {i} differs"
        ids = {k: v for k, v in a.headers if k in (env.H_ID, env.H_CORRELATION, env.H_TIME)}
        if not ev.event_id:
            assert uuid.UUID(ids[env.H_ID].decode()).version == 7
            if not ev.correlation_id:
                assert ids[env.H_CORRELATION] == ids[env.H_ID]
        if not ev.occurred_at:
            env.parse_rfc3339(ids[env.H_TIME].decode())
    fresh = [
        dict(r.headers)[env.H_ID] for ev, r in zip(events, fast, strict=True) if not ev.event_id
    ]
    assert len(set(fresh)) == len(fresh)
    assert fresh == sorted(fresh)  # UUIDv7 of one batch increase


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"qty": "many"}, "qty"),
        ({"side": "HOLD"}, "HOLD"),
        ({"extra": 1}, "extra"),
        ({"note": "x" * 5000}, "HUB_MAX_RECORD_BYTES"),
    ],
)
def test_a_bad_record_fails_the_batch_as_the_reference_does(
    publisher: Publisher, bad: dict[str, Any], needle: str
) -> None:
    rng = random.Random(1)
    events = [_event(rng, i) for i in range(40)]
    trades = [i for i, ev in enumerate(events) if ev.event_type == "com.hub.Trade"]
    k = trades[len(trades) // 2]
    events[k] = OutgoingEvent(
        value={**events[k].value, **bad}, event_type="com.hub.Trade", event_id=events[k].event_id
    )
    with pytest.raises(HubError) as fast:
        publisher.prepare("t.mixed", events, producer="p")
    with pytest.raises(HubError) as ref:
        publisher.prepare_reference("t.mixed", events, producer="p")
    assert fast.value.message == ref.value.message
    assert fast.value.code == ref.value.code
    assert fast.value.message.startswith(f"Record {k}: ")
    assert needle in fast.value.message


@pytest.mark.parametrize(
    "value",
    [
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0},
        {"id": "a", "qty": True, "px": "1.5", "side": "BUY", "at": 0},  # a bool is no int
        {"id": "a", "qty": 2**31, "px": "1.5", "side": "BUY", "at": 0},  # out of range
        {"id": 7, "qty": 1, "px": "1.5", "side": "BUY", "at": 0},
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0, "ratio": 3},  # int -> float
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0, "ok": 1},
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY"},  # required field missing
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0, "zz": 1},  # unknown field
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0, "note": 5},  # not a string
        {"id": "a", "qty": 1, "px": "1.5", "side": "BUY", "at": 0, "note": None},
        {"id": "a", "qty": 1, "px": "1.5", "side": "HOLD", "at": 0},  # not a symbol
        {"id": "a", "qty": 1, "px": "1.23456", "side": "BUY", "at": 0},  # scale 4
        {"id": "a", "qty": 1, "px": 2.5, "side": "BUY", "at": "2026-01-01T00:00:00Z"},
        ["not", "a", "record"],
    ],
)
def test_json_converter_returns_or_refuses_what_from_json_does(
    publisher: Publisher, value: Any
) -> None:
    from core.avro import serde

    schema = publisher.targets.resolve("t.mixed", "com.hub.Trade").plain.parsed
    convert = serde.json_converter(schema)
    try:
        expected = serde.from_json(value, schema)
    except HubError:
        with pytest.raises(HubError):
            convert(value)
        return
    got = convert(value)
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "px",
    [
        "1.5000",
        "1.5",
        "-0.0000",
        "0",
        "12345678901234.5678",
        "123456789012345.5678",
        "1.23456",
        "1e-4",
        "1E+2",
        " 2.0000 ",
        "NaN",
        "Infinity",
        "abc",
        "",
        3,
        2.5,
        True,
        None,
    ],
)
@pytest.mark.parametrize(
    "at",
    [
        "2026-12-02T08:00:00.123456Z",
        "2026-03-01T01:02:03.5+02:00",
        "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "yesterday",
        0,
        -1,
        2**63,
        True,
        1.5,
    ],
)
def test_decimal_and_timestamp_converters_give_exactly_what_from_json_gives(
    publisher: Publisher, px: Any, at: Any
) -> None:
    """The converters' fast paths (decimal text at the schema's scale, RFC 3339 text) return the
    very value ``from_json`` returns: same exponent (so the same Avro bytes), same time zone."""
    from core.avro import serde

    schema = publisher.targets.resolve("t.mixed", "com.hub.Trade").plain.parsed
    convert = serde.json_converter(schema)
    value = {"id": "a", "qty": 1, "px": px, "side": "BUY", "at": at}
    try:
        expected = serde.from_json(value, schema)
    except HubError:
        with pytest.raises(HubError):
            convert(value)
        return
    got = convert(value)
    assert repr(got) == repr(expected)  # Decimal('1.5000') and Decimal('1.5') differ here
    assert serde.encode(1, publisher.targets.resolve("t.mixed", "com.hub.Trade").schema, got) == (
        serde.encode(1, publisher.targets.resolve("t.mixed", "com.hub.Trade").schema, expected)
    )


PERSON = _schema(
    "Person",
    {"name": "account_id", "type": "string", "hub.data_subject": True},
    {"name": "name", "type": "string", "classification": "pii"},
    {"name": "iban", "type": ["null", "string"], "classification": "pii", "default": None},
    {
        "name": "born",
        "type": ["null", {"type": "int", "logicalType": "date"}],
        "classification": "pii",
        "default": None,
    },
    {
        "name": "amount",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
    },
)


PERSON_TEXT = _schema(
    "Person",
    {"name": "account_id", "type": "string", "hub.data_subject": True},
    {"name": "name", "type": "string", "classification": "pii"},
    {"name": "iban", "type": ["null", "string"], "classification": "pii", "default": None},
    {
        "name": "amount",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
    },
)


@pytest.mark.parametrize("columnar", [False, True])
def test_pii_sealed_per_batch_decrypts_to_what_the_reference_seals(
    tmp_path: Any, columnar: bool
) -> None:
    """PII on the batch path: one sealer per subject and batch (``KeyStore.sealer``; column-wise:
    one ``KeyStore.seal_many`` for every PII column). Each record decodes and decrypts to exactly
    the reference's plaintext, every ciphertext has its own nonce, the bytes outside the PII
    fields are the reference's, and a ciphertext moved to another subject or field fails
    authentication."""
    from adapters.local_keystore import LocalKeyStore
    from core.avro import serde
    from core.pii import PiiCodec, encrypted_schema
    from core.ports.keystore import DecryptionFailed, make_aad
    from ingest.jsoncols import ColumnPlan

    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.people", 1, {STRATEGY_CONFIG: "topic_record"})
    schema = PERSON_TEXT if columnar else PERSON  # a date PII field: record by record
    registry.register("t.people-com.hub.Person", encrypted_schema(schema))  # the log form
    keystore = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    publisher = Publisher(log, registry, 4096, Metrics(), keystore)
    rng = random.Random(7)
    events = [
        OutgoingEvent(
            value={
                "account_id": f"A{rng.randrange(5)}",
                "name": rng.choice(["Zoë", "", "x" * rng.randrange(300)]),
                **(
                    {"iban": rng.choice([None, "DE89370400440532013000"])}
                    if i % 3 or columnar
                    else {}
                ),
                **({"born": rng.choice([None, 0, 20000])} if i % 2 and not columnar else {}),
                "amount": f"{rng.randrange(-(10**6), 10**6)}.{rng.randrange(100):02d}",
            },
            event_type="com.hub.Person",
            event_id=str(uuid.uuid4()),
            occurred_at="2026-01-02T10:00:00Z",
        )
        for i in range(200)
    ]
    fast = publisher._prepare_batch("t.people", events, "svc", "acme")
    ref = publisher.prepare_reference("t.people", events, producer="svc", tenant="acme")
    target = publisher.targets.resolve("t.people", "com.hub.Person")
    plan = ColumnPlan.build(target)
    assert (plan is not None) == columnar
    if plan is not None:  # the batch above went column-wise
        assert (
            plan.encode([ev.value for ev in events], lambda cols: [c[2] for c in cols]) is not None
        )
    codec = PiiCodec(keystore)
    pii = {"name", "iban", "born"} if not columnar else {"name", "iban"}
    nonces: set[bytes] = set()
    for a, b in zip(fast, ref, strict=True):
        assert a.headers == b.headers and a.key == b.key
        assert a.value is not None and b.value is not None
        da = serde.decode(a.value, target.schema)
        db = serde.decode(b.value, target.schema)
        assert {k: v for k, v in da.items() if k not in pii} == {
            k: v for k, v in db.items() if k not in pii
        }
        for name in pii:
            assert (da[name] is None) == (db[name] is None)
            if da[name] is not None:
                assert len(da[name]) == len(db[name])  # same envelope, other nonce
                nonces.add(da[name][5:17])
        assert codec.decrypt(da, target.schema.text, "t.people", tenant="acme") == codec.decrypt(
            db, target.schema.text, "t.people", tenant="acme"
        )
    assert len(nonces) == sum(
        1 for r in fast for n in pii if serde.decode(r.value or b"", target.schema)[n] is not None
    )
    sealed = serde.decode(fast[0].value or b"", target.schema)
    subject = sealed["account_id"]
    other = min({ev.value["account_id"] for ev in events} - {subject})  # has a key too
    for s, field in ((other, "name"), (subject, "iban")):
        with pytest.raises(DecryptionFailed):
            keystore.for_tenant("acme").decrypt(
                s, sealed["name"], make_aad("t.people", field, s, "acme")
            )
    with pytest.raises(DecryptionFailed):  # the tenant the batch was published for is bound
        keystore.for_tenant("acme").decrypt(
            subject, sealed["name"], make_aad("t.people", "name", subject, "globex")
        )
    keystore.close()
    log.close()


def test_column_path_seals_the_reference_bytes_given_the_same_nonces(tmp_path: Any) -> None:
    """Every PII ciphertext of the column path (native string encoding, the kept AADs, one
    ``seal_many``) is byte for byte what the reference seals with its nonce: fastavro's
    encoding of the value, AES-256-GCM under ``bind_subject(subject, header, make_aad(topic,
    field, subject, tenant))`` (v2, the batch's tenant), with ``cryptography``'s AESGCM; with
    those ciphertexts the whole Avro value is the reference's, and the keys and envelope
    headers are the reference's. Cold and warm AAD cache, two tenants; then an erased subject
    refuses the batch."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from adapters.local_keystore import LocalKeyStore
    from core.avro import serde
    from core.pii import encrypted_schema
    from core.pii import plan as pii_plan
    from core.ports.eventlog import ColumnBatch
    from core.ports.keystore import KeyDestroyed, bind_subject, make_aad, scoped_subject

    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    log.create_topic("t.people", 1, {STRATEGY_CONFIG: "topic_record", KEY_FIELD_CONFIG: "name"})
    registry.register("t.people-com.hub.Person", encrypted_schema(PERSON_TEXT))
    keystore = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    publisher = Publisher(log, registry, 65536, Metrics(), keystore)
    target = publisher.targets.resolve("t.people", "com.hub.Person")
    fields = {f.path[0]: f for f in pii_plan(target.schema.text).fields}
    rng = random.Random(11)
    names = ["Zoë", "", "𝄞" * 40, "x" * 8191, "y" * 9000, "a\u0000b", "Person 7"]

    def batch(n: int) -> list[OutgoingEvent]:
        return [
            OutgoingEvent(
                value={
                    "account_id": f"A{rng.randrange(6)}",
                    "name": rng.choice(names),
                    "iban": rng.choice([None, "DE89370400440532013000", "é"]),
                    "amount": f"{rng.randrange(-(10**6), 10**6)}.{rng.randrange(100):02d}",
                },
                event_type="com.hub.Person",
                event_id=str(uuid.uuid4()),
                occurred_at="2026-01-02T10:00:00.5Z",
            )
            for _ in range(n)
        ]

    for tenant in ("acme", "acme", "globex"):  # the second acme batch: the AADs kept
        events = batch(150)
        found = publisher._prepare_for_append("t.people", events, "svc", tenant)
        assert isinstance(found, ColumnBatch)
        fast = found.records()
        ref = publisher.prepare_reference("t.people", events, producer="svc", tenant=tenant)
        for a, b, ev in zip(fast, ref, events, strict=True):
            assert a.key == b.key and a.headers == b.headers
            datum = serde.decode(b.value or b"", target.schema)
            sealed = serde.decode(a.value or b"", target.schema)
            s = ev.value["account_id"]
            for name, field in fields.items():
                plain = ev.value[name]
                if plain is None:
                    assert sealed[name] is None
                    continue
                key_id = scoped_subject(tenant, s)  # s18: the tenant's own key of s
                version, key = keystore._newest(key_id)
                header = bytes([1]) + version.to_bytes(4, "big")
                nonce = sealed[name][5:17]
                aad = bind_subject(key_id, header, make_aad("t.people", name, s, tenant))
                expected = header + nonce + AESGCM(key.raw).encrypt(nonce, field.encode(plain), aad)
                assert sealed[name] == expected
                datum[name] = expected
            assert a.value == serde.encode(target.schema_id, target.schema, datum)
    keystore.for_tenant("acme").destroy("A3")  # s18: acme's A3
    events = batch(40)
    events[17].value["account_id"] = "A3"
    with pytest.raises(KeyDestroyed):
        publisher._prepare_for_append("t.people", events, "svc", "acme")
    keystore.close()
    log.close()


@pytest.mark.parametrize("bound", [5, 16_384])  # cleared while in use, or never
def test_pii_aads_kept_across_batches_stay_bound_to_their_topic(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    """The column path keeps each (topic, field, subject) AAD across batches
    (``Publisher._aads``): the same subjects and fields published to two topics, batch after
    batch and past the cache's bound, each decrypt under their own topic's AAD only."""
    import ingest.publish as publish_module
    from adapters.local_keystore import LocalKeyStore
    from core.avro import serde
    from core.pii import encrypted_schema
    from core.ports.keystore import DecryptionFailed, make_aad

    monkeypatch.setattr(publish_module, "_AAD_CACHE_SIZE", bound)
    log = SqliteEventLog(":memory:")
    registry = SchemaRegistry(log)
    keystore = LocalKeyStore(tmp_path / "keyring.sqlite", b"k" * 32)
    publisher = Publisher(log, registry, 4096, Metrics(), keystore)
    topics = ("t.people", "t.people2")
    for topic in topics:
        log.create_topic(topic, 1, {STRATEGY_CONFIG: "topic_record"})
        registry.register(f"{topic}-com.hub.Person", encrypted_schema(PERSON_TEXT))
    target = publisher.targets.resolve("t.people", "com.hub.Person")
    events = [
        OutgoingEvent(
            value={"account_id": f"A{i % 4}", "name": f"n{i}", "iban": "DE89", "amount": "1.00"},
            event_type="com.hub.Person",
        )
        for i in range(12)
    ]
    for _ in range(2):
        for topic, other in (topics, topics[::-1]):
            for i, r in enumerate(publisher._prepare_batch(topic, events, "svc", "acme")):
                datum = serde.decode(r.value or b"", target.schema)
                s = datum["account_id"]
                assert s == f"A{i % 4}"
                name = f"n{i}".encode()  # Avro: a string is its length (zigzag), then UTF-8;
                iban = b"\x02\x08DE89"  # a nullable one its union branch first
                for field, plain in (("name", bytes([2 * len(name)]) + name), ("iban", iban)):
                    acme = keystore.for_tenant("acme")  # s18: the tenant's own key
                    own = acme.decrypt(s, datum[field], make_aad(topic, field, s, "acme"))
                    assert own == plain
                    with pytest.raises(DecryptionFailed):
                        acme.decrypt(s, datum[field], make_aad(other, field, s, "acme"))
    # the kept AADs are per tenant too: the same subjects published for another tenant right
    # after open under that tenant only
    for r in publisher._prepare_batch("t.people", events, "svc", "globex"):
        datum = serde.decode(r.value or b"", target.schema)
        s = datum["account_id"]
        globex = keystore.for_tenant("globex")
        assert globex.decrypt(s, datum["name"], make_aad("t.people", "name", s, "globex"))
        with pytest.raises(DecryptionFailed):
            globex.decrypt(s, datum["name"], make_aad("t.people", "name", s, "acme"))
    assert 0 < publisher._aads_held <= bound
    assert sum(map(len, publisher._aads.values())) <= bound
    long_subject = "L" * 300  # over _AAD_CACHE_SUBJECT: sealed, decrypted, never kept
    one = OutgoingEvent(
        value={"account_id": long_subject, "name": "x", "iban": None, "amount": "1.00"},
        event_type="com.hub.Person",
    )
    (r,) = publisher._prepare_batch("t.people", [one], "svc", "acme")
    datum = serde.decode(r.value or b"", target.schema)
    aad = make_aad("t.people", "name", long_subject, "acme")
    assert keystore.for_tenant("acme").decrypt(long_subject, datum["name"], aad) == b"\x02x"
    assert not any(long_subject in kept for kept in publisher._aads.values())
    keystore.close()
    log.close()


def _uniform_trades(rng: random.Random, n: int) -> list[OutgoingEvent]:
    """Trades whose values all have the same keys and JSON forms (the column-wise case)."""
    at_text = rng.random() < 0.5
    px_int = rng.random() < 0.2  # every px a JSON integer
    optional = rng.sample(["note", "tags", "ok", "ratio"], rng.randrange(5))
    out = []
    for i in range(n):
        value: dict[str, Any] = {
            "id": f"T{i}-{'é' * rng.randrange(3)}",
            "qty": rng.randrange(-(2**31), 2**31),
            "px": rng.randrange(-(10**14) + 1, 10**14)
            if px_int
            else rng.choice(
                [
                    "0.0000",
                    "-0.0000",
                    "0",
                    "7",
                    "-3.5",
                    "12.25",
                    "99999999999999.999",
                    f"{rng.randrange(-(10**9), 10**9)}.{rng.randrange(10**4):04d}",
                    f"{rng.randrange(-(10**9), 10**9)}.{rng.randrange(10):d}",
                ]
            ),
            "side": rng.choice(["BUY", "SELL"]),
            "at": rng.choice(
                [
                    "2026-12-02T08:00:00.123456Z",
                    "1969-12-31T23:59:59.5-01:30",
                    f"20{rng.randrange(10, 99)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"
                    f"T1{rng.randrange(10)}:00:0{rng.randrange(10)}+05:45",
                ]
            )
            if at_text
            else rng.randrange(-(2**52), 2**52),  # inside datetime range: the encoder is exact
        }
        if "note" in optional:
            value["note"] = rng.choice([None, "", "x" * rng.randrange(200)])
        if "ok" in optional:
            value["ok"] = rng.random() < 0.5
        if "ratio" in optional:
            value["ratio"] = rng.uniform(-1e9, 1e9)
        out.append(
            OutgoingEvent(
                value=value,
                event_type="com.hub.Trade",
                key=rng.choice([None, f"key-{i}"]),
                event_id=str(uuid.uuid4()),
                occurred_at="2026-01-02T10:00:00Z",
                correlation_id=rng.choice(["", f"corr-{i}"]),
                headers=rng.choice([{}, {"x-source": f"s{i}"}]),
            )
        )
    return out


@pytest.mark.parametrize("seed", range(8))
def test_column_wise_values_match_the_reference_byte_for_byte(
    publisher: Publisher, seed: int
) -> None:
    """One event type, values of one form: the batch goes column-wise (``ingest.jsoncols``)
    and gives the reference's bytes; the ``tags`` array (not columnar) or one odd value sends
    the batch record by record, with the same bytes."""
    from ingest.jsoncols import ColumnPlan

    rng = random.Random(seed)
    events = _uniform_trades(rng, rng.randrange(1, 400))
    target = publisher.targets.resolve("t.mixed", "com.hub.Trade")
    plan = ColumnPlan.build(target)
    assert plan is not None
    values = [ev.value for ev in events]
    assert plan.encode(values, None) is not None  # this batch takes the column-wise path
    fast = publisher._prepare_batch("t.mixed", events, "svc", "acme")
    ref = publisher.prepare_reference("t.mixed", events, producer="svc", tenant="acme")
    assert fast == ref
    # one odd value anywhere: the column-wise path declines, the record path gives the bytes
    k = rng.randrange(len(events))
    odd: dict[str, Any] = [  # one per seed
        {"px": "1.50000"},  # accepted by from_json (1.5000), not the column-wise form
        {"px": 2.5},
        {"at": "2026-01-01T00:00:00"},  # no offset
        {"qty": True},
        {"side": "HOLD"},
        {"tags": ["a"]},
        {"at": "2026-02-30T00:00:00Z"},
        {"qty": 2**31},
    ][seed % 8]
    values[k] = {**values[k], **odd}
    assert plan.encode(values, None) is None
    events[k] = OutgoingEvent(
        value=values[k],
        event_type="com.hub.Trade",
        event_id="e",
        occurred_at="2026-01-02T10:00:00Z",
    )
    try:
        ref = publisher.prepare_reference("t.mixed", events, producer="svc", tenant="acme")
    except HubError:
        return  # a bad record: the batch path fails too and prepare names it
    assert publisher._prepare_batch("t.mixed", events, "svc", "acme") == ref


def test_values_whose_keys_differ_from_the_first_ones_go_record_by_record(
    publisher: Publisher,
) -> None:
    """``ColumnPlan.encode`` takes a batch only when every value is a dict with exactly the
    first value's keys (in any order): one key swapped for another (same count), one missing,
    one extra, or a dict subclass sends the batch record by record (None)."""
    from ingest.jsoncols import ColumnPlan

    events = _uniform_trades(random.Random(5), 50)
    plan = ColumnPlan.build(publisher.targets.resolve("t.mixed", "com.hub.Trade"))
    assert plan is not None
    values = [ev.value for ev in events]
    first = values[0]
    assert plan.encode(values, None) is not None
    reordered = [dict(reversed(list(v.items()))) if i % 2 else v for i, v in enumerate(values)]
    assert plan.encode(reordered, None) == plan.encode(values, None)
    name = next(iter(first))
    other = next(n for n in ("note", "ok", "ratio", "tags") if n not in first)

    class Sub(dict[str, Any]):
        pass

    swapped = {other if k == name else k: v for k, v in values[7].items()}
    missing = {k: v for k, v in values[7].items() if k != name}
    extra = {**values[7], other: None}
    for odd in (swapped, missing, extra, Sub(values[7])):
        assert plan.encode([*values[:7], odd, *values[8:]], None) is None
    assert plan.encode([{**first, other: None}, *values[1:]], None) is None
