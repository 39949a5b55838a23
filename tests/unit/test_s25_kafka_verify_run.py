"""``auth.verify_run`` (one record built per record: the MAC, tenant MAC and sequence headers
off in one step, ``mac_required`` asked once per topic) reads exactly what the read path read
before session 25: ``verify_records`` (its ``_verified`` stripping the MAC headers), then the
sequence taken from the verified record and stripped again (``without_seq``), kept below as the
reference. Same records (bytes of every header), same sequences, same refusals, over the edge
cases: hub and data topics, tenant MACs, well-formed and malformed sequences, wrong MACs,
external records, vouched and legacy records, runs that mix topics."""

from __future__ import annotations

import hmac
import os
import random

import pytest

from adapters.kafka_log import auth
from adapters.kafka_log.auth import MAC_HEADER, SEQ_HEADER, record_mac, verify_run
from core.errors import LogTampered
from core.ports.eventlog import StoredRecord
from core.tenant_mac import TMAC_HEADER
from domain.envelope import H_TENANT

KEY = bytes(range(32))
OLD_KEY = b"before the namespace was bound"


def _old_verified(r: StoredRecord) -> StoredRecord:
    headers = r.headers[:-1]
    if not auth.mac_required(r.topic) and headers and headers[-1][0] == TMAC_HEADER:
        headers = headers[:-1]
    return StoredRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, headers)


def _old_verify_record(
    key: bytes, r: StoredRecord, vouch: auth.Vouch | None, legacy: auth.Vouch | None
) -> StoredRecord:
    if not r.headers or r.headers[-1][0] != MAC_HEADER:
        if not auth.mac_required(r.topic):
            keep = vouch is not None and auth.claims_tenant(r) and vouch(r)
            return r if keep else auth._external(r)
        if vouch is not None and vouch(r):
            return r
        raise LogTampered("unsealed", code="log_unsealed")
    want = record_mac(key, r.topic, r.partition, r.key, r.value, r.headers[:-1], r.timestamp_ms)
    if not hmac.compare_digest(r.headers[-1][1], want):
        if legacy is not None and legacy(r):
            return _old_verified(r)
        if not auth.mac_required(r.topic):
            keep = vouch is not None and auth.claims_tenant(r) and vouch(r)
            return r if keep else auth._external(r)
        if vouch is not None and vouch(r):
            return r
        raise LogTampered("forged")
    return _old_verified(r)


def reference(
    key: bytes,
    records: list[StoredRecord],
    vouch: auth.Vouch | None = None,
    legacy: auth.Vouch | None = None,
) -> tuple[list[StoredRecord], list[bytes | None]]:
    """The read path of session 24: ``verify_records``, then ``_unreplayed``'s sequence and
    ``without_seq``."""
    out: list[StoredRecord] = []
    seqs: list[bytes | None] = []
    for r in records:
        v = _old_verify_record(key, r, vouch, legacy)
        seq = None
        if v.headers and v.headers[-1][0] == SEQ_HEADER and r.headers[-1][0] == MAC_HEADER:
            seq = v.headers[-1][1]
            if len(seq) != 24:
                seq = None
        if v.headers and v.headers[-1][0] == SEQ_HEADER:
            v = StoredRecord(
                v.topic, v.partition, v.offset, v.timestamp_ms, v.key, v.value, v.headers[:-1]
            )
        out.append(v)
        seqs.append(seq)
    return out, seqs


def _sealed(
    topic: str,
    offset: int,
    headers: list[tuple[str, bytes]],
    *,
    key: bytes = KEY,
    bad: bool = False,
) -> StoredRecord:
    value = f"value {offset}".encode()
    mac = record_mac(key, topic, 0, b"k", value, headers, 1_700_000_000_000 + offset)
    if bad:
        mac = bytes(32)
    return StoredRecord(
        topic, 0, offset, 1_700_000_000_000 + offset, b"k", value, (*headers, (MAC_HEADER, mac))
    )


def _plain(topic: str, offset: int, headers: list[tuple[str, bytes]]) -> StoredRecord:
    return StoredRecord(topic, 0, offset, 1, None, b"plain", tuple(headers))


SEQ = os.urandom(16) + (7).to_bytes(8, "big")
TENANT = (H_TENANT, b"acme")
TMAC = (TMAC_HEADER, b"t" * 32)


def _cases() -> list[StoredRecord]:
    return [
        _sealed("hub.principals", 0, [("ce_id", b"1"), (SEQ_HEADER, SEQ)]),
        _sealed("hub.principals", 1, [(SEQ_HEADER, SEQ[:-1])]),  # malformed: stripped, no seq
        _sealed("hub.principals", 2, [TMAC, (SEQ_HEADER, SEQ)]),  # a hub topic keeps a tmac
        _sealed("hub.principals", 3, [(SEQ_HEADER, SEQ), TMAC]),
        _sealed("hub.principals", 4, []),
        _sealed("trades", 5, [TENANT, (SEQ_HEADER, SEQ), TMAC]),
        _sealed("trades", 6, [TENANT, TMAC]),
        _sealed("trades", 7, [TENANT, (SEQ_HEADER, SEQ)]),
        _sealed("trades", 8, [TMAC, (SEQ_HEADER, SEQ), TMAC]),
        _sealed("trades", 9, [TENANT, (SEQ_HEADER, SEQ), TMAC], bad=True),  # external
        _plain("trades", 10, [TENANT, (SEQ_HEADER, SEQ)]),  # a plain producer's "sequence"
        _plain("trades", 11, [(SEQ_HEADER, SEQ)]),
        _plain("trades", 12, []),
        _plain("trades", 13, [TENANT, ("vouched", b"1"), (SEQ_HEADER, SEQ)]),
        _plain("hub.policies", 14, [("vouched", b"1"), (SEQ_HEADER, SEQ)]),
        _sealed("hub.policies", 15, [("vouched", b"1"), (SEQ_HEADER, SEQ)], bad=True),
        _sealed("hub.policies", 16, [(SEQ_HEADER, SEQ)], key=OLD_KEY),  # legacy
        _sealed("trades", 17, [TENANT, (SEQ_HEADER, SEQ), TMAC], key=OLD_KEY),
        _sealed("_schemas", 18, [(SEQ_HEADER, SEQ)]),
        _sealed("flink.out", 19, [(SEQ_HEADER, SEQ), TMAC]),
    ]


