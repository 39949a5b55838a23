"""A projection recomputed in batch by Spark from the lake: run by the Spark virtualenv's
interpreter, never imported by the hub (``infra/spark.sh python``; the hub's lock holds no pyspark).

    <spark-venv>/bin/python projections/spark_job.py SPEC.json

Standard library and pyspark only. Input: the Parquet data files of the lake's ``raw.<topic>``
table (``storage.lake``: partition, offset, headers as JSON, the value decoded to JSON with PII
masked). Output: one JSON file per view table, each row with its key and value columns
(decimals as exact text, timestamps as integer microseconds) and ``src_offsets``
``[[topic, partition, first, last, count], ...]`` ordered by partition: the embedded views'
shape, so the hub digests them with ``projections.digest`` and compares byte for byte.

Projections: ``payment_aggregates`` (``projections.folds.fold_payment_aggregates`` in Spark SQL:
PaymentInitiated events into daily volumes per corridor and daily AML aggregates per account,
the near-threshold band from the spec). Steps, numbered as in the code:
  1. one Spark session (``spec["master"]``, UTC session time zone, no UI);
  2. read the files, keep PaymentInitiated records, take tenant and type from the headers
     (``default`` tenant when absent, as the runner does), parse the value's fields; amounts
     are cast to DECIMAL(38, 18) (exact), the event time to microseconds, the UTC day from it;
  3. aggregate per view key AND source partition (first/last offset, count), then per key,
     collecting the partition ranges: the same partial rows the embedded runner keeps;
  4. write ``<table>.json`` (one JSON row per line), then ``result.json`` last.
An error is printed as one ``HubJobError: ...`` line on stderr and the exit code is 3.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

DAY_US = 86_400_000_000


class HubJobError(Exception):
    pass


def payment_aggregates(spark: Any, spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType, StringType, StructField, StructType

    value_schema = StructType(
        [
            StructField(name, StringType())
            for name in ("account_id", "amount", "currency", "counterparty_country", "initiated_at")
        ]
    )
    raw = spark.read.parquet(*spec["inputs"])  # 2.
    headers = F.from_json("headers", MapType(StringType(), StringType()))
    value = F.from_json("value_json", value_schema)
    amount = F.col("v.amount").cast("decimal(38,18)")
    at_us = F.unix_micros(F.to_timestamp(F.col("v.initiated_at")))
    events = (
        raw.where(F.col("value_json").isNotNull())
        .select(
            F.coalesce(headers.getItem("ce_tenant"), F.lit("default")).alias("tenant"),
            headers.getItem("ce_type").alias("event_type"),
            F.col("partition").cast("long").alias("src_partition"),
            F.col("offset").alias("src_offset"),
            value.alias("v"),
        )
        .where(F.col("event_type") == "hub.payments.PaymentInitiated")
        .select(
            "tenant",
            "src_partition",
            "src_offset",
            F.col("v.account_id").alias("account_id"),
            F.col("v.currency").alias("currency"),
            F.col("v.counterparty_country").alias("country"),
            amount.alias("amount"),
            (at_us - F.pmod(at_us, F.lit(DAY_US))).alias("day"),
        )
        .cache()  # read and parsed once: checked, then aggregated twice
    )
    bad = events.where(F.col("amount").isNull() | F.col("day").isNull()).count()
    if bad:
        raise HubJobError(
            f"{bad} PaymentInitiated records in the lake have no readable amount or "
            "initiated_at; export the lake again (hub lake export) and check the schema."
        )
    floor = F.lit(spec["params"]["floor"]).cast("decimal(38,18)")
    threshold = F.lit(spec["params"]["threshold"]).cast("decimal(38,18)")
    near = (F.col("amount") >= floor) & (F.col("amount") < threshold)
    zero = F.lit(0).cast("decimal(38,18)")
    tables = {
        "payment_volumes_1d": (
            ["tenant", "day", "currency", "country"],
            [F.sum("amount").alias("amount")],
        ),
        "aml_daily": (
            ["tenant", "account_id", "day", "currency"],
            [
                F.sum("amount").alias("amount"),
                F.sum(F.when(near, 1).otherwise(0)).alias("near_threshold"),
                F.sum(F.when(near, F.col("amount")).otherwise(zero)).alias("near_threshold_amount"),
            ],
        ),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    topic = spec["topic"]
    for table, (key, values) in tables.items():
        partial = events.groupBy(*key, "src_partition").agg(  # 3.
            F.count(F.lit(1)).alias("events"),
            F.min("src_offset").alias("src_first"),
            F.max("src_offset").alias("src_last"),
            *values,
        )
        sums = ["events", *(c for c in partial.columns[len(key) + 4 :])]
        merged = partial.groupBy(*key).agg(
            *[F.sum(c).alias(c) for c in sums],
            F.sort_array(
                F.collect_list(
                    F.struct("src_partition", "src_first", "src_last", F.col("events").alias("n"))
                )
            ).alias("ranges"),
        )
        rows = []
        for r in merged.collect():
            row = {k: r[k] for k in key}
            for c in sums:
                row[c] = r[c] if c in ("events", "near_threshold") else format(r[c], "f")
            row["events"] = int(row["events"])
            row["src_offsets"] = [
                [topic, int(g["src_partition"]), int(g["src_first"]), int(g["src_last"]), g["n"]]
                for g in r["ranges"]
            ]
            rows.append(row)
        out[table] = rows
    return out


JOBS = {"payment_aggregates": payment_aggregates}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import pyspark
    from pyspark.sql import SparkSession

    job = JOBS.get(spec["projection"])
    if job is None:
        raise HubJobError(f"No Spark job for projection {spec['projection']!r}.")
    t0 = time.monotonic()
    spark = (  # 1.
        SparkSession.builder.master(spec["master"])
        .appName(f"hub-backfill-{spec['projection']}")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    session = time.monotonic() - t0
    try:
        t = time.monotonic()
        tables = job(spark, spec)
        compute = time.monotonic() - t
    finally:
        spark.stop()
    folder = Path(spec["output"])
    counts = {}
    for table, rows in tables.items():  # 4.
        with open(folder / f"{table}.json", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        counts[table] = len(rows)
    return {
        "spark_version": pyspark.__version__,
        "tables": counts,
        "seconds": {"session": round(session, 3), "compute": round(compute, 3)},
    }


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        result = run(spec)
    except HubJobError as exc:
        print(f"HubJobError: {exc}", file=sys.stderr)
        return 3
    out = spec_path.with_name("result.json")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
