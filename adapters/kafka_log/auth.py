"""The Kafka log's record authentication: an HMAC-SHA256 per record, carried in the header
``__hub.mac`` (always the last header on the wire), under a key the hub keeps outside Kafka.

Why: anyone with produce access to the broker (an ACL slip, a shared cluster, a compromised
client) could otherwise write records straight into hub topics, and the hub would read them as
its own: a forged ``hub.principals`` grant or ``hub.policies`` document, a ``_schemas`` entry,
a data record with any tenant and producer. The embedded log has its MAC chain; this is the
Kafka counterpart. The MAC binds the topic (its name without the namespace prefix), the
partition, the record's key, value, headers (those before it, the idempotence marker included)
and its timestamp, so a record cannot be forged, edited or moved to another topic or partition.
It cannot bind the offset (unknown until the broker appends): copying a genuine record again
into the same partition is NOT detected here; the folds' own id checks have to cover replays.

The namespace (``topic_prefix``) is bound through the key: a namespace other than the default
('') MACs under ``namespace_key(key, prefix)``, so two namespaces that share the hub's key (a
staging hub cloned from production's data folder, a restore drill beside its source) do not
accept each other's records. The default namespace keeps the key itself (its records need no
upgrade). Records a prefixed namespace wrote before this (session 21) carry MACs under the key
itself: they stay readable below the offsets the namespace's marker recorded when the upgraded
hub first opened it (``legacy_below``; ``KafkaEventLog.bind_namespace``), and a copy of such a
record from another namespace lands above them and is refused.

Which records must carry one: every record of the hub's own topics (``hub.*`` and ``_*``: the
principals, policies, decisions, schemas, the adapter's state) raises ``LogTampered`` without a
valid MAC. Data topics (and ``flink.*``, which Flink jobs write) also take records from plain
Kafka producers by design (Confluent serializers, Debezium): such a record without a MAC is
read, but its ``ce_tenant`` claim is dropped (it reads as tenant ``default``, as every header-less
external record does), so a producer without the hub's key cannot put records into another
tenant's view; so is one whose MAC header does not match (no reader stalls on it).

Data-topic records also carry the tenant MAC ``__hub.tmac`` right before ``__hub.mac`` (so under
it), for the Flink jobs, which must not hold this key (``core.tenant_mac``; ``tenant_macs``
computes it with the record MAC's native batch function, one more call per batch, under its own
key and label). The reader strips it with the MAC header: readers and ledger leaves see the
headers as written.

Records written before record MACs (session 15) are read only where a partition's seal vouches
for them (``seals``; ``hub migrate kafka-seal`` writes the seals): the ``vouch`` of
``verify_record``. On data topics the seals cover the pre-MAC records that carry ``ce_tenant``,
so an upgrade neither moves the old records of tenant ``acme`` into tenant ``default``'s view
nor changes what they read as (which ``hub ledger verify`` would find differs from its leaf).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Final, cast

from core.errors import LogTampered
from core.ports.eventlog import Headers, StoredRecord
from core.tenant_mac import COVERED, TMAC_HEADER, covered, labelled_mac
from core.tenant_mac import LABEL as TENANT_LABEL
from core.tenant_mac import namespace_key as namespace_key  # the record MAC's too
from domain.envelope import H_TENANT

MAC_HEADER: Final = "__hub.mac"
SEQ_HEADER: Final = "__hub.seq"  # the hub sequence (``sequence``), under the MAC
SEQ_BYTES: Final = 24  # its value: the writer (16 bytes) and the writer's number (8)
_LABEL: Final = b"hub.kafka.record.v1\n"


def record_mac(
    key: bytes,
    topic: str,
    partition: int,
    rkey: bytes | None,
    value: bytes | None,
    headers: Headers | list[tuple[str, bytes]] | None,
    ts: int,
    label: bytes = _LABEL,
) -> bytes:
    return labelled_mac(key, label, topic, partition, ts, rkey, value, headers or ())


def record_macs_py(
    key: bytes,
    topic: str,
    partition: int,
    ts: int,
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    header_names: Sequence[str],
    header_columns: Sequence[bytes | Sequence[bytes | None]],
    label: bytes = _LABEL,
) -> list[bytes]:
    """The reference of ``hub_native.record_macs``: ``record_mac`` of every record of a column
    batch (``ColumnBatch``'s header columns: one ``bytes`` shared by all, or one per record)."""
    n = len(values)
    if len(keys) != n or len(header_names) != len(header_columns):
        raise ValueError(
            f"record_macs: {len(keys)} keys for {n} values, {len(header_names)} header names "
            f"for {len(header_columns)} header columns."
        )
    cols = [repeat(c, n) if type(c) is bytes else c for c in header_columns]
    if any(len(c) != n for c in header_columns if type(c) is not bytes):
        raise ValueError(f"record_macs: a header column's length is not {n}.")
    rows = zip(*cols, strict=True) if cols else repeat((), n)
    return [
        record_mac(key, topic, partition, k, v, list(zip(header_names, hv, strict=True)), ts, label)
        for k, v, hv in zip(keys, values, rows, strict=True)
    ]


def record_macs_rows_py(
    key: bytes,
    rows: Sequence[tuple[str, int, bytes | None, bytes | None, Headers, int]],
    label: bytes = _LABEL,
) -> list[bytes]:
    """The reference of ``hub_native.record_macs_rows``: ``record_mac`` of each row."""
    return [record_mac(key, t, p, k, v, h, ts, label) for t, p, k, v, h, ts in rows]


record_macs: Callable[..., list[bytes]]
record_macs_rows: Callable[..., list[bytes]]
try:  # one native call per batch: ~0.6 us a record instead of record_mac's ~5 (Python framing)
    from hub_native import record_macs as _native
    from hub_native import record_macs_rows as _native_rows

    record_macs, record_macs_rows = _native, _native_rows
except ImportError:  # no Rust toolchain: the references, same bytes
    record_macs, record_macs_rows = record_macs_py, record_macs_rows_py


def mac_required(topic: str) -> bool:
    """The hub's own topics (written by its services only): no record without a MAC."""
    return topic.startswith(("hub.", "_"))


def tenant_macs(
    key: bytes,
    topic: str,
    partition: int,
    ts: int,
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    header_names: Sequence[str],
    header_columns: Sequence[bytes | Sequence[bytes | None]],
) -> list[bytes]:
    """The tenant MAC (``core.tenant_mac``) of every record of a column batch: ``record_macs``
    under the tenant label over the ``COVERED`` header columns only, in ``COVERED`` order."""
    at = {name: i for i, name in enumerate(header_names)}  # a repeated name: its last column
    names = [name for name in COVERED if name in at]
    columns = [header_columns[at[name]] for name in names]
    return record_macs(key, topic, partition, ts, keys, values, names, columns, TENANT_LABEL)


def tenant_macs_rows(
    key: bytes,
    rows: Sequence[tuple[str, int, bytes | None, bytes | None, Headers, int]],
) -> list[bytes]:
    """The tenant MAC (``core.tenant_mac``) of each row, in one ``record_macs_rows`` call."""
    mine = [(t, p, k, v, covered(h), ts) for t, p, k, v, h, ts in rows]
    return record_macs_rows(key, mine, TENANT_LABEL)


def claims_tenant(r: StoredRecord) -> bool:
    """Whether a record carries a ``ce_tenant`` header (what ``_external`` drops: even a claim
    of ``default`` changes the record as read, and so its ledger leaf)."""
    return any(name == H_TENANT for name, _ in r.headers)


def _external(r: StoredRecord) -> StoredRecord:
    """A data topic's record the hub did not write: read, its tenant claim dropped."""
    if any(name == H_TENANT for name, _ in r.headers):
        kept = tuple(h for h in r.headers if h[0] != H_TENANT)
        return StoredRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, kept)
    return r


