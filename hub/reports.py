"""Reports (issue 15): the daily compliance report, the data-quality report, the daily trading
summary (``hub.reports_trading``) and the CC6 access review (``hub.reports_access``), rendered
as HTML and PDF inside a signed pack (``audit.signed``, format ``hub-report/v1``); signed
exports of a query (format ``hub-export/v1``).

Contract:
1. A report is derived at one signed ledger checkpoint (the ledger is synced and a checkpoint
   forced first); every figure comes from a named query whose rows go into ``data.json`` and
   whose row count and digest go into the manifest, with the projections' own row digests.
   View queries run through the guarded query path as the principal (decided and recorded).
2. The manifest is signed with the ledger key; the pack verifies offline with
   ``hub-verify bundle <zip>`` or ``hub report verify``: a changed byte anywhere is refused.
3. The report is recorded as an event (``hub.ReportCreated`` on ``hub.reports``, so on the
   ledger) naming its manifest digest; the pack is kept under ``<data_dir>/reports/``.
4. A report is cut to one tenant scope (``ledger.service.tenant_scope_of`` of the reader's
   ``report.run`` decision; None: every tenant), stated as ``tenant_scope`` in its manifest and
   its ``hub.ReportCreated`` event. A tenant-limited reader gets only its tenant's cases, keys
   and decisions; it lists and reads only reports cut to its own tenant (a hub-wide report is
   refused with 403 naming ``tenant.all``, another tenant's answers 404 as a missing one).
   The data-quality report's ingest and quarantine statistics count every tenant (they are not
   kept per tenant): a report cut to one tenant withholds them (no rows; accepted and rejected
   null) and keeps its per-tenant reconciliation.
5. The data-quality report reconciles, per check, the records accepted into a topic (counted
   from the log up to the projection's committed positions, per tenant the principal sees) with
   the total the projection holds (its count column plus its late side output), and states the
   accuracy (matched / expected) against the 99.99% goal, listing every discrepancy.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit import signed
from core.errors import Forbidden, InvalidInput, NotFound
from core.events import OutgoingEvent
from core.periodic import Periodic
from core.ports.policy import Principal
from domain.envelope import H_TENANT, H_TYPE, duplicated_envelope_header, uuid7

if TYPE_CHECKING:
    from hub.bootstrap import Hub

log = logging.getLogger("hub.reports")

REPORTS_TOPIC = "hub.reports"
CREATED = "hub.ReportCreated"
REPORTING_PRINCIPAL = Principal("hub.reports", frozenset({"compliance_officer"}))
ACCURACY_GOAL = 0.9999
KINDS = {
    "compliance-daily": "Daily compliance report",
    "data-quality": "Data quality and reconciliation report",
    "trading-daily": "Daily trading summary",
    "access-review": "Access review (SOC 2 CC6)",
}
DAILY = ("compliance-daily", "trading-daily", "access-review")  # kinds cut at a UTC day
_ID = re.compile(r"^[0-9a-f-]{36}$")


@dataclass(frozen=True)
class Recon:
    """One reconciliation check: records of ``event_type`` (None: all) in ``topic`` against the
    total of ``count_sql`` in ``projection``'s ``table`` (plus its late rows for ``table``)."""

    topic: str
    event_type: str | None
    projection: str
    store: str
    table: str
    count_expr: str
    late: bool

    @property
    def name(self) -> str:
        return f"{self.topic} -> {self.projection}.{self.table}"


RECONCILIATION = (
    Recon(
        "trades",
        "hub.trading.TradeExecuted",
        "market_bars",
        "analytics",
        "ohlcv_1m",
        "sum(events)",
        True,
    ),
    Recon(
        "trades",
        "hub.trading.TradeExecuted",
        "market_bars",
        "analytics",
        "ohlcv_1h",
        "sum(events)",
        True,
    ),
    Recon(
        "payments",
        "hub.payments.PaymentInitiated",
        "payment_aggregates",
        "analytics",
        "payment_volumes_1d",
        "sum(events)",
        True,
    ),
    Recon(
        "payments",
        "hub.payments.PaymentInitiated",
        "payment_aggregates",
        "analytics",
        "aml_daily",
        "sum(events)",
        True,
    ),
    Recon("accounts", None, "accounts", "transactional", "accounts_current", "sum(version)", False),
)


@dataclass(frozen=True)
class Report:
    report_id: str
    kind: str
    data: bytes  # the zip
    manifest: dict[str, Any]
    manifest_sha256: str


