"""Recompute a projection's views with Spark from the lake, and digest them like the runner.

``SparkBackfill(launcher).recompute(projection, files)`` runs ``projections/spark_job.py`` on
the Parquet data files of the lake's ``raw.<topic>`` tables (``storage.lake``; the caller lists
the files of the table's current Iceberg snapshot) and returns, per view table, the rows in key
order (code-point order, as ``projections.flink.postgres``) with their ``projections.digest``
digest: equal to ``ProjectionService.digest`` of the embedded runner's view when both folded the
same records (the differential test, ``tests/ha/test_spark_backfill.py``).

What compiles: ``payment_aggregates`` (``SUPPORTED``). The late side output
(``late_mode="side"``) is refused, as on Flink: it depends on per-partition watermarks, i.e. on
arrival order, which a batch over the lake does not see; with the default ``"update"`` a late event
updates its window in every engine and the late table stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import ConfigError, InvalidInput
from core.projection import Projection, Row, Table, Windowing
from projections.digest import digest
from projections.spark_launch import SparkLauncher

JOB = Path(__file__).with_name("spark_job.py")
SUPPORTED = ("payment_aggregates",)


class SparkUnsupported(ConfigError):
    code = "spark_unsupported"


@dataclass
class Recomputed:
    projection: str
    rows: dict[str, list[Row]] = field(default_factory=dict)
    digests: dict[str, dict[str, Any]] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)


class SparkBackfill:
    def __init__(
        self, launcher: SparkLauncher, windowing: Windowing | None = None, timeout_s: float = 1800
    ) -> None:
        self.launcher = launcher
        self.windowing = windowing or Windowing()
        self.timeout_s = timeout_s

    def check(self, p: Projection) -> None:
        if p.name not in SUPPORTED:
            raise SparkUnsupported(
                f"Projection {p.name!r} has no Spark job; Spark recomputes {', '.join(SUPPORTED)}."
            )
        if self.windowing.late_mode != "update":
            raise SparkUnsupported(
                f"Projection {p.name!r} with late_mode={self.windowing.late_mode!r} cannot be "
                "recomputed by Spark: the late side output depends on the order records "
                "arrived in, which a batch over the lake does not see. Use late_mode 'update'."
            )

    def recompute(self, p: Projection, files: Mapping[str, Sequence[str]]) -> Recomputed:
        self.check(p)
        topic = p.topics[0]
        inputs = list(files.get(topic, ()))
        if not inputs:
            raise InvalidInput(
                f"The lake has no data files for raw.{topic}: run `hub lake export --topic "
                f"{topic}` first."
            )
        threshold = Decimal(str(p.params.get("aml_threshold", "10000")))
        floor = threshold * (1 - Decimal(str(p.params.get("aml_band", "0.1"))))
        folder = self.launcher.folder(f"backfill-{p.name}")
        job = self.launcher.run(
            JOB,
            folder,
            {
                "projection": p.name,
                "topic": topic,
                "inputs": inputs,
                "params": {"threshold": format(threshold, "f"), "floor": format(floor, "f")},
                "output": str(folder),
            },
            self.timeout_s,
        )
        out = Recomputed(p.name, job=job)
        for t in p.tables:
            path = folder / f"{t.name}.json"
            rows = read_rows(t, path) if path.exists() else []
            rows.sort(key=partial(_sort_key, t))
            d, n = digest(t, rows)
            out.rows[t.name] = rows
            out.digests[t.name] = {"digest": d, "rows": n}
        return out


def read_rows(t: Table, path: Path) -> list[Row]:
    types = {c.name: c.type for c in t.columns}
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row: Row = json.loads(line)
            for name, kind in types.items():
                v = row.get(name)
                if v is not None and kind == "decimal":
                    row[name] = Decimal(v)
                elif v is not None and kind in ("int", "timestamp"):
                    row[name] = int(v)
            rows.append(row)
    return rows


def _sort_key(t: Table, row: Row) -> tuple[Any, ...]:
    return tuple((row[k] is not None, row[k]) for k in t.key)
