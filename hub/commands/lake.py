"""``hub lake export``: raw topics and projection views as Apache Iceberg tables
(``storage.lake``), in the object store's ``lake/`` (a folder, or the S3 bucket), with a
pyiceberg SQL catalog (``HUB_LAKE_CATALOG_URL``; default SQLite beside the local object folder).
Needs ``lake.export``. Readers: Spark, Flink, Trino, DuckDB, ClickHouse (``icebergLocal``,
``icebergS3``) or pyiceberg, with the catalog or straight from a table's folder.
"""

from __future__ import annotations

import json
from typing import Any

import click

from hub.cli import Ctx, authorize, main, run_safely


def lake_location(settings: Any) -> tuple[str, str, dict[str, str]]:
    """(catalog URL, warehouse URL, pyiceberg properties) for the configured object store."""
    if settings.object_store == "s3":
        from hub.bootstrap import build_object_store

        build_object_store(settings)  # creates the bucket, or names what is wrong
        prefix = settings.s3_prefix.strip("/")
        warehouse = f"s3://{settings.s3_bucket}/{prefix + '/' if prefix else ''}lake"
        scheme = "https" if settings.s3_secure else "http"
        props = {
            "s3.endpoint": f"{scheme}://{settings.s3_endpoint}",
            "s3.access-key-id": settings.s3_access_key,
            "s3.secret-access-key": settings.s3_secret_key.get_secret_value(),
            "s3.region": "us-east-1",
        }
        local = settings.data_dir / "lake"
    elif settings.object_store == "hdfs":
        from core.errors import ConfigError

        raise ConfigError(
            "The lake cannot be written to HDFS here: pyiceberg reaches HDFS only through "
            "pyarrow's HadoopFileSystem, which needs the native libhdfs.so that this machine "
            "lacks (WebHDFS serves backups and the cold tier). Export the lake with "
            "HUB_OBJECT_STORE=local or s3 for this command."
        )
    else:
        local = settings.objects_dir / "lake"
        warehouse, props = (local / "warehouse").resolve().as_uri(), {}
    local.mkdir(parents=True, exist_ok=True)
    url = settings.lake_catalog_url or f"sqlite:///{(local / 'catalog.sqlite').resolve()}"
    return url, warehouse, props


@main.group()
def lake() -> None:
    """The lake: raw topics and views as Apache Iceberg tables."""