Vouch = Callable[[StoredRecord], bool]
"""Whether a hub-topic record without a valid MAC is one the hub still reads as it is: a record
written before record MACs that a partition's seal lists (``seals``), or during ``hub migrate
kafka-seal`` one the ledger vouches for."""

UNSEALED_FIX: Final = (
    "If this Kafka deployment was written by a hub before record MACs (session 15), run `hub "
    "migrate kafka-seal` (plan, a second person's approval, then --apply; "
    "docs/operations/kafka-seal.md); otherwise remove the record or move the topic's readers "
    "past it."
)


def _verified(r: StoredRecord, data: bool) -> tuple[StoredRecord, bytes | None]:
    """``r`` (whose MAC checked out) as readers see it, built once: without the MAC header,
    on a ``data`` topic without the tenant MAC header either, and without the hub sequence
    header right under them; with the sequence's value (genuine: it is under the MAC), None
    when there is none or it is malformed."""
    headers = r.headers[:-1]
    if data and headers and headers[-1][0] == TMAC_HEADER:
        headers = headers[:-1]
    seq = None
    if headers and headers[-1][0] == SEQ_HEADER:
        seq = headers[-1][1]
        headers = headers[:-1]
        if type(seq) is not bytes or len(seq) != SEQ_BYTES:
            seq = None
    return StoredRecord(
        r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, headers
    ), seq


