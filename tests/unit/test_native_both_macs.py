"""``hub_native.both_macs`` (native/src/both_macs.rs: a data-topic column batch's tenant MAC and
record MAC in one pass) gives exactly the bytes of its reference (``auth.both_macs_py``: the two
``record_macs`` calls the writer made before), on random batches; each record it seals is read
back as genuine by both readers (the hub's ``verify_records`` and the Flink jobs' ``tenant_of``),
and a change to anything covered is caught; malformed input is refused, not MAC'ed."""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.kafka_log.auth import (
    MAC_HEADER,
    both_macs,
    both_macs_py,
    record_mac,
    verify_records,
)
from core.ports.eventlog import StoredRecord
from core.tenant_mac import COVERED, LABEL, TMAC_HEADER, tenant_mac, tenant_of
from tests.unit.native_module import native_module

MAC_KEY = bytes(range(32))
TENANT_KEY = bytes(range(100, 148))
TS = 1_764_000_000_123
NAMES = (
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_time",
    "ce_tenant",
    "content-type",
    "x-user",
)


def _native(*args: Any) -> tuple[list[bytes], list[bytes]]:
    """The native function called as the writer calls it (through ``auth.both_macs``)."""
    native_module()
    return both_macs(*args)


def _random_batch(
    rnd: random.Random, n: int
) -> tuple[list[Any], list[Any], tuple[Any, ...], tuple[Any, ...]]:
    names = tuple(rnd.sample(NAMES, rnd.randint(0, len(NAMES))))
    columns = tuple(
        rnd.randbytes(rnd.randint(0, 40))
        if rnd.random() < 0.4
        else [rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 60)))) for _ in range(n)]
        for _ in names
    )
    keys = [rnd.choice((None, b"", rnd.randbytes(16))) for _ in range(n)]
    values = [rnd.choice((None, b"", rnd.randbytes(rnd.randint(1, 900)))) for _ in range(n)]
    return keys, values, names, columns


def _headers(names: tuple[Any, ...], columns: tuple[Any, ...], i: int) -> list[tuple[str, Any]]:
    return [(nm, c if type(c) is bytes else c[i]) for nm, c in zip(names, columns, strict=True)]


def test_random_batches_are_byte_identical_to_the_two_pass_reference() -> None:
    rnd = random.Random(19)
    for n in (0, 1, 2, 3, 17, 2000):
        keys, values, names, columns = _random_batch(rnd, n)
        topic, partition = rnd.choice((("payments", 0), ("t\u00f6pic.\u4e2d", 2**31 - 1)))
        got = _native(MAC_KEY, TENANT_KEY, topic, partition, TS, keys, values, names, columns)
        want = both_macs_py(MAC_KEY, TENANT_KEY, topic, partition, TS, keys, values, names, columns)
        assert got == want
        # and against the record functions themselves, record by record
        for i in range(min(n, 40)):
            hs = _headers(names, columns, i)
            mine = [(name, dict(hs)[name]) for name in COVERED if name in dict(hs)]
            tmac = tenant_mac(TENANT_KEY, topic, partition, keys[i], values[i], mine, TS)
            assert got[0][i] == tmac
            sealed = [*hs, (TMAC_HEADER, tmac)]
            assert got[1][i] == record_mac(
                MAC_KEY, topic, partition, keys[i], values[i], sealed, TS
            )


def test_a_repeated_covered_name_counts_with_its_last_column() -> None:
    names = ("ce_tenant", "ce_type", "ce_tenant")
    columns = (b"acme", b"t", [b"globex", b"initech"])
    got = _native(MAC_KEY, TENANT_KEY, "payments", 0, TS, [b"k"] * 2, [b"v"] * 2, names, columns)
    assert got == both_macs_py(
        MAC_KEY, TENANT_KEY, "payments", 0, TS, [b"k"] * 2, [b"v"] * 2, names, columns
    )
    want = tenant_mac(
        TENANT_KEY, "payments", 0, b"k", b"v", [("ce_tenant", b"initech"), ("ce_type", b"t")], TS
    )
    assert got[0][1] == want


def test_both_readers_accept_every_record_and_catch_any_change() -> None:
    rnd = random.Random(5)
    n = 50
    names = ("ce_id", "ce_type", "ce_time", "ce_tenant")
    columns = (
        [str(i).encode() for i in range(n)],
        b"payment.created",
        [f"2026-12-05T07:{i % 60:02d}:00Z".encode() for i in range(n)],
        [rnd.choice((b"acme", b"globex")) for _ in range(n)],
    )
    keys = [rnd.randbytes(8) for _ in range(n)]
    values = [rnd.randbytes(200) for _ in range(n)]
    tmacs, macs = _native(MAC_KEY, TENANT_KEY, "payments", 0, TS, keys, values, names, columns)
    stored = [
        StoredRecord(
            "payments",
            0,
            i,
            TS,
            keys[i],
            values[i],
            (*_headers(names, columns, i), (TMAC_HEADER, tmacs[i]), (MAC_HEADER, macs[i])),
        )
        for i in range(n)
    ]
    read = verify_records(MAC_KEY, stored)
    for i, r in enumerate(read):  # the hub's reader: genuine, both MAC headers stripped
        assert r.headers == tuple(_headers(names, columns, i))
        job = dict(stored[i].headers)
        assert (
            tenant_of(TENANT_KEY, "payments", 0, keys[i], values[i], job, TS)
            == columns[3][i].decode()
        )
    # a flipped bit of the value: the hub reads it as an external record (tenant claim dropped),
    # the Flink job as tenant default
    bad = stored[7]
    flipped = bytes([bad.value[0] ^ 1]) + bad.value[1:]  # type: ignore[index]
    forged = StoredRecord("payments", 0, 7, TS, bad.key, flipped, bad.headers)
    (seen,) = verify_records(MAC_KEY, [forged])
    assert all(name != "ce_tenant" for name, _ in seen.headers)
    job = dict(forged.headers)
    assert tenant_of(TENANT_KEY, "payments", 0, bad.key, flipped, job, TS) == "default"
    # the tenant MAC is under its own key and label: not the record MAC's
    assert tmacs[0] != record_mac(
        MAC_KEY, "payments", 0, keys[0], values[0], _headers(names, columns, 0), TS, LABEL
    )


@pytest.mark.parametrize(
    ("keys", "values", "names", "columns", "error", "text"),
    [
        ([b"k"], [b"v", b"w"], (), (), ValueError, "1 keys for 2 values"),
        ([b"k"], [b"v"], ("a",), (), ValueError, "1 header names for 0 header columns"),
        ([b"k"], [b"v"], ("a",), ([b"1", b"2"],), ValueError, "2 values for 1 records"),
        ([b"k"], ["v"], (), (), TypeError, "a value must be bytes or None, not str"),
        ([1], [b"v"], (), (), TypeError, "a key must be bytes or None, not int"),
        ([b"k"], [b"v"], ("a",), (["x"],), TypeError, "a header value must be bytes"),
        ([b"k"], [b"v"], (b"a",), (b"x",), TypeError, "header names must be str"),
    ],
)
def test_malformed_batches_are_refused_by_name(
    keys: Any, values: Any, names: Any, columns: Any, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        _native(MAC_KEY, TENANT_KEY, "payments", 0, TS, keys, values, names, columns)


def test_a_covered_index_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="covered column 3 of 1 header columns"):
        native_module().both_macs(
            MAC_KEY,
            TENANT_KEY,
            LABEL,
            TMAC_HEADER,
            "t",
            0,
            TS,
            [b"k"],
            [b"v"],
            ("a",),
            (b"x",),
            [3],
        )
