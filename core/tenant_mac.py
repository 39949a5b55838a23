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

A job reads a record's tenant through ``tenant_of``: ``ce_tenant`` only when the tenant MAC
verifies, else ``default``, which is what the hub's own reader does with a data record whose
record MAC fails (``auth._external``: its tenant claim dropped). So a producer with broker
access but without the hub's keys cannot put rows into another tenant's Flink views, nor change
the event type or time of a copy of a genuine record.

Standard library only: the PyFlink workers import this file (``projections/flink/job.py``)."""

from __future__ import annotations

import hmac
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Final

TMAC_HEADER: Final = "__hub.tmac"
KEY_ENV: Final = "HUB_FLINK_TENANT_KEY"  # hex, in a Flink job's environment (never its spec)
PURPOSE: Final = b"hub flink tenant MAC"  # its derivation label (not the record MAC's)
FUNCTION: Final = "hub_tenant"  # the jobs' scalar function (``projections/flink/job.py``)
COVERED: Final = ("ce_tenant", "ce_type", "ce_time")  # the headers the Flink jobs read
LABEL: Final = b"hub.kafka.tenant.v1\n"
DEFAULT_TENANT: Final = "default"
_LEN = struct.Struct(">q")  # -1: None
_POS = struct.Struct(">Iq")  # partition, timestamp


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
) -> str | None:
    """The record's ``ce_tenant`` when its ``__hub.tmac`` header verifies and it carries one in
    UTF-8 (the hub's tenant claim), else None. ``headers``: the record's headers as the job's map
    holds them; ``topic`` without the namespace prefix. The reference of the JVM function
    ``hub_tenant_ok`` (``projections/flink/java/TenantMac.java``), which the pattern jobs call
    where a Python function cannot run (their rowtime column: ``projections.flink.cep``)."""
    headers = headers or {}
    got = headers.get(TMAC_HEADER)
    if not got:
        return None
    mine = [(name, headers[name]) for name in COVERED if name in headers]
    want = tenant_mac(key, topic, partition, rkey, value, mine, ts)
    if not hmac.compare_digest(bytes(got), want):
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
) -> str:
    """The tenant a Flink job reads a record as: its ``ce_tenant`` when the claim verifies
    (``verified_tenant``), else ``default``."""
    tenant = verified_tenant(key, topic, partition, rkey, value, headers, ts)
    return DEFAULT_TENANT if tenant is None else tenant


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
