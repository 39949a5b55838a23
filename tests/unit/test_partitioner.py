"""Kafka's murmur2 partitioner: vectors from Kafka's own UtilsTest.testMurmur2."""

from __future__ import annotations

import pytest

from core.partitioner import default_partition, murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed 32-bit results)
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    got = murmur2(data)
    assert (got - 2**32 if got >= 2**31 else got) == expected


def test_partition_is_positive_modulo_like_kafka() -> None:
    # Kafka: Utils.toPositive(murmur2(key)) % numPartitions
    for key in KAFKA_VECTORS:
        assert default_partition(key, 7) == (murmur2(key) & 0x7FFFFFFF) % 7
    assert default_partition(None, 12) == 0
    assert {default_partition(str(i).encode(), 3) for i in range(100)} == {0, 1, 2}