def _unverified(r: StoredRecord) -> tuple[StoredRecord, None]:
    """A record read without a valid MAC (a plain producer's, or one a seal vouches for) as
    readers see it: a last header named ``SEQ_HEADER`` (reserved) is not shown, and it is no
    hub sequence."""
    if r.headers and r.headers[-1][0] == SEQ_HEADER:
        kept = r.headers[:-1]
        return StoredRecord(
            r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, kept
        ), None
    return r, None


def _checked(
    key: bytes, r: StoredRecord, vouch: Vouch | None, legacy: Vouch | None, data: bool
) -> tuple[StoredRecord, bytes | None]:
    """``verify_record`` with the record's genuine hub sequence (``_verified``)."""
    where = f"{r.topic!r} partition {r.partition} offset {r.offset}"
    if not r.headers or r.headers[-1][0] != MAC_HEADER:
        if data:  # a pre-MAC hub record keeps its tenant if a seal says so
            keep = vouch is not None and claims_tenant(r) and vouch(r)
            return _unverified(r if keep else _external(r))
        if vouch is not None and vouch(r):
            return _unverified(r)
        raise LogTampered(
            f"The Kafka record at {where} carries no hub MAC ({MAC_HEADER!r}) and no seal "
            "vouches for it: the hub did not write it (someone with produce access to the "
            f"broker did), or it predates record MACs. Refusing to read it. {UNSEALED_FIX}",
            code="log_unsealed",
        )
    headers = r.headers[:-1]
    want = record_mac(key, r.topic, r.partition, r.key, r.value, headers, r.timestamp_ms)
    if not hmac.compare_digest(r.headers[-1][1], want):
        if legacy is not None and legacy(r):  # MAC'd before the namespace was bound
            return _verified(r, data)
        if data:
            keep = vouch is not None and claims_tenant(r) and vouch(r)
            return _unverified(r if keep else _external(r))
        if vouch is not None and vouch(r):  # a pre-MAC record whose last header had that name
            return _unverified(r)
        raise LogTampered(
            f"The Kafka record at {where} fails its hub MAC: it was forged, changed, or moved "
            "from another topic, partition or namespace. Refusing to read it."
        )
    return _verified(r, data)


def verify_record(
    key: bytes, r: StoredRecord, vouch: Vouch | None = None, legacy: Vouch | None = None
) -> StoredRecord:
    """``r`` as readers see it: without its MAC header (and tenant MAC and hub sequence
    headers, ``_verified``); on a hub topic, raise ``LogTampered`` (naming the record)
    when the header is missing or does not match, unless ``vouch`` accepts the record (then it
    is returned as it was stored). On a data topic such a record is read as a
    plain producer's (``_external``): a bogus MAC header there must not make the partition
    unreadable (anyone with produce access could otherwise stall its readers), and it gains the
    writer nothing a record without one would not. A last header named ``SEQ_HEADER`` is never
    shown, whatever the record."""
    return _checked(key, r, vouch, legacy, not mac_required(r.topic))[0]


def mac_valid(key: bytes, r: StoredRecord) -> bool:
    """Whether a record as stored carries a valid MAC as its last header."""
    if not r.headers or r.headers[-1][0] != MAC_HEADER:
        return False
    want = record_mac(key, r.topic, r.partition, r.key, r.value, r.headers[:-1], r.timestamp_ms)
    return hmac.compare_digest(r.headers[-1][1], want)


