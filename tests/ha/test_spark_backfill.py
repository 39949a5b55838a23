"""Spark recomputes ``payment_aggregates`` from the lake (issue 17 item 7): ``hub lake recompute``
exports ``raw.payments`` to the Iceberg lake, Spark ``local[2]`` aggregates the snapshot's
Parquet files, and every view's digest equals the embedded runner's, byte for byte.

The events are the Flink differential's (``tests/differential/test_flink_projections``): both
edges of a UTC day, both edges of the AML band, a day-late batch, two tenants, settled and failed
events the aggregates skip, several partitions. ONE Spark job for the module, in the Spark
session the ML module's job shares (``shared_spark``). Needs the Spark
virtualenv (``bash infra/spark.sh install``): skipped loudly without it, failed under CI=true.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from projections.catalog import PAYMENT_AGGREGATES
from projections.spark_backfill import read_rows
from tests.cli_keys import admin_args
from tests.differential.test_flink_projections import aml_oracle, batches
from tests.infra import require

# Spark start-up on a loaded 2-core machine took minutes (load 20-40): a wide bound.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1500),
    pytest.mark.usefixtures("shared_spark"),  # one Spark session for both Spark modules
]


def test_spark_recomputes_payment_aggregates_from_the_lake_with_the_same_digest(
    tmp_path: Path,
) -> None:
    require("spark", "the Spark backfill test")
    data = tmp_path / "data"
    args = admin_args(data)
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        for tenant, events in batches():
            hub.publisher.publish("payments", events, producer="differential", tenant=tenant)
        assert len(hub.log.end_offsets("payments")) > 1  # several partitions
    finally:
        hub.close()

    r = CliRunner().invoke(main, [*args, "lake", "recompute", "payment_aggregates"])
    assert r.exit_code == 0, r.output
    report: dict[str, Any] = json.loads(r.stdout)
    print(f"\nSpark job: {json.dumps(report['spark'], sort_keys=True)}")
    tables = report["tables"]
    assert set(tables) == {t.name for t in PAYMENT_AGGREGATES.tables}
    for name, got in tables.items():
        assert got["equal"] and got["spark"] == got["embedded"], (name, got)
    assert tables["payment_volumes_1d"]["spark"]["rows"] > 0
    assert tables["aml_daily"]["spark"]["rows"] > 0
    assert tables["payment_aggregates_late"]["embedded"]["rows"] == 0  # late_mode "update"

    # ... and about the right numbers (not two equal mistakes): an oracle from the inputs
    folder = data / "spark" / "backfill-payment_aggregates"
    rows = read_rows(PAYMENT_AGGREGATES.table("aml_daily"), folder / "aml_daily.json")
    assert {
        (r["tenant"], r["account_id"], r["day"]): (
            r["events"],
            r["amount"],
            r["near_threshold"],
            r["near_threshold_amount"],
        )
        for r in rows
    } == aml_oracle(batches())
    for r in rows:  # the source ranges account for every event of the row
        assert {t for t, *_ in r["src_offsets"]} == {"payments"}
        assert sum(n for *_, n in r["src_offsets"]) == r["events"]
