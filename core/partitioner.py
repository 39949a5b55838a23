"""Kafka's default partitioner, so a key lands on the partition number Kafka would pick.

Kafka's Java client (``BuiltInPartitioner.partitionForKey``) computes
``toPositive(murmur2(keyBytes)) % numPartitions`` where ``toPositive(x) = x & 0x7fffffff``;
librdkafka offers the same as ``murmur2_random``. Keyless records go to partition 0 here (not
Kafka's sticky random choice) so that the embedded and the Kafka footprint place every record
identically.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data`` as an unsigned int (``Utils.murmur2`` in Kafka)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    tail = 4 * n4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def default_partition(key: bytes | None, partitions: int) -> int:
    """The partition for ``key`` among ``partitions``: Kafka's choice for keyed records, else 0."""
    if key is None:
        return 0
    return (murmur2(key) & 0x7FFFFFFF) % partitions