@lake.command("export")
@click.option("--topic", "topics", multiple=True, help="Only these topics (default: domain).")
@click.option("--no-views", is_flag=True, help="Skip the projection views.")
@click.pass_obj
def lake_export(obj: Ctx, topics: tuple[str, ...], no_views: bool) -> None:
    """Append new records of each topic to raw.<topic>; replace views.<projection>__<table>."""
    from core.errors import HubError
    from core.ports.views import Target
    from projections.catalog import PROJECTIONS
    from storage.lake import (
        NEXT_OFFSETS,
        RAW_NS,
        LakeReport,
        export_topic,
        export_view,
        open_catalog,
    )
    from storage.lake_verify import view_digest

    positions: dict[str, Any] = {}  # raw table -> hub.next_offsets after this export
    views: dict[str, Any] = {}  # view table -> {"sha256", "rows"} written by this export

    def go() -> None:
        with obj.hub() as h:
            principal = authorize(h, "lake.export", "lake")
            try:
                report = export(h)
            except (OSError, ValueError) as exc:  # pyarrow's filesystems, pyiceberg's checks
                raise HubError(
                    f"The lake export failed: {exc}. Check the object store settings "
                    "(HUB_OBJECT_STORE, HUB_S3_*) and HUB_LAKE_CATALOG_URL.",
                    code="lake_export_failed",
                ) from exc
            # The decision above says the export was allowed; this says it ran and what left
            # the hub (tables, rows, the ledger size covered), as backup.create records.
            h.ledger.record_action(
                principal.id,
                "lake.export",
                "lake",
                tenant=principal.tenant,
                # not the catalog URL: it may carry a database password (the ledger is forever)
                # next_offsets: where each raw table's export reached, so `hub lake verify`
                # notices a table rolled back to an older metadata file (its newest rows hidden)
                # views: each view table's digest, which verify compares (its rows cannot be
                # re-derived from the log later: the projection moved on)
                details={
                    "ledger_size": report.ledger_size,
                    "tables": report.tables,
                    "next_offsets": positions,
                    **({"views": views} if views else {}),
                },
            )
            click.echo(json.dumps(report.as_dict(), indent=2))

    def export(h: Any) -> LakeReport:
        url, warehouse, props = lake_location(h.settings)
        catalog = open_catalog(url, warehouse, props)
        size = h.ledger.store.tree_size()
        report = LakeReport(warehouse=warehouse, catalog=url.split("?")[0], ledger_size=size)
        names = list(topics) or [
            t.name for t in h.log.topics() if not t.name.startswith(("hub.", "_"))
        ]
        for name in names:
            n = export_topic(
                catalog, h.log, name, lambda r: h.reader.decode(r, mask_pii=True), size
            )
            report.tables[f"raw.{name}"] = n
            table = catalog.load_table(f"{RAW_NS}.{_topic_table(name)}")
            positions[f"raw.{name}"] = json.loads(table.properties[NEXT_OFFSETS])
        if not no_views:
            names = [p.name for p in PROJECTIONS]
            h.projections.run(names)
            for proj in PROJECTIONS:
                store = h.projections.store(proj.store)
                for table in proj.tables:
                    rows = store.rows(Target(proj.name), table)
                    ident = f"views.{_topic_table(proj.name)}__{_topic_table(table.name)}"

                    def digest(data: Any, ident: str = ident) -> None:
                        sha, n = view_digest(data.to_batches(), data.schema.names)
                        views[ident] = {"sha256": sha, "rows": n}

                    n = export_view(catalog, proj.name, table, rows, size, written=digest)
                    report.tables[f"views.{proj.name}__{table.name}"] = n
        return report

    run_safely(go)


@lake.command("verify")
@click.argument("tables", nargs=-1)
@click.pass_obj
def lake_verify(obj: Ctx, tables: tuple[str, ...]) -> None:
    """Check raw.<topic> tables (default: every one) row by row against the log and the
    ledger, and views.<projection>__<table> tables against the digest their export recorded on
    the ledger (``storage.lake_verify``); exit 1 naming the first problem. Needs
    ``ledger.verify``."""
    from pyiceberg.exceptions import NoSuchTableError

    from core.errors import HubError
    from ledger.leaves import LeafEncoder
    from storage.lake import RAW_NS, VIEWS_NS, lake_tampered, open_catalog
    from storage.lake_verify import verify_topic_table, verify_view_table

    def go() -> None:
        with obj.hub() as h:
            authorize(h, "ledger.verify", "lake")
            url, warehouse, props = lake_location(h.settings)
            catalog = open_catalog(url, warehouse, props)
            recorded, recorded_views = _recorded_exports(h)
            views = sorted(n for n in tables if n.startswith(f"{VIEWS_NS}."))
            names = {
                n.removeprefix(f"{RAW_NS}."): n for n in tables if not n.startswith(f"{VIEWS_NS}.")
            }
            topics = {_topic_table(t.name): t.name for t in h.log.topics()}
            if not tables:
                names = {name: name for _, name in catalog.list_tables(RAW_NS)}
                views = sorted(f"{VIEWS_NS}.{name}" for _, name in catalog.list_tables(VIEWS_NS))
                # the catalog lists what is there; the ledger says what was exported. A table
                # dropped from the catalog (whose writer is not the hub) left nothing to check
                # and verify answered ok over the rest.
                gone = sorted(
                    {t for t in recorded if _topic_table(t.removeprefix(f"{RAW_NS}.")) not in names}
                    | (set(recorded_views) - set(views))
                )
                if gone:
                    raise lake_tampered(
                        gone[0],
                        "the catalog no longer lists it, though the ledger's lake.export entries "
                        f"record it as exported (dropped: {', '.join(gone[:5])})",
                    )
            report = []
            for name, given in sorted(names.items()):
                topic = topics.get(name) or topics.get(_topic_table(name))
                if topic is None:
                    raise HubError(
                        f"No topic of the log matches the lake table {given!r}: give a table "
                        f"listed by the catalog as {RAW_NS}.<topic> or "
                        f"{VIEWS_NS}.<projection>__<table>.",
                        code="lake_table_unknown",
                    )
                try:
                    check = verify_topic_table(
                        catalog,
                        h.log,
                        h.ledger.store,
                        topic,
                        lambda r: h.reader.decode(r, mask_pii=True),
                        LeafEncoder().leaf_hashes,
                        recorded.get(f"raw.{topic}"),
                    )
                except NoSuchTableError as exc:
                    raise HubError(
                        f"The lake has no table {RAW_NS}.{name}: topic {topic!r} was never "
                        "exported (`hub lake export --topic`), or the table was dropped.",
                        code="lake_table_unknown",
                    ) from exc
                except (OSError, ValueError) as exc:  # pyarrow's filesystems, pyiceberg
                    raise HubError(
                        f"The lake table {given!r} could not be read: {exc}.",
                        code="lake_verify_failed",
                    ) from exc
                report.append(check.as_dict())
            pii = _view_pii_columns()
            for ident in views:
                try:
                    check = verify_view_table(
                        catalog, ident, recorded_views.get(ident), pii.get(ident, ())
                    )
                except NoSuchTableError as exc:
                    raise HubError(
                        f"The lake has no table {ident}: its view was never exported "
                        "(`hub lake export`), or the table was dropped.",
                        code="lake_table_unknown",
                    ) from exc
                except (OSError, ValueError) as exc:
                    raise HubError(
                        f"The lake table {ident!r} could not be read: {exc}.",
                        code="lake_verify_failed",
                    ) from exc
                report.append(check.as_dict())
            click.echo(json.dumps({"ok": True, "tables": report}, indent=2))

    run_safely(go)


