"""The event envelope: what every record carries in its Kafka headers.

Header names follow the CloudEvents Kafka protocol binding (binary content mode, ``ce_`` prefix),
so any CloudEvents-aware consumer understands hub events without the hub's code:

| header              | meaning                                                   |
| ------------------- | --------------------------------------------------------- |
| ce_specversion      | always ``1.0``                                            |
| ce_id               | event id, a UUIDv7 (time-ordered, RFC 9562)                |
| ce_type             | event type: the Avro record's full name                   |
| ce_time             | occurred-at, RFC 3339 UTC with microseconds               |
| ce_source           | producer (the publishing system or principal)             |
| ce_correlationid    | correlation id (the business flow this belongs to)        |
| ce_causationid      | the event id that caused this one (empty if none)         |
| ce_tenant           | tenant                                                    |
| ce_classification   | highest data classification in the payload               |
| content-type        | ``application/vnd.hub.avro`` (Confluent wire format value) |

Envelope headers are the ones above, every ``ce_*`` and ``hub_*`` name (the audit headers such as
``hub_action``) and ``content-type``. Kafka allows a header name to repeat; an envelope header
MUST NOT: the hub refuses to store a record that carries one twice, and a reader that meets
one stored anyway (written by another producer, or planted in the store) MUST NOT pick a copy.
:func:`duplicated_envelope_header` is the one test every reader and every gate uses.

Pure: no I/O.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

SPECVERSION = "1.0"
CONTENT_TYPE = "application/vnd.hub.avro"

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_TYPE = "ce_type"
H_TIME = "ce_time"
H_SOURCE = "ce_source"
H_CORRELATION = "ce_correlationid"
H_CAUSATION = "ce_causationid"
H_TENANT = "ce_tenant"
H_CLASSIFICATION = "ce_classification"
H_CONTENT_TYPE = "content-type"
# set on audit records (the ledger's side index reads them): the CloudEvents subject, and the
# audited action
H_SUBJECT = "ce_subject"
H_ACTION = "hub_action"

ENVELOPE_PREFIXES = ("ce_", "hub_")

CLASSIFICATIONS = ("public", "internal", "confidential", "pii", "restricted")


def is_envelope_header(name: str) -> bool:
    """Whether ``name`` is an envelope header: ``ce_*``, ``hub_*`` or ``content-type``."""
    return name.startswith(ENVELOPE_PREFIXES) or name == H_CONTENT_TYPE


def duplicated_envelope_header(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    """The first envelope header name that ``headers`` carries more than once, or None.

    Other repeated names (a caller's own headers) are allowed, as Kafka allows them.
    """
    if len(dict(headers)) == len(headers):  # no name repeats (the usual case: one C pass)
        return None
    seen: set[str] = set()
    for name, _ in headers:
        if name in seen and is_envelope_header(name):
            return name
        seen.add(name)
    return None


def duplicated_envelope_name(names: tuple[str, ...] | list[str]) -> str | None:
    """:func:`duplicated_envelope_header` of a header-name row (the column form of a batch)."""
    if len(set(names)) == len(names):
        return None
    seen: set[str] = set()
    for name in names:
        if name in seen and is_envelope_header(name):
            return name
        seen.add(name)
    return None


_last_ms = -1
_last_counter = 0
# Counter starts for ``reserve_uuid7``, 16 random bits each, drawn 4 KiB at a time: each
# ``os.urandom`` call releases the GIL, and an event loop issuing ids (policy decisions) then
# waited behind the other threads once per millisecond to take it back. A forked child draws
# its own (the parent's pool would repeat the parent's next counters).
_seeds: list[int] = []
os.register_at_fork(after_in_child=_seeds.clear)


def _seed() -> int:
    while True:
        try:
            return _seeds.pop()  # atomic: threads never share a seed
        except IndexError:
            _seeds.extend(memoryview(os.urandom(4096)).cast("H"))


def uuid7(now_ns: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, version, 12-bit counter, random bits.

    Within one process ids strictly increase, even within one millisecond: ``rand_a`` is a counter
    seeded randomly each new millisecond (RFC 9562 §6.2, method 1); if it overflows, the timestamp
    is advanced by one millisecond.
    """
    global _last_ms, _last_counter
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    if ms <= _last_ms:
        ms, counter = _last_ms, _last_counter + 1
        if counter > 0xFFF:
            ms, counter = ms + 1, 0
    else:
        counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave headroom to count up
    _last_ms, _last_counter = ms, counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0x2 << 62) | rand_b
    return uuid.UUID(int=value)


def reserve_uuid7(n: int, now_ns: int | None = None) -> tuple[int, int]:
    """Reserve ``n`` consecutive UUIDv7 (millisecond, counter) slots; returns the first.

    Slot ``i`` is ``first + i`` in units of ``ms * 4096 + counter`` (a counter overflow carries
    into the millisecond, as ``uuid7`` does), so ids built from the slots strictly increase and
    never collide with ids from ``uuid7`` in this process. Only the random bits are left to the
    caller (a batch generator draws them with one ``os.urandom`` call).
    """
    global _last_ms, _last_counter
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    first = _last_ms * 4096 + _last_counter + 1 if ms <= _last_ms else ms * 4096 + (_seed() & 0x7FF)
    if n > 0:
        _last_ms, _last_counter = divmod(first + n - 1, 4096)
    return divmod(first, 4096)


def rfc3339_micros(dt: datetime) -> str:
    """UTC timestamp as ``2026-11-25T19:41:58.123456Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Metadata of one event. ``event_type`` is the Avro full name of its payload."""

    event_type: str
    producer: str
    tenant: str = "default"
    classification: str = "internal"
    event_id: str = field(default_factory=lambda: str(uuid7()))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str = ""
    causation_id: str = ""

    def __post_init__(self) -> None:
        if self.classification not in CLASSIFICATIONS:
            raise ValueError(
                f"classification {self.classification!r} is not one of {', '.join(CLASSIFICATIONS)}"
            )
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", self.event_id)

    def to_headers(self) -> tuple[tuple[str, bytes], ...]:
        return (
            (H_SPECVERSION, SPECVERSION.encode()),
            (H_ID, self.event_id.encode()),
            (H_TYPE, self.event_type.encode()),
            (H_TIME, rfc3339_micros(self.occurred_at).encode()),
            (H_SOURCE, self.producer.encode()),
            (H_CORRELATION, self.correlation_id.encode()),
            (H_CAUSATION, self.causation_id.encode()),
            (H_TENANT, self.tenant.encode()),
            (H_CLASSIFICATION, self.classification.encode()),
            (H_CONTENT_TYPE, CONTENT_TYPE.encode()),
        )

    @classmethod
    def from_headers(cls, headers: tuple[tuple[str, bytes], ...]) -> Envelope:
        """Rebuild the envelope; raises ``KeyError`` naming a missing required header and
        ``ValueError`` naming an envelope header that is carried twice."""
        twice = duplicated_envelope_header(headers)
        if twice is not None:
            raise ValueError(f"The envelope header {twice!r} is carried more than once.")
        h = {k: v.decode() for k, v in headers}
        return cls(
            event_type=h[H_TYPE],
            producer=h[H_SOURCE],
            tenant=h.get(H_TENANT, "default"),
            classification=h.get(H_CLASSIFICATION, "internal"),
            event_id=h[H_ID],
            occurred_at=parse_rfc3339(h[H_TIME]),
            correlation_id=h.get(H_CORRELATION, ""),
            causation_id=h.get(H_CAUSATION, ""),
        )