# -- helpers ----------------------------------------------------------------------------------
def _rows(table: Any) -> dict[str, Any]:
    from projections.types import render

    data, _ = render(table, "json")
    out: dict[str, Any] = json.loads(data)
    return out


class _Collector:
    """Runs the report's queries and keeps their rows (data.json) and manifest entries."""

    def __init__(self, hub: Hub, principal: Principal, tenant_scope: str | None = None) -> None:
        self.hub = hub
        self.principal = principal
        self.tenant_scope = tenant_scope  # None: every tenant
        self.data: dict[str, dict[str, Any]] = {}
        self.queries: list[dict[str, Any]] = []

    def sql(self, name: str, store: str, sql: str) -> list[dict[str, Any]]:
        found = _rows(self.hub.projections.query(self.hub.policy, self.principal, sql, store))
        return self.put(name, store, sql, found["columns"], found["rows"])

    def put(
        self, name: str, store: str, source: str, columns: list[str], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rows = json.loads(json.dumps(rows, default=str))
        self.data[name] = {"columns": columns, "rows": rows}
        self.queries.append(
            {
                "name": name,
                "store": store,
                "sql": source,
                "rows": len(rows),
                "digest": signed.rows_digest(rows),
            }
        )
        return rows


def _day(text: str | None) -> date:
    if text is None:
        return (datetime.now(UTC) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"day={text[:40]!r} is not a date: use YYYY-MM-DD (a UTC day).", code="invalid_day"
        ) from None


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(
            f"report kind {kind[:60]!r} is unknown: use one of {', '.join(sorted(KINDS))}.",
            code="invalid_report_kind",
        )
    return kind


def _of_scope(tenant_scope: str | None) -> str:
    """How a query's source names its tenant scope ("" for every tenant)."""
    return "" if tenant_scope is None else f", tenant {tenant_scope} only"


def reader_scope(
    hub: Hub,
    principal: Principal,
    row_filter: Mapping[str, str],
    context: dict[str, Any],
    resource: str = "reports",
) -> str | None:
    """The tenant a reader allowed ``report.run``/``report.read`` (or another action whose
    decision carries no row filter, such as ``catalog.read`` on ``resource`` lineage) is
    limited to (None: every tenant): ``ledger.service.tenant_scope_of`` the decision's
    ``row_filter`` when the policy set one; else the principal's own tenant unless the policy
    allows it ``tenant.all`` on ``resource`` (a decision, recorded, as the projection views ask
    it)."""
    from ledger.service import tenant_scope_of

    if row_filter:
        return tenant_scope_of(row_filter)
    wide = hub.policy.decide(principal, "tenant.all", resource, context).allow
    return None if wide else principal.tenant


def report_in_scope(report: Mapping[str, Any], tenant_scope: str | None) -> bool:
    """Whether a reader limited to ``tenant_scope`` (None: every tenant) may read a report:
    every report for None; otherwise only reports cut to that same tenant (a report recorded
    without ``tenant_scope`` covers every tenant)."""
    return tenant_scope is None or report.get("tenant_scope") == tenant_scope


def _checkpoint(hub: Hub) -> Any:
    hub.ledger.sync(force_checkpoint=True)
    size = hub.ledger.store.tree_size()
    found = hub.ledger.checkpoints(min_size=size)
    if not found:
        found = hub.ledger.checkpoints(min_size=max(0, size - 100_000))
    return found[-1]


# -- the two reports --------------------------------------------------------------------------
def _compliance(c: _Collector, day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    a0, a1 = start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")
    us0, us1 = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    aml = c.sql(
        "aml_hits",
        "analytics",
        "SELECT account_id, currency, near_threshold, near_threshold_amount, events, amount "
        f"FROM aml_daily WHERE near_threshold > 0 AND day >= '{a0}' AND day < '{a1}' "
        "ORDER BY near_threshold DESC, near_threshold_amount DESC, account_id, currency",
    )
    breaches = c.sql(
        "limit_breaches",
        "transactional",
        "SELECT account_id, currency, used, daily_limit, payments FROM payment_limits "
        f"WHERE breached = 1 AND day >= {us0} AND day < {us1} "
        "ORDER BY used DESC, account_id, currency",
    )
    iso = day.isoformat()

    def on_day(*stamps: Any) -> bool:
        return any(isinstance(s, str) and s.startswith(iso) for s in stamps)

    cases = [
        {k: v for k, v in case.items() if k in _CASE_FIELDS}
        for case in c.hub.cases.list_cases()
        if on_day(case.get("opened_at"), case.get("closed_at"))
        and (c.tenant_scope is None or case.get("tenant") == c.tenant_scope)
    ]
    c.put(
        "cases",
        "log",
        f"hub.cases: opened or closed on {iso}{_of_scope(c.tenant_scope)}",
        list(_CASE_FIELDS),
        cases,
    )
    store = c.hub.policy_changes.store
    store.refresh()
    changes = [
        {k: v for k, v in ch.summary().items() if k in _CHANGE_FIELDS}
        for ch in store.changes()
        if on_day(ch.proposed_at, ch.activated_at)
    ]
    c.put(
        "policy_changes",
        "log",
        f"hub.policy changes: proposed or activated on {iso}",
        list(_CHANGE_FIELDS),
        changes,
    )
    return {
        "day": iso,
        "aml_hits": len(aml),
        "limit_breaches": len(breaches),
        "cases": len(cases),
        "policy_changes": len(changes),
    }


_CASE_FIELDS = ("case_id", "status", "reason", "opened_by", "opened_at", "closed_by", "closed_at")
_CHANGE_FIELDS = (
    "change_id",
    "status",
    "bundle_version",
    "proposed_by",
    "proposed_at",
    "activated_by",
    "activated_at",
    "reason",
)


def _log_counts(hub: Hub, recon: Recon, positions: Mapping[str, int]) -> Counter[str]:
    """Records of ``recon.event_type`` per tenant in ``recon.topic`` below the projection's
    committed positions (``"topic/partition" -> next offset``)."""
    counts: Counter[str] = Counter()
    for part in sorted(hub.log.end_offsets(recon.topic)):
        stop = positions.get(f"{recon.topic}/{part}", 0)
        start = hub.log.beginning_offsets(recon.topic).get(part, 0)
        for rec in hub.log.scan(recon.topic, part, start):
            if rec.offset >= stop:
                break
            if duplicated_envelope_header(rec.headers) is not None:
                continue  # the views quarantine it (projections.decode): not counted either
            kind = (rec.header(H_TYPE) or b"").decode()
            if recon.event_type is None or kind == recon.event_type:
                counts[(rec.header(H_TENANT) or b"default").decode()] += 1
    return counts


def _quality(c: _Collector) -> dict[str, Any]:
    hub = c.hub
    stats = hub.ingest.stats.snapshot()
    withheld = ""
    if c.tenant_scope is not None:  # every tenant's counts: withheld from a one-tenant report
        stats = {"by_topic": [], "by_rule": [], "accepted": None, "rejected": None}
        withheld = " (withheld: the counts cover every tenant; reading them needs tenant.all)"
    c.put(
        "ingest_by_topic",
        "log",
        "ingest statistics folded from the log: accepted, rejected (quarantined), replayed"
        + withheld,
        ["topic", "accepted", "rejected", "replayed"],
        stats["by_topic"],
    )
    c.put(
        "quarantine_by_rule",
        "log",
        "hub.quarantine folded: count by topic and rule" + withheld,
        ["topic", "rule", "count"],
        stats["by_rule"],
    )
    status = {s["projection"]: s for s in hub.projections.status()}
    c.put(
        "projections",
        "views",
        "projection status: batch, lag, committed positions",
        ["projection", "batch_seq", "lag"],
        [
            {"projection": n, "batch_seq": s["batch_seq"], "lag": s["lag"]}
            for n, s in sorted(status.items())
        ],
    )
    checks: list[dict[str, Any]] = []
    for r in RECONCILIATION:
        in_view: Counter[str] = Counter()
        sql = f"SELECT tenant, {r.count_expr} AS n FROM {r.table} GROUP BY tenant ORDER BY tenant"
        for row in c.sql(f"recon:{r.name}", r.store, sql):
            in_view[str(row["tenant"])] += int(row["n"] or 0)
        if r.late:
            sql = (
                f"SELECT tenant, count() AS n FROM {r.projection}_late WHERE view = '{r.table}' "
                "GROUP BY tenant ORDER BY tenant"
            )
            for row in c.sql(f"recon:{r.name}:late", r.store, sql):
                in_view[str(row["tenant"])] += int(row["n"] or 0)
        in_log = _log_counts(hub, r, status[r.projection]["positions"])
        for tenant in sorted(set(in_view) | {c.principal.tenant}):
            expected, got = in_log.get(tenant, 0), in_view.get(tenant, 0)
            checks.append(
                {
                    "check": r.name,
                    "tenant": tenant,
                    "event_type": r.event_type or "*",
                    "log_records": expected,
                    "projection_total": got,
                    "matched": min(expected, got),
                    "difference": got - expected,
                }
            )
    c.put(
        "reconciliation",
        "log+views",
        "records accepted per topic (log, up to each projection's committed positions) vs the "
        "projection's total (count column + late side output), per tenant",
        ["check", "tenant", "event_type", "log_records", "projection_total", "matched"],
        checks,
    )
    expected = sum(x["log_records"] for x in checks)
    matched = sum(x["matched"] for x in checks) - sum(
        max(0, x["difference"]) for x in checks
    )  # extra rows in a view count against accuracy as much as missing ones
    accuracy = 1.0 if expected == 0 else max(0.0, matched / expected)
    return {
        "accepted": stats["accepted"],
        "rejected": stats["rejected"],
        "checks": len(checks),
        "expected": expected,
        "accuracy": accuracy,
        "accuracy_percent": f"{accuracy * 100:.4f}%",
        "goal_percent": f"{ACCURACY_GOAL * 100:.2f}%",
        "meets_goal": accuracy >= ACCURACY_GOAL,
        "discrepancies": [x for x in checks if x["difference"] != 0],
    }


# -- build, sign, record ----------------------------------------------------------------------
def _pack(
    hub: Hub, fmt: str, manifest: dict[str, Any], files: dict[str, bytes], cp: Any
) -> tuple[bytes, dict[str, Any], str]:
    public_key = hub.ledger.public_key()
    files = {**files, signed.PUBLIC_KEY: public_key.encode() + b"\n", signed.CHECKPOINT: cp.note}
    manifest = {
        "format": fmt,
        "origin": hub.ledger.config.origin,
        "public_key": public_key,
        "checkpoint": {"size": cp.size, "root": cp.root.hex()},
        **manifest,
        "files": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    signature = hub.ledger.signer.sign_note(signed.note_text(fmt, manifest_bytes))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(signed.MANIFEST, manifest_bytes)
        zf.writestr(signed.SIGNATURE, signature)
        for name in sorted(files):
            zf.writestr(name, files[name])
    return buf.getvalue(), manifest, hashlib.sha256(manifest_bytes).hexdigest()


def reports_dir(hub: Hub) -> Path:
    return Path(hub.settings.data_dir) / "reports"


def run_report(
    hub: Hub,
    principal: Principal,
    kind: str,
    day: str | None = None,
    days: int | None = None,
    *,
    tenant_scope: str | None = None,
) -> Report:
    """Build, sign, keep and record one report (contract 1-4); ``days``: the access review's
    period (default 30), refused for the other kinds; ``tenant_scope``: the tenant the
    reader's ``report.run`` decision limits it to (``reader_scope``; None: every tenant)."""
    from hub.report_render import render_html, render_pdf

    kind = _kind(kind)
    if days is not None and kind != "access-review":
        raise InvalidInput(
            f"days={days!r} applies to the access-review report only, not to {kind!r}: leave "
            "it out.",
            code="invalid_days",
        )
    when = _day(day) if kind in DAILY else None
    cp = _checkpoint(hub)
    c = _Collector(hub, principal, tenant_scope)
    if kind == "trading-daily" and when is not None:
        from hub.reports_trading import trading_summary

        summary = trading_summary(c, when)
    elif kind == "access-review" and when is not None:
        from hub.reports_access import access_review

        summary = access_review(c, when, days)
    else:
        summary = _compliance(c, when) if when is not None else _quality(c)
    report_id = str(uuid7())
    created = datetime.now(UTC).isoformat()
    status = hub.projections.status()
    head = {
        "report_id": report_id,
        "kind": kind,
        "title": KINDS[kind],
        "day": when.isoformat() if when else None,
        "created_at": created,
        "created_by": principal.id,
        "tenant_scope": tenant_scope,
        "summary": summary,
        "queries": c.queries,
        "projection_digests": {
            s["projection"]: {
                t: {"digest": d["digest"], "rows": d["rows"]}
                for t, d in sorted(s["digests"].items())
            }
            for s in status
        },
    }
    view = {**head, "checkpoint": {"size": cp.size, "root": cp.root.hex()}}
    files = {
        signed.DATA: json.dumps(c.data, indent=1, sort_keys=True).encode() + b"\n",
        "report.html": render_html(view, c.data).encode(),
        "report.pdf": render_pdf(view, c.data),
    }
    data, manifest, digest = _pack(hub, signed.REPORT_FORMAT, head, files, cp)
    folder = reports_dir(hub)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{report_id}.zip"
    tmp.write_bytes(data)
    tmp.replace(folder / f"{report_id}.zip")
    value = {
        "report_id": report_id,
        "kind": kind,
        "title": KINDS[kind],
        "day": head["day"],
        "created_at": created,
        "created_by": principal.id,
        "checkpoint_size": cp.size,
        "checkpoint_root": cp.root.hex(),
        "manifest_sha256": digest,
        "summary": json.dumps(summary, sort_keys=True, default=str),
        "tenant_scope": tenant_scope,
    }
    hub.publisher.publish(
        REPORTS_TOPIC,
        [OutgoingEvent(value=value, event_type=CREATED, key=report_id, event_id=str(uuid7()))],
        producer=principal.id,
        tenant=principal.tenant,
    )
    return Report(report_id, kind, data, manifest, digest)


class ReportScheduler:
    """Runs the daily reports once a day at ``at`` ("HH:MM" UTC) while the hub serves: the
    compliance report of the previous day and a data-quality report. What ran is folded from
    ``hub.reports`` (reports made by ``REPORTING_PRINCIPAL`` for that day), so a restart neither
    repeats nor skips a day's reports."""

    def __init__(
        self,
        hub: Hub,
        at: str,
        principal: Principal = REPORTING_PRINCIPAL,
        fence: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        hour, minute = (int(x) for x in at.split(":"))
        self.hub = hub
        self.fence = fence  # each report runs inside it (a leader's epoch: ``hub.ha.claim``)
        self.at = (hour, minute)
        self.principal = principal
        self._loop = Periodic("hub-reports", self.run_due, "scheduled report failed", log)

    def due(self, now: datetime) -> list[tuple[str, str | None]]:
        """The (kind, day) reports that should exist by ``now`` and are not recorded yet."""
        if (now.hour, now.minute) < self.at:
            return []
        yesterday = (now - timedelta(days=1)).date().isoformat()
        today = now.date().isoformat()
        done = {
            (r["kind"], r["day"] or r["created_at"][:10])
            for r in list_reports(self.hub)
            if r["created_by"] == self.principal.id
        }
        wanted = [
            ("compliance-daily", yesterday, yesterday),
            ("trading-daily", yesterday, yesterday),
            ("data-quality", None, today),
        ]
        return [(k, d) for k, d, key in wanted if (k, key) not in done]

    def run_due(self, now: datetime | None = None) -> list[Report]:
        made = []
        for kind, day in self.due(now or datetime.now(UTC)):
            with self.fence():  # refused (Fenced, NotLeader) when another process leads now
                scope = reader_scope(self.hub, self.principal, {}, {"channel": "scheduler"})
                made.append(run_report(self.hub, self.principal, kind, day, tenant_scope=scope))
        return made

    def start(self, check_every_s: float = 60.0) -> None:
        self._loop.start(check_every_s)

    def stop(self) -> None:
        self._loop.stop()


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def list_reports(hub: Hub, tenant_scope: str | None = None) -> list[dict[str, Any]]:
    """Every ``hub.ReportCreated`` event a reader limited to ``tenant_scope`` may read
    (``report_in_scope``; None: every report), oldest first."""
    if REPORTS_TOPIC not in {t.name for t in hub.log.topics()}:
        return []
    out: list[dict[str, Any]] = []
    for part, end in hub.log.end_offsets(REPORTS_TOPIC).items():
        offset = 0
        while offset < end:
            batch = hub.reader.read(REPORTS_TOPIC, part, offset, 1000)
            if not batch:
                break
            for r in batch:
                if r["headers"].get("ce_type") == CREATED:
                    v = json.loads(json.dumps(r["value"], default=_text))
                    v["summary"] = json.loads(v.get("summary") or "{}")
                    v.setdefault("tenant_scope", None)
                    if report_in_scope(v, tenant_scope):
                        out.append(v)
            offset = batch[-1]["offset"] + 1
    out.sort(key=lambda v: (v["created_at"], v["report_id"]))
    return out


def find_report(
    hub: Hub, report_id: str, tenant_scope: str | None = None
) -> tuple[dict[str, Any], bytes]:
    """A report's event and its pack; NotFound naming the id when either is missing. A reader
    limited to ``tenant_scope`` gets Forbidden naming ``tenant.all`` for a hub-wide report and
    the same NotFound as a missing report for another tenant's."""
    if not _ID.match(report_id):
        raise InvalidInput(
            f"report id {report_id[:60]!r} is not a report id (a UUID, see hub report list).",
            code="invalid_report_id",
        )
    for v in list_reports(hub):
        if v["report_id"] == report_id and not report_in_scope(v, tenant_scope):
            if v["tenant_scope"] is not None:
                break  # another tenant's: answered as a missing report
            raise Forbidden(
                f"Access denied: report {report_id} covers every tenant; a reader limited to "
                f"tenant {tenant_scope!r} needs tenant.all to read it."
            )
        if v["report_id"] == report_id:
            path = reports_dir(hub) / f"{report_id}.zip"
            if not path.exists():
                raise NotFound(f"report {report_id}'s pack is missing from {path}.")
            return v, path.read_bytes()
    raise NotFound(f"No report {report_id}: hub report list shows the reports.")


def verify_pack(data: bytes, trusted: Any = None) -> str:
    """Verify a signed report or export (``audit.signed``); raises ``AuditError`` on failure."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise signed.SignedPackError(f"the file is not a zip: {exc}.") from None
    with zf:
        try:
            manifest = json.loads(zf.read(signed.MANIFEST))
        except (KeyError, ValueError) as exc:
            raise signed.SignedPackError(f"the pack has no readable manifest: {exc}.") from None
        if not isinstance(manifest, dict):
            raise signed.SignedPackError("manifest.json is not an object.")
        return signed.verify_signed(zf, manifest, trusted)


# -- signed exports ---------------------------------------------------------------------------
def signed_export(
    hub: Hub, principal: Principal, sql: str, fmt: str, store: str, csv_cells: str = "formula-safe"
) -> bytes:
    """``sql`` exported as CSV or Parquet inside a signed pack (query, checkpoint, row count,
    digest of the data file: exactly the bytes delivered); the export goes through
    ``export_query`` (lineage, guard). A CSV's query names its ``csv_cells`` (formula-safe:
    text cells a spreadsheet would run are prefixed with ``'``; raw: as stored)."""
    from hub.api.exports import export_query

    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"format={fmt!r} cannot be signed: use csv or parquet.")
    cp = _checkpoint(hub)
    # The scope the rows are read under, as the guarded path decides it for this principal: a
    # signed answer to the SQL without it reads as the whole hub's (a tenant's reader gets its
    # own tenant's rows; a reader without pii.read gets personal columns masked).
    grants = hub.projections.grants(hub.policy, principal, store)
    tenants = {g.tenant for g in grants}
    tenant_scope = tenants.pop() if len(tenants) == 1 else principal.tenant
    masked = sorted(f"{g.name}.{c}" for g in grants for c in g.masked)
    data, _ = export_query(hub, principal, sql, fmt, store, csv_cells=csv_cells)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_metadata(io.BytesIO(data)).num_rows
    else:
        import pyarrow.csv as pcsv

        rows = pcsv.read_csv(io.BytesIO(data)).num_rows if data.strip() else 0
    name = f"query.{fmt}"
    head = {
        "export_id": str(uuid7()),
        "created_at": datetime.now(UTC).isoformat(),
        "created_by": principal.id,
        "tenant_scope": tenant_scope,  # None: every tenant's rows
        "masked_columns": masked,
        "queries": [
            {
                "name": "export",
                "store": store,
                "sql": sql,
                "rows": rows,
                "file": name,
                "digest": hashlib.sha256(data).hexdigest(),
                **({"csv_cells": csv_cells} if fmt == "csv" else {}),
            }
        ],
    }
    pack, _, _ = _pack(hub, signed.EXPORT_FORMAT, head, {name: data}, cp)
    return pack


__all__ = [
    "KINDS",
    "REPORTS_TOPIC",
    "Report",
    "ReportScheduler",
    "find_report",
    "list_reports",
    "reader_scope",
    "report_in_scope",
    "run_report",
    "signed_export",
    "verify_pack",
]