def verified_run_py(
    cls: type[StoredRecord], key: bytes, data: bool, records: Sequence[StoredRecord]
) -> tuple[list[StoredRecord | None], list[bytes | None]]:
    """The reference of ``hub_native.verified_run``: per record of one topic (``data``: not
    ``mac_required``), ``_verified`` when its last header is a valid record MAC, else
    ``(None, None)`` (``verify_run`` then applies ``_checked``'s rules)."""
    out: list[StoredRecord | None] = []
    seqs: list[bytes | None] = []
    for r in records:
        h = r.headers
        if h and h[-1][0] == MAC_HEADER:
            want = record_mac(key, r.topic, r.partition, r.key, r.value, h[:-1], r.timestamp_ms)
            if hmac.compare_digest(h[-1][1], want):
                v, seq = _verified(r, data)
                out.append(
                    cls(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, v.headers)
                )
                seqs.append(seq)
                continue
        out.append(None)
        seqs.append(None)
    return out, seqs


_verified_run: Callable[..., tuple[list[StoredRecord | None], list[bytes | None]] | None] | None
try:  # one native call per read: the MACs, the comparison and the records as read
    from hub_native import verified_run as _native_run

    _verified_run = _native_run
except ImportError:  # pragma: no cover - no Rust toolchain, or a library built before it
    _verified_run = None


def verify_run(
    key: bytes,
    records: Sequence[StoredRecord],
    vouch: Vouch | None = None,
    legacy: Vouch | None = None,
) -> tuple[list[StoredRecord], list[bytes | None]]:
    """``verify_record`` of each record (one record built per record), and each one's
    genuine hub sequence (``_verified``; None where there is none or the MAC did not verify);
    the first record that fails on a hub topic raises, as ``verify_record`` would. ``legacy``:
    whether a record whose MAC fails under ``key`` carries a valid one of before the namespace
    was bound, below the namespace's marker (``namespace_key``). A run of one topic (a read)
    is verified in one native call (``hub_native.verified_run``: MACs, comparisons, records
    as read) and asks ``mac_required`` once; the records it does not vouch for (no MAC, a
    wrong one) go through ``_checked``."""
    if records and _verified_run is not None:
        topic = records[0].topic
        if all(r.topic == topic for r in records):
            data = not mac_required(topic)
            run = _verified_run(StoredRecord, key, data, list(records))
            if run is not None:
                read, seqs = run
                for i, v in enumerate(read):
                    if v is None:
                        read[i], seqs[i] = _checked(key, records[i], vouch, legacy, data)
                return cast("list[StoredRecord]", read), seqs
    return verify_run_py(key, records, vouch, legacy)


def verify_run_py(
    key: bytes,
    records: Sequence[StoredRecord],
    vouch: Vouch | None = None,
    legacy: Vouch | None = None,
) -> tuple[list[StoredRecord], list[bytes | None]]:
    """``verify_run`` in Python (the reference; runs where the native library is missing
    or a run mixes topics): the MACs computed in one ``record_macs_rows`` call,
    ``mac_required`` asked once per run of records of one topic."""
    sealed = [r for r in records if r.headers and r.headers[-1][0] == MAC_HEADER]
    macs = iter(
        record_macs_rows(
            key,
            [
                (r.topic, r.partition, r.key, r.value, r.headers[:-1], r.timestamp_ms)
                for r in sealed
            ],
        )
    )
    out: list[StoredRecord] = []
    seqs: list[bytes | None] = []
    topic, data = None, False
    for r in records:
        if r.topic != topic:
            topic, data = r.topic, not mac_required(r.topic)
        h = r.headers
        if h and h[-1][0] == MAC_HEADER and hmac.compare_digest(h[-1][1], next(macs)):
            v, seq = _verified(r, data)
        else:  # missing or wrong: verify_record's refusal or external reading, one place
            v, seq = _checked(key, r, vouch, legacy, data)
        out.append(v)
        seqs.append(seq)
    return out, seqs


def verify_records(
    key: bytes,
    records: Sequence[StoredRecord],
    vouch: Vouch | None = None,
    legacy: Vouch | None = None,
) -> list[StoredRecord]:
    """``verify_record`` of each record (``verify_run`` without the sequences)."""
    return verify_run(key, records, vouch, legacy)[0]
