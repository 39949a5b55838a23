"""The tenant MAC of a Kafka data record: what lets a Flink job trust the record's ``ce_tenant``.

The hub's Kafka writer MACs every record (``adapters.kafka_log.auth``, header ``__hub.mac``)
under a key that also signs its own topics (``hub.principals`` grants, ``hub.policies``), so
that key must never reach a Flink job: with HMAC whoever can verify can also sign, and a job's
environment is readable by more people than the hub's. So every record of a DATA topic carries a
second header, ``__hub.tmac``: HMAC-SHA256 under a key of its own (derived with the label
``PURPOSE``; the Flink jobs get it in their environment, ``KEY_ENV``) over the topic (without
the namespace prefix), the partition, the timestamp, the record's key and value and the headers
the jobs read (``COVERED``, in that fixed order, absent ones left out). Fixed order because
Flink's Kafka connector hands the headers to SQL as a map: their order on the wire is lost.

The namespace (the topic prefix) is bound through the key, as the record MAC's is: a prefixed
namespace MACs under ``namespace_key(key, prefix)``, so two namespaces sharing the hub's key (a
staging hub cloned from production's data folder) do not read each other's tenant claims; the
default namespace keeps the key itself. The jobs hold the hub's key and derive the namespace's.
Records a prefixed namespace wrote before this (session 21) carry tenant MACs under the key
itself: they verify under it only below the offsets of the namespace's marker (``legacy_text``,
compiled into the job's SQL; ``adapters.kafka_log.log.KafkaEventLog.bind_namespace``), so a copy
of such a record from another namespace, landing above, does not.

A job reads a record's tenant through ``tenant_of``: ``ce_tenant`` only when the tenant MAC
verifies, else ``default``, which is what the hub's own reader does with a data record whose
record MAC fails (``auth._external``: its tenant claim dropped). So a producer with broker
access but without the hub's keys cannot put rows into another tenant's Flink views, nor change
the event type or time of a copy of a genuine record.

Standard library only: the PyFlink workers import this file (``projections/flink/job.py``)."""

from __future__ import annotations

import hmac
import json
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Final

TMAC_HEADER: Final = "__hub.tmac"
KEY_ENV: Final = "HUB_FLINK_TENANT_KEY"  # hex, in a Flink job's environment (never its spec)
PURPOSE: Final = b"hub flink tenant MAC"  # its derivation label (not the record MAC's)
FUNCTION: Final = "hub_tenant"  # the jobs' scalar function (``projections/flink/job.py``)
COVERED: Final = ("ce_tenant", "ce_type", "ce_time")  # the headers the Flink jobs read
LABEL: Final = b"hub.kafka.tenant.v1\n"
NAMESPACE_LABEL: Final = b"hub.kafka.namespace.v1\n"  # the namespace key's derivation
DEFAULT_TENANT: Final = "default"
_LEGACY = re.compile(r"[0-9]{1,10}:[0-9]{1,19}(,[0-9]{1,10}:[0-9]{1,19})*")
_MAX_OFFSET = (1 << 63) - 1
_LEN = struct.Struct(">q")  # -1: None
_POS = struct.Struct(">Iq")  # partition, timestamp


def namespace_key(key: bytes, prefix: str) -> bytes:
    """The key of namespace ``prefix`` derived from the hub's ``key`` (the record MAC's key and
    the tenant MAC's alike): ``key`` itself for the default namespace, else
    HMAC-SHA256(key, ``NAMESPACE_LABEL`` || prefix)."""
    if not prefix:
        return key
    return hmac.digest(key, NAMESPACE_LABEL + prefix.encode(), "sha256")


def legacy_text(marks: Mapping[int, int]) -> str:
    """One topic's legacy offsets (partition -> the offset below which its records may carry
    tenant MACs under the hub's unbound key) as the jobs' SQL passes them: ``"p:end,p:end"``
    sorted by partition ('' for none)."""
    return ",".join(f"{p}:{end}" for p, end in sorted(marks.items()) if end > 0)


def parse_legacy(text: str | None) -> dict[int, int]:
    """``legacy_text``'s inverse; text that does not parse holds none (nothing is legacy)."""
    if not text or not _LEGACY.fullmatch(text):
        return {}
    marks = {int(p): int(end) for p, end in (part.split(":") for part in text.split(","))}
    if max(marks.values()) > _MAX_OFFSET:  # as the JVM twin: a long holds no such offset
        return {}
    return marks


def _field(b: bytes | None) -> bytes:
    return _LEN.pack(-1) if b is None else _LEN.pack(len(b)) + b