def _view_pii_columns() -> dict[str, tuple[str, ...]]:
    """Per view table of the lake, its PII columns (the export writes them NULL)."""
    from projections.catalog import PROJECTIONS

    return {
        f"views.{_topic_table(p.name)}__{_topic_table(t.name)}": tuple(
            c.name for c in t.columns if c.pii and c.agg != "derived"
        )
        for p in PROJECTIONS
        for t in p.tables
    }


def _recorded_exports(h: Any) -> tuple[dict[str, dict[int, int]], dict[str, dict[str, Any]]]:
    """Per raw table, the newest ``hub.next_offsets`` a ``lake.export`` entry of the ledger
    records (exports before this was recorded name none), and per view table the newest
    ``{"sha256", "rows"}``. The catalog and the warehouse are in the object store: pointing a
    table back at an older metadata file (Iceberg keeps them all) leaves a consistent, shorter
    table that the row checks alone pass."""
    from core.errors import HubError
    from ledger.cuts import audit_details
    from ledger.service import AUDIT_TOPIC

    out: dict[str, dict[int, int]] = {}
    views: dict[str, dict[str, Any]] = {}
    after = -1
    while rows := h.ledger.store.query(action="lake.export", after=after, limit=1000):
        for row in rows:
            # the hub's own audit records only: a data record's action column is its event
            # type, which a publisher names (a schema called lake.export vouched for a forged
            # view table, and the newest entry wins)
            if row[1] != AUDIT_TOPIC:
                continue
            rec = h.ledger.record_at(row[1], row[2], row[3])
            try:
                details = audit_details(h.ledger, None if rec is None else rec.value)
            except (HubError, ValueError, KeyError, TypeError, AttributeError):
                continue  # the policy decision on lake.export is an entry too, without details
            try:
                for table, parts in (details.get("next_offsets") or {}).items():
                    out[table] = {int(p): int(o) for p, o in parts.items()}
                for table, digest in (details.get("views") or {}).items():
                    views[str(table)] = dict(digest)
            except (ValueError, TypeError, AttributeError):
                continue  # an export recorded before these were: nothing to compare
        after = rows[-1][0]
    return out, views


def _topic_table(name: str) -> str:
    from storage.lake import _table_name

    return _table_name(name)
