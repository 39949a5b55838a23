"""``hub lake recompute PROJECTION``: Spark recomputes a view from the lake and the hub compares
its digest with the embedded runner's (``projections.spark_backfill``).

Steps: 1. export the projection's topics to the lake (``raw.<topic>``, incremental, as ``hub lake
export --topic``); 2. list the Parquet data files of each table's current Iceberg snapshot;
3. run the Spark job (``infra/spark.sh install`` once) on them; 4. bring the embedded view up to
the end of the log and digest it; 5. print both digests per table: exit code 1 when one differs.
Needs ``lake.export`` and ``projection.rebuild``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from hub.cli import Ctx, authorize, run_safely
from hub.commands.lake import lake, lake_location


def data_files(catalog: Any, ident: str) -> list[str]:
    """Local paths of the Parquet files of an Iceberg table's current snapshot."""
    from core.errors import ConfigError

    table = catalog.load_table(ident)
    paths = [task.file.file_path for task in table.scan().plan_files()]
    local = [p.removeprefix("file://") for p in paths if p.startswith(("file:/", "/"))]
    if len(local) != len(paths):
        raise ConfigError(
            f"The lake table {ident} lives in object storage ({paths[0].split('/')[0]}//...); "
            "Spark reads the lake from a local folder here (HUB_OBJECT_STORE=local): an S3 lake "
            "needs Spark's hadoop-aws jars, which infra/spark.sh does not install."
        )
    return local


@lake.command("recompute")
@click.argument("projection")
@click.pass_obj
def lake_recompute(obj: Ctx, projection: str) -> None:
    """Recompute PROJECTION's views with Spark (local[N]) from the lake; compare digests with
    the embedded runner's (exit code 1 when they differ)."""
    from core.errors import Conflict, HubError
    from projections.service import projection as find
    from projections.spark_backfill import SparkBackfill
    from projections.spark_launch import SparkLauncher
    from storage.lake import export_topic, open_catalog

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "lake.export", "lake")
            authorize(h, "projection.rebuild", f"projections/{projection}")
            p = find(projection)
            s = h.settings
            backfill = SparkBackfill(
                SparkLauncher(s.spark_python, s.data_dir / "spark", s.spark_master),
                h.projections.windowing,
            )
            backfill.check(p)
            backfill.launcher.check()  # the virtualenv is there, before anything is exported
            try:
                url, warehouse, props = lake_location(s)
                catalog = open_catalog(url, warehouse, props)
                size = h.ledger.store.tree_size()
                files = {}
                rows: dict[str, int] = {}
                for topic in p.topics:  # 1. and 2.
                    rows[f"raw.{topic}"] = export_topic(
                        catalog, h.log, topic, lambda r: h.reader.decode(r, mask_pii=True), size
                    )
                    files[topic] = data_files(
                        catalog, "raw." + topic.replace(".", "_").replace("-", "_")
                    )
            except (OSError, ValueError) as exc:
                raise HubError(
                    f"The lake export before the Spark job failed: {exc}.",
                    code="lake_export_failed",
                ) from exc
            h.ledger.record_action(  # what left the hub, as `hub lake export` records it
                principal.id,
                "lake.export",
                "lake",
                tenant=principal.tenant,
                details={"ledger_size": size, "tables": rows, "for": f"recompute {p.name}"},
            )
            done = backfill.recompute(p, files)  # 3.
            h.projections.run([p.name])  # 4.
            embedded = h.projections.digest(p.name, save=False)
            tables = {  # 5.
                t: {"spark": d, "embedded": embedded[t], "equal": d == embedded[t]}
                for t, d in done.digests.items()
            }
            report = {"projection": p.name, "spark": done.job, "tables": tables}
            click.echo(json.dumps(report, indent=2, sort_keys=True))
            differ = [t for t, r in tables.items() if not r["equal"]]
            if differ:
                raise Conflict(
                    f"Spark's recomputation of {p.name} differs from the embedded view in "
                    f"{', '.join(differ)}: the lake export is behind the log, or one engine is "
                    "wrong; the rows Spark computed are in "
                    f"{s.data_dir / 'spark' / ('backfill-' + p.name)}."
                )

    run_safely(go)
