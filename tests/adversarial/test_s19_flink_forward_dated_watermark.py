"""FIXED (session 19): a tenant's own publisher could blind the Flink pattern jobs of every tenant
with payments dated years ahead, one per partition (its keys pick the partitions).

The embedded engine bounds how far an event time moves a partition's watermark: at most
``max_delay_ms`` past the record's append time (``projections.pattern_state`` contract 5), so such
a record is matched as usual but makes nothing late. The Flink jobs had no such bound
(``WATERMARK FOR ts AS ts - max_delay``): the hub accepts any ``occurred_at`` from an authenticated
publisher and stamps ``ce_time`` with it, so a globex publisher key could make acme's payments late
in Flink (dropped by ``MATCH_RECOGNIZE``: no structuring alert) while the embedded engine raised it.
Now the source tables' watermark is ``LEAST(ts, src_ts + max_delay) - max_delay``, the same rule
(``src_ts``: the Kafka timestamp the hub stamps at append).

What is checked here: the compiled SQL of every pattern source carries both bounds (this one and
the unauthenticated-record one, ``hub_tenant_ok``) and both are pushed into the Kafka source as
planned by Flink 2.2.1 (checked by hand with EXPLAIN in session 19: ``watermark=[-(LEAST(...``
inside every ``TableSourceScan``). Not reproduced on a real run: a bounded job reads a few dozen
records between two periodic watermarks, so the lateness before the fix did not show there
(``tests/differential/test_flink_patterns.py`` checks both engines still agree).
"""

from __future__ import annotations

import re
from decimal import Decimal

from hub.pattern_alerts import PATTERNS
from projections.flink.cep import compile_pattern, interval
from projections.patterns import PriceSpike, Structuring
from tests.unit.test_flink_compile import AT


def _sources(p: Structuring | PriceSpike) -> list[str]:
    spec = compile_pattern(p, AT)
    return [s for s in spec.statements if "'connector' = 'kafka'" in s]


def test_every_pattern_watermark_is_bounded_by_the_append_time() -> None:
    patterns = [*PATTERNS, Structuring(max_delay_ms=7_200_000), PriceSpike(pct=Decimal(5))]
    for p in patterns:
        sources = _sources(p)
        assert len(sources) == (1 if isinstance(p, Structuring) else 2)
        delay = re.escape(interval(p.max_delay_ms))
        for sql in sources:
            (watermark,) = re.findall(r"WATERMARK FOR .*", sql)
            assert re.fullmatch(
                rf"WATERMARK FOR `ts` AS LEAST\(`ts`, `src_ts` \+ {delay}\) - {delay}", watermark
            ), watermark


def test_every_pattern_rowtime_is_the_epoch_without_the_hubs_claim() -> None:
    for p in PATTERNS:
        for sql in _sources(p):
            (rowtime,) = re.findall(r"`ts` AS TO_TIMESTAMP_LTZ\(.*", sql)
            assert rowtime.startswith("`ts` AS TO_TIMESTAMP_LTZ(CASE WHEN `hub_tenant_ok`(")
            assert rowtime.endswith("ELSE 0 END, 3),")