def _vouch(r: StoredRecord) -> bool:
    return any(name == "vouched" for name, _ in r.headers)


def _legacy(r: StoredRecord) -> bool:
    h = r.headers
    want = record_mac(OLD_KEY, r.topic, r.partition, r.key, r.value, h[:-1], r.timestamp_ms)
    return hmac.compare_digest(h[-1][1], want)


def _same(
    got: tuple[list[StoredRecord], list[bytes | None]],
    want: tuple[list[StoredRecord], list[bytes | None]],
) -> None:
    assert got[1] == want[1]
    assert len(got[0]) == len(want[0])
    for g, w in zip(got[0], want[0], strict=True):
        assert g == w
        assert [(n, bytes(v)) for n, v in g.headers] == [(n, bytes(v)) for n, v in w.headers]


def test_every_edge_case_reads_as_before_with_the_same_sequences() -> None:
    records = _cases()
    want = reference(KEY, records, _vouch, _legacy)
    _same(verify_run(KEY, records, _vouch, _legacy), want)
    assert [s is not None for s in want[1]] == [
        True, False, True, False, False, True, False, True, True, False,
        False, False, False, False, False, False, True, True, True, True,
    ]  # fmt: skip
    assert not [r for r in want[0] if r.headers and r.headers[-1][0] == SEQ_HEADER]
    for r in records:  # one at a time too, and verify_record agrees
        _same(verify_run(KEY, [r], _vouch, _legacy), reference(KEY, [r], _vouch, _legacy))
        assert auth.verify_record(KEY, r, _vouch, _legacy) == want[0][r.offset]


def test_random_runs_mixing_topics_read_as_before() -> None:
    rnd = random.Random(25)
    cases = _cases()
    for _ in range(200):
        run = [cases[rnd.randrange(len(cases))] for _ in range(rnd.randrange(0, 30))]
        _same(verify_run(KEY, run, _vouch, _legacy), reference(KEY, run, _vouch, _legacy))


@pytest.mark.parametrize(
    "bad",
    [
        _plain("hub.policies", 30, [(SEQ_HEADER, SEQ)]),  # no MAC, nothing vouches
        _sealed("hub.principals", 31, [(SEQ_HEADER, SEQ)], bad=True),  # forged
        _sealed("hub.principals", 32, [(SEQ_HEADER, SEQ)], key=OLD_KEY),  # no legacy rule given
    ],
)
def test_a_hub_record_without_a_valid_mac_is_refused_as_before(bad: StoredRecord) -> None:
    good = _cases()[:3]
    with pytest.raises(LogTampered) as old:
        reference(KEY, [*good, bad], _vouch)
    with pytest.raises(LogTampered) as new:
        verify_run(KEY, [*good, bad], _vouch)
    assert new.value.code == old.value.code
    assert "offset" in str(new.value)


def _native() -> object | None:
    try:
        import hub_native
    except ImportError:  # pragma: no cover - no Rust toolchain
        return None
    return getattr(hub_native, "verified_run", None)


def test_the_native_run_gives_the_records_of_its_reference() -> None:
    """``hub_native.verified_run`` against ``auth.verified_run_py``: the same records (the very
    same key, value and header objects), the same sequences, on every edge case and on
    random runs, for data and hub topics."""
    native = _native()
    if native is None:  # pragma: no cover
        pytest.skip("hub_native has no verified_run (rebuild: make setup)")
    rnd = random.Random(2025)
    cases = _cases()
    for _ in range(300):
        run = [cases[rnd.randrange(len(cases))] for _ in range(rnd.randrange(0, 25))]
        for data in (True, False):
            got = native(StoredRecord, KEY, data, run)  # type: ignore[operator]
            want = auth.verified_run_py(StoredRecord, KEY, data, run)
            assert got[1] == want[1]
            for g, w in zip(got[0], want[0], strict=True):
                assert g == w
                if g is not None and w is not None:
                    assert [(n, v) for n, v in g.headers] == [(n, v) for n, v in w.headers]
                    assert type(g.headers) is tuple
                    assert g.value is w.value and g.key is w.key


def test_verify_run_reads_the_same_with_and_without_the_native_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rnd = random.Random(13)
    cases = _cases()
    hub = [c for c in cases if c.topic == "hub.principals"]
    trades = [c for c in cases if c.topic == "trades"]
    runs = [hub, trades, cases] + [
        [pool[rnd.randrange(len(pool))] for _ in range(rnd.randrange(1, 20))]
        for pool in (hub, trades)
        for _ in range(50)
    ]
    with_native = [verify_run(KEY, run, _vouch, _legacy) for run in runs]
    monkeypatch.setattr(auth, "_verified_run", None)
    for run, got in zip(runs, with_native, strict=True):
        _same(got, verify_run(KEY, run, _vouch, _legacy))
        _same(got, reference(KEY, run, _vouch, _legacy))