def labelled_mac(
    key: bytes,
    label: bytes,
    topic: str,
    partition: int,
    ts: int,
    rkey: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> bytes:
    """HMAC-SHA256 of one record's length-prefixed fields under ``label``: the encoding of the
    record MAC (``adapters.kafka_log.auth.record_mac``) and of the tenant MAC, which
    ``hub_native.record_macs`` computes for a whole batch."""
    # one joined message and the one-shot hmac.digest: about 4x faster than hmac.new + updates
    parts = [label, _field(topic.encode()), _POS.pack(partition, ts), _field(rkey), _field(value)]
    for name, v in headers:
        parts.append(_field(name.encode()))
        parts.append(_field(v))
    return hmac.digest(key, b"".join(parts), "sha256")


def covered(headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    """The ``COVERED`` headers of a record, in ``COVERED`` order; a repeated name counts with
    its last value (as the job's header map keeps it; the hub's writer refuses repeats)."""
    last = {name: v for name, v in headers if name in COVERED}
    return [(name, last[name]) for name in COVERED if name in last]


def tenant_mac(
    key: bytes,
    topic: str,
    partition: int,
    rkey: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    ts: int,
) -> bytes:
    """The tenant MAC of a record; ``headers``: its ``covered`` headers (the encoding of
    ``auth.record_mac`` under another label, so ``hub_native.record_macs`` computes it too)."""
    return labelled_mac(key, LABEL, topic, partition, ts, rkey, value, headers)


def verified_tenant(
    key: bytes,
    topic: str,
    partition: int,
    rkey: bytes | None,
    value: bytes | None,
    headers: Mapping[str, bytes | None] | None,
    ts: int,
    legacy_key: bytes | None = None,
) -> str | None:
    """The record's ``ce_tenant`` when its ``__hub.tmac`` header verifies and it carries one in
    UTF-8 (the hub's tenant claim), else None. ``key``: the namespace's key (``namespace_key``);
    ``legacy_key``: the hub's unbound key, passed only for a record of a prefixed namespace
    below its marker (``legacy_key_of``). ``headers``: the record's headers as the job's map
    holds them; ``topic`` without the namespace prefix. The reference of the JVM function
    ``hub_tenant_ok`` (``projections/flink/java/TenantMac.java``), which the pattern jobs call
    where a Python function cannot run (their rowtime column: ``projections.flink.cep``)."""
    headers = headers or {}
    got = headers.get(TMAC_HEADER)
    if not got:
        return None
    mine = [(name, headers[name]) for name in COVERED if name in headers]
    want = tenant_mac(key, topic, partition, rkey, value, mine, ts)
    if not hmac.compare_digest(bytes(got), want) and (
        legacy_key is None
        or not hmac.compare_digest(
            bytes(got), tenant_mac(legacy_key, topic, partition, rkey, value, mine, ts)
        )
    ):
        return None
    tenant = headers.get("ce_tenant")
    if tenant is None:
        return None
    try:
        return bytes(tenant).decode()
    except UnicodeDecodeError:  # the hub writes UTF-8 names only: not one of its records
        return None


def tenant_of(
    key: bytes,
    topic: str,
    partition: int,
    rkey: bytes | None,
    value: bytes | None,
    headers: Mapping[str, bytes | None] | None,
    ts: int,
    legacy_key: bytes | None = None,
) -> str:
    """The tenant a Flink job reads a record as: its ``ce_tenant`` when the claim verifies
    (``verified_tenant``), else ``default``."""
    tenant = verified_tenant(key, topic, partition, rkey, value, headers, ts, legacy_key)
    return DEFAULT_TENANT if tenant is None else tenant


def legacy_key_of(
    hub_key: bytes, prefix: str, partition: int, offset: int | None, legacy: Mapping[int, int]
) -> bytes | None:
    """The key a record's tenant MAC may also verify under: the hub's unbound key for a record
    of a prefixed namespace below its marker's offset in ``legacy`` (``parse_legacy``), else
    None (the namespace's key only)."""
    if not prefix or offset is None or offset < 0:
        return None
    return hub_key if offset < legacy.get(partition, 0) else None


def _key(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if len(key) >= 32 else None


def env_value(keys: bytes | Mapping[str, bytes]) -> str:
    """``KEY_ENV``'s value: one key in hex (a job reading one hub's topics), or a JSON object of
    them by topic prefix (a job reading the topics of several hubs, each with its own key)."""
    if isinstance(keys, bytes):
        return keys.hex()
    return json.dumps({prefix: key.hex() for prefix, key in keys.items()}, sort_keys=True)


def parse_keys(text: str, prefixes: Sequence[str]) -> dict[str, bytes]:
    """The keys ``KEY_ENV`` holds, by topic prefix (one key: every prefix of ``prefixes``);
    a prefix without a valid key (32+ bytes of hex) is left out."""
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError:
            return {}
        if not isinstance(raw, dict):
            return {}
        found = {str(p): _key(v) for p, v in raw.items()}
        return {p: k for p, k in found.items() if k is not None}
    key = _key(text)
    return {} if key is None else dict.fromkeys(prefixes, key)


class JobTenant:
    """The jobs' ``hub_tenant`` (``projections/flink/job.py``) over the hub keys by namespace
    prefix of ``KEY_ENV`` (``parse_keys``): a record's ``tenant_of`` under its namespace's key
    (``namespace_key``, derived once per prefix), and under the hub's key itself only below the
    namespace's legacy offsets (``legacy``: ``legacy_text`` of its topic, parsed once per
    text). The JVM twin is ``TenantMac.Namespace`` (``hub_tenant_ok``)."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self.keys = dict(keys)
        self.bound = {prefix: namespace_key(key, prefix) for prefix, key in self.keys.items()}
        self.legacy: dict[str, dict[int, int]] = {}

    def __call__(
        self,
        headers: Mapping[str, bytes | None] | None,
        rkey: bytes | None,
        value: bytes | None,
        partition: int,
        ts: int,
        topic: str,
        prefix: str,
        offset: int | None,
        legacy: str | None,
    ) -> str:
        marks = self.legacy.get(legacy or "")
        if marks is None:  # one text per source table
            marks = self.legacy[legacy or ""] = parse_legacy(legacy)
        old = legacy_key_of(self.keys[prefix], prefix, partition, offset, marks)
        return tenant_of(self.bound[prefix], topic, partition, rkey, value, headers, ts, old)
