"""``hub_native.record_macs`` (native/src/record_mac.rs) gives exactly the MACs of its reference
(``auth.record_macs_py``, itself ``auth.record_mac`` per record) over the edge cases of a Kafka
column batch, and refuses malformed input with a clear error instead of a wrong MAC."""

from __future__ import annotations

import hmac
import random
from typing import Any

import pytest

from adapters.kafka_log.auth import record_mac, record_macs_py
from tests.unit.native_module import native_module

KEY = bytes(range(32))


def _both(*args: Any) -> list[bytes]:
    native = native_module().record_macs(*args)
    reference = record_macs_py(*args)
    assert native == reference
    return native  # type: ignore[no-any-return]


@pytest.mark.parametrize("key", [b"", b"k", KEY, bytes(64), bytes(range(65)), b"x" * 200])
def test_keys_of_every_length_match_hmac(key: bytes) -> None:
    # the key padding (<= 64 bytes) and hashing (> 64) of RFC 2104, checked against hmac itself
    macs = _both(key, "payments", 3, 1_700_000_000_000, [b"k"], [b"v"], (), ())
    assert macs == [record_mac(key, "payments", 3, b"k", b"v", (), 1_700_000_000_000)]
    assert len(macs[0]) == 32


def test_edge_cases_are_byte_identical() -> None:
    rnd = random.Random(15)
    keys = [None, b"", b"k", None, rnd.randbytes(300), b"\x00" * 8]
    values = [None, b"", None, b"v", rnd.randbytes(3_000_000), b"\xff"]  # one big value
    names = ("ce_type", "ce_id", "caf\u00e9\U0001f600", "__hub.mac", "empty")
    columns: tuple[Any, ...] = (
        b"payment.created",  # shared by every record
        [b"1", b"2", b"3", b"4", b"5", b"6"],
        [None, b"", b"x", None, b"\x00", b"y" * 1000],
        [b"fake"] * 6,  # a user header named like the MAC is covered like any other
        b"",
    )
    for topic, partition, ts in (("payments", 0, 0), ("t\u00f6pic.\u4e2d", 2**31, -1)):
        macs = _both(KEY, topic, partition, ts, keys, values, names, columns)
        assert len(set(macs)) == len(macs)
        for i in range(len(values)):
            hs = [(n, c if type(c) is bytes else c[i]) for n, c in zip(names, columns, strict=True)]
            want = record_mac(KEY, topic, partition, keys[i], values[i], hs, ts)
            assert hmac.compare_digest(macs[i], want)


def test_many_headers_and_random_batches() -> None:
    rnd = random.Random(7)
    for n in (0, 1, 2, 500):
        names = tuple(f"h{j}" for j in range(rnd.choice((0, 1, 40))))
        columns = tuple(
            rnd.randbytes(5)
            if rnd.random() < 0.3
            else [rnd.randbytes(rnd.randrange(20)) for _ in range(n)]
            for _ in names
        )
        keys = [rnd.randbytes(16) if rnd.random() < 0.8 else None for _ in range(n)]
        values = [rnd.randbytes(rnd.randrange(400)) for _ in range(n)]
        assert (
            len(
                _both(
                    KEY, "t", rnd.randrange(8), rnd.randrange(2**40), keys, values, names, columns
                )
            )
            == n
        )


def test_every_field_is_bound() -> None:
    base = (KEY, "payments", 0, 5, [b"k"], [b"v"], ("a",), ([b"1"],))
    want = _both(*base)[0]
    changed = [
        (b"K" + KEY[1:], *base[1:]),
        (KEY, "payment", *base[2:]),
        (*base[:2], 1, *base[3:]),
        (*base[:3], 6, *base[4:]),
        (*base[:4], [None], *base[5:]),
        (*base[:5], [b"w"], *base[6:]),
        (*base[:6], ("b",), base[7]),
        (*base[:7], ([b"2"],)),
        (*base[:7], (b"1",)),  # the same bytes shared: the same MAC (it is the same record)
    ]
    macs = [_both(*args)[0] for args in changed]
    assert macs[-1] == want
    assert want not in macs[:-1]
    # a shifted boundary between key and value is a different record
    assert _both(KEY, "t", 0, 0, [b"ab"], [b"c"], (), ()) != _both(
        KEY, "t", 0, 0, [b"a"], [b"bc"], (), ()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((KEY, "t", 0, 0, [b"k"], [b"v", b"w"], (), ()), "keys"),
        ((KEY, "t", 0, 0, [b"k"], ["v"], (), ()), "bytes or None"),
        ((KEY, "t", 0, 0, [b"k"], [b"v"], ("a",), ()), "header"),
        ((KEY, "t", 0, 0, [b"k"], [b"v"], ("a",), ([b"1", b"2"],)), "header column"),
        ((KEY, "t", 0, 0, [b"k"], [b"v"], ("a",), ([1],)), "bytes or None"),
    ],
)
def test_malformed_batches_are_refused(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        native_module().record_macs(*args)
    with pytest.raises((ValueError, TypeError)):
        record_macs_py(*args)


def test_rows_match_record_mac_and_verify_records_refuses_like_verify_record() -> None:
    from adapters.kafka_log.auth import MAC_HEADER, verify_record, verify_records
    from core.errors import LogTampered
    from core.ports.eventlog import StoredRecord

    rows = [
        ("payments", 0, None, None, (), 0),
        ("hub.principals", 2**31, b"", b"", (("a", b""),), -5),
        ("t\u00f6pic", 3, b"k", b"v" * 100_000, tuple((f"h{j}", bytes([j])) for j in range(50)), 7),
    ]
    native = native_module().record_macs_rows(KEY, rows)
    assert native == [record_mac(KEY, *row) for row in rows]
    records = [
        StoredRecord(t, p, i, ts, k, v, (*h, (MAC_HEADER, mac)))
        for i, ((t, p, k, v, h, ts), mac) in enumerate(zip(rows, native, strict=True))
    ]
    assert verify_records(KEY, records) == [verify_record(KEY, r) for r in records]
    assert [r.headers for r in verify_records(KEY, records)] == [row[4] for row in rows]
    forged = StoredRecord("hub.principals", 0, 9, 1, b"k", b"grant", ((MAC_HEADER, native[0]),))
    unsealed = StoredRecord("hub.policies", 0, 10, 1, b"k", b"doc", ())
    for bad in (forged, unsealed):
        with pytest.raises(LogTampered, match="offset"):
            verify_records(KEY, [*records, bad])
    # a data topic's external record: read, its tenant claim dropped (verify_record's rule)
    external = StoredRecord("payments", 0, 11, 1, None, b"x", (("ce_tenant", b"acme"),))
    assert verify_records(KEY, [external, records[0]])[0].headers == ()
