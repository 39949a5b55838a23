"""Hub sequences (adapters.kafka_log.sequence) and verify's bounded replay scan
(adapters.kafka_log.replays.first_copy), on records built here: no broker."""

from __future__ import annotations

from dataclasses import replace

from adapters.kafka_log.auth import MAC_HEADER, record_mac
from adapters.kafka_log.replays import first_copy, original_of
from adapters.kafka_log.sequence import (
    SEQ_HEADER,
    PartitionSequence,
    Sequencer,
    genuine_sequences,
    sequence_of,
)
from core.ports.eventlog import StoredRecord
from core.tenant_mac import TMAC_HEADER

KEY = b"k" * 32


def _rec(offset: int, seq: bytes | None, value: bytes, *, tmac: bool = True) -> StoredRecord:
    headers: list[tuple[str, bytes]] = [("ce_tenant", b"acme")]
    if seq is not None:
        headers.append((SEQ_HEADER, seq))
    if tmac:
        headers.append((TMAC_HEADER, b"t" * 32))
    mac = record_mac(KEY, "quotes", 0, b"k", value, headers, 1000)
    return StoredRecord("quotes", 0, offset, 1000, b"k", value, (*headers, (MAC_HEADER, mac)))


def test_a_writers_numbers_go_up_and_producers_are_writers_of_their_own() -> None:
    s = Sequencer()
    a, b = object(), object()
    x, y = s.values(a, 2), s.values(b, 1)
    assert [int.from_bytes(v[16:], "big") for v in x] == [1, 2]
    assert x[0][:16] == x[1][:16] != y[0][:16]
    assert int.from_bytes(s.values(a, 1)[0][16:], "big") == 3


def test_a_number_not_above_its_writers_last_is_a_replay_and_changes_nothing() -> None:
    w, v = b"w" * 16, b"v" * 16
    st = PartitionSequence()
    assert st.admit(0, w + (1).to_bytes(8, "big"))
    assert st.admit(1, w + (5).to_bytes(8, "big"))  # gaps: other partitions, aborts
    assert st.admit(2, v + (1).to_bytes(8, "big"))  # another writer
    assert not st.admit(3, w + (5).to_bytes(8, "big"))
    assert not st.admit(4, w + (1).to_bytes(8, "big"))
    assert st.admit(5, None)  # before sequences: the old rule (verify)
    assert st.covers(3) and st.covers(6) and not st.covers(2)
    assert st.last == {w: 5, v: 1}


def test_only_a_genuine_sequence_counts() -> None:
    good = _rec(0, b"w" * 16 + (1).to_bytes(8, "big"), b"a")
    forged = replace(good, offset=1, value=b"b")  # its MAC fails
    assert sequence_of(good) == b"w" * 16 + (1).to_bytes(8, "big")
    assert sequence_of(_rec(0, b"w" * 16 + (1).to_bytes(8, "big"), b"a", tmac=False)) is not None
    assert genuine_sequences(KEY, [good, forged]) == [sequence_of(good), None]


def test_verify_finds_the_first_copy_with_its_original() -> None:
    recs = [_rec(i, b"w" * 16 + (i + 1).to_bytes(8, "big"), b"v%d" % i) for i in range(5)]
    stored = [*recs, replace(recs[1], offset=5)]  # recs[1] copied to offset 5
    hit = first_copy(KEY, lambda: stored)
    assert hit is not None and hit[0] == 5
    assert original_of(stored, hit[1]) == 1
    assert first_copy(KEY, lambda: recs) is None


def test_verify_keeps_the_old_rule_for_records_before_sequences() -> None:
    old = [_rec(i, None, b"o%d" % i) for i in range(3)]
    stored = [*old, replace(old[0], offset=3)]
    hit = first_copy(KEY, lambda: stored)
    assert hit is not None and hit[0] == 3


def test_a_forged_number_makes_verify_check_every_mac_and_find_no_false_copy() -> None:
    w = b"w" * 16
    recs = [_rec(i, w + (i + 1).to_bytes(8, "big"), b"v%d" % i) for i in range(3)]
    forged = replace(_rec(3, w + (100).to_bytes(8, "big"), b"f"), value=b"changed")
    later = _rec(4, w + (4).to_bytes(8, "big"), b"v4")  # genuine, below the forged number
    assert first_copy(KEY, lambda: [*recs, forged, later]) is None
    copy = replace(recs[0], offset=5)
    hit = first_copy(KEY, lambda: [*recs, forged, later, copy])
    assert hit is not None and hit[0] == 5
