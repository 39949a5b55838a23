"""Signed reports and exports (issue 15): the figures come from the views and the log, the pack
verifies offline and refuses any change, the PDF renders, the report is an event on the
ledger, and the reconciliation states a real discrepancy when a view loses a row."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import signed
from audit.errors import AuditError
from audit.note import generate_key, open_note, parse_verifier_key, sign_note
from audit.verify import main as hub_verify
from core.errors import ConfigError, InvalidInput
from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.demo import load
from hub.reports import (
    REPORTS_TOPIC,
    ReportScheduler,
    list_reports,
    run_report,
    signed_export,
    verify_pack,
)
from hub.settings import load_settings
from projections.catalog import PROJECTIONS

DEMO_DAY = "2026-11-24"
OFFICER = Principal("olga", frozenset({"compliance_officer"}))
ANALYST = Principal("ann", frozenset({"analyst"}))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data = tmp_path_factory.mktemp("reports") / "data"
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    load(hub.ingest, 7)
    hub.projections.run([p.name for p in PROJECTIONS])
    try:
        yield hub
    finally:
        hub.close()


def _zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return buf.getvalue()


def _trusted(hub: Hub) -> object:
    return parse_verifier_key(hub.ledger.public_key())


def test_compliance_report_figures_match_the_views_and_the_pack_verifies(demo: Hub) -> None:
    made = run_report(demo, OFFICER, "compliance-daily", DEMO_DAY)
    files = _zip(made.data)
    data = json.loads(files["data.json"])
    # the same figures asked independently through the query path
    near = demo.projections.query(
        demo.policy,
        OFFICER,
        "SELECT count() AS n FROM aml_daily WHERE near_threshold > 0",
        "analytics",
    ).to_pylist()[0]["n"]
    breached = demo.projections.query(
        demo.policy,
        OFFICER,
        "SELECT count(*) AS n FROM payment_limits WHERE breached = 1",
        "transactional",
    ).to_pylist()[0]["n"]
    assert near > 0 and breached > 0  # the demo has both on its one day
    assert made.manifest["summary"]["aml_hits"] == near == len(data["aml_hits"]["rows"])
    assert made.manifest["summary"]["limit_breaches"] == breached
    # the manifest: checkpoint, every query with rows and digest, projections' row digests
    cp = made.manifest["checkpoint"]
    assert cp["size"] > 0 and len(cp["root"]) == 64
    names = {q["name"] for q in made.manifest["queries"]}
    assert {"aml_hits", "limit_breaches", "cases", "policy_changes"} <= names
    assert "market_bars" in made.manifest["projection_digests"]
    assert {"report.html", "report.pdf", "data.json", "checkpoint.note"} <= set(files)
    assert files["report.pdf"].startswith(b"%PDF-")
    assert b"Daily compliance report" in files["report.html"]
    assert "OK hub-report/v1 report compliance-daily" in verify_pack(made.data, _trusted(demo))
    # another day has none of those hits
    other = run_report(demo, OFFICER, "compliance-daily", "2020-01-01")
    assert other.manifest["summary"]["aml_hits"] == 0


def test_a_case_opened_today_is_in_todays_compliance_report(demo: Hub) -> None:
    case = demo.cases.open(reason="structuring review", actor="olga", subjects=["ACC-0001"])
    today = datetime.now(UTC).date().isoformat()
    made = run_report(demo, OFFICER, "compliance-daily", today)
    rows = json.loads(_zip(made.data)["data.json"])["cases"]["rows"]
    assert [r["case_id"] for r in rows] == [case["case_id"]]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("report.pdf", "report.pdf does not match its SHA-256"),
        ("data.json", "data.json does not match its SHA-256"),
        ("checkpoint.note", "checkpoint.note"),
        ("manifest.json", "manifest.sig signs a different manifest.json"),
    ],
)
def test_a_changed_byte_in_a_report_pack_is_refused_naming_the_part(
    demo: Hub, target: str, expected: str
) -> None:
    made = run_report(demo, OFFICER, "data-quality")
    files = _zip(made.data)
    if target == "manifest.json":  # a forger also fixes the digests: the signature catches it
        manifest = json.loads(files[target])
        manifest["summary"]["accuracy_percent"] = "100.0000%"
        manifest["created_by"] = "someone-else"
        files[target] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    else:
        blob = bytearray(files[target])
        blob[len(blob) // 2] ^= 0x01
        files[target] = bytes(blob)
    with pytest.raises(AuditError, match=expected):
        verify_pack(_rezip(files), _trusted(demo))


def test_rows_that_differ_from_their_digest_are_refused_even_with_a_fixed_file_list(
    demo: Hub,
) -> None:
    """Changing data.json and re-hashing it in the manifest breaks the manifest signature;
    without the signature check, the query digest still catches it."""
    made = run_report(demo, OFFICER, "compliance-daily", DEMO_DAY)
    files = _zip(made.data)
    data = json.loads(files["data.json"])
    data["aml_hits"]["rows"] = data["aml_hits"]["rows"][1:]
    files["data.json"] = json.dumps(data).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["data.json"] = hashlib.sha256(files["data.json"]).hexdigest()
    with (
        zipfile.ZipFile(io.BytesIO(_rezip(files))) as zf,
        pytest.raises(AuditError, match=r"query 'aml_hits': the rows in data\.json"),
    ):
        signed.verify_signed(zf, manifest)


def test_a_pack_re_signed_with_another_key_is_refused_with_the_trusted_key(demo: Hub) -> None:
    """Someone with their own key rebuilds a self-consistent pack with other figures: it
    verifies against the key inside it (integrity only), never against this hub's key."""
    made = run_report(demo, OFFICER, "compliance-daily", DEMO_DAY)
    files = _zip(made.data)
    forger = generate_key(demo.ledger.config.origin.split("/")[0] + "/ledger")
    note = open_note(files["checkpoint.note"], [_trusted(demo)])  # type: ignore[list-item]
    files["checkpoint.note"] = sign_note(note.text, forger)
    files["public-key.txt"] = forger.verifier.encode().encode() + b"\n"
    manifest = json.loads(files["manifest.json"])
    manifest["summary"]["aml_hits"] = 0
    manifest["public_key"] = forger.verifier.encode()
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest()
        for n, d in files.items()
        if n not in ("manifest.json", "manifest.sig")
    }
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    files["manifest.sig"] = sign_note(
        signed.note_text(signed.REPORT_FORMAT, files["manifest.json"]), forger
    )
    forged = _rezip(files)
    assert "the key inside the pack" in verify_pack(forged)
    with pytest.raises(AuditError, match="not the trusted key"):
        verify_pack(forged, _trusted(demo))


def test_hub_verify_checks_a_report_offline(demo: Hub, tmp_path: Path) -> None:
    made = run_report(demo, OFFICER, "data-quality")
    pack = tmp_path / "report.zip"
    pack.write_bytes(made.data)
    key = tmp_path / "hub.pub"
    key.write_text(demo.ledger.public_key() + "\n")
    assert hub_verify(["bundle", str(pack), "--public-key", str(key)]) == 0
    files = _zip(made.data)
    files["report.html"] = files["report.html"].replace(b"Accuracy", b"Accurate")
    pack.write_bytes(_rezip(files))
    assert hub_verify(["bundle", str(pack), "--public-key", str(key)]) == 1


def test_the_report_is_an_event_on_hub_reports_and_on_the_ledger(demo: Hub) -> None:
    made = run_report(demo, OFFICER, "compliance-daily", DEMO_DAY)
    found = [r for r in list_reports(demo) if r["report_id"] == made.report_id]
    assert found and found[0]["manifest_sha256"] == made.manifest_sha256
    demo.ledger.sync()
    entries = demo.ledger.entries(topic=REPORTS_TOPIC, limit=1000)
    assert entries, "the report event is not on the ledger"


def test_bad_report_inputs_are_refused_with_the_fix(demo: Hub) -> None:
    kinds = "access-review, compliance-daily, data-quality, trading-daily"
    with pytest.raises(InvalidInput, match=f"use one of {kinds}"):
        run_report(demo, OFFICER, "weekly")
    with pytest.raises(InvalidInput, match="use YYYY-MM-DD"):
        run_report(demo, OFFICER, "compliance-daily", "24/11/2026")


@pytest.mark.skipif(
    shutil.which("pdftoppm") is None and os.environ.get("CI") != "true",
    reason="pdftoppm (poppler-utils) is not installed: `make browser-deps` installs it",
)
def test_the_pdf_report_renders_to_png_pages(demo: Hub, tmp_path: Path) -> None:
    made = run_report(demo, OFFICER, "compliance-daily", DEMO_DAY)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_zip(made.data)["report.pdf"])
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages, "no page rendered"
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 1000 for p in pages)
    out = Path(os.environ.get("HUB_TEST_ARTIFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(pages[0], out / "report-compliance-page1.png")


# -- signed exports -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_signed_export_verifies_and_a_tampered_one_is_refused(demo: Hub, fmt: str) -> None:
    sql = "SELECT instrument, count() AS bars FROM ohlcv_1m GROUP BY instrument ORDER BY instrument"
    pack = signed_export(demo, ANALYST, sql, fmt, "analytics")
    files = _zip(pack)
    manifest = json.loads(files["manifest.json"])
    (q,) = manifest["queries"]
    expected = demo.projections.query(demo.policy, ANALYST, sql, "analytics").num_rows
    assert (q["sql"], q["rows"], q["file"]) == (sql, expected, f"query.{fmt}")
    assert manifest["checkpoint"]["size"] > 0
    assert "OK hub-export/v1 export" in verify_pack(pack, _trusted(demo))
    data = bytearray(files[f"query.{fmt}"])
    data[len(data) // 2] ^= 0x20
    files[f"query.{fmt}"] = bytes(data)
    with pytest.raises(AuditError, match=f"query.{fmt} does not match"):
        verify_pack(_rezip(files), _trusted(demo))


def test_the_scheduler_runs_each_days_reports_once(demo: Hub) -> None:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert ReportScheduler(demo, "00:01").due(midnight) == []  # not yet
    scheduler = ReportScheduler(demo, "00:00")
    yesterday = (midnight - timedelta(days=1)).date().isoformat()
    assert scheduler.due(now) == [
        ("compliance-daily", yesterday),
        ("trading-daily", yesterday),
        ("data-quality", None),
    ]
    made = scheduler.run_due(now)
    assert [(m.kind, m.manifest["day"]) for m in made] == [
        ("compliance-daily", yesterday),
        ("trading-daily", yesterday),
        ("data-quality", None),
    ]
    assert all(m.manifest["created_by"] == "hub.reports" for m in made)
    assert scheduler.due(now) == [] and scheduler.run_due(now) == []  # once per day
    # a restarted scheduler folds what ran from hub.reports
    assert ReportScheduler(demo, "00:00").due(datetime.now(UTC)) == []


def test_a_bad_schedule_time_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"HUB_REPORT_DAILY_AT|report_daily_at"):
        load_settings(environ={"HUB_REPORT_DAILY_AT": "25:00"})


def test_data_quality_reconciles_every_accepted_record_and_lists_a_lost_row(demo: Hub) -> None:
    """Runs last in this module: it removes a view row behind the projection's back (and puts
    it back afterwards)."""
    clean = run_report(demo, OFFICER, "data-quality")
    summary = clean.manifest["summary"]
    assert summary["accuracy"] == 1.0 and summary["meets_goal"] and summary["discrepancies"] == []
    # every accepted trade and account event was expected somewhere
    checks = json.loads(_zip(clean.data)["data.json"])["reconciliation"]["rows"]
    stats = {t["topic"]: t["accepted"] for t in demo.ingest.stats.snapshot()["by_topic"]}
    trades = [c for c in checks if c["check"] == "trades -> market_bars.ohlcv_1m"]
    assert sum(c["log_records"] for c in trades) == stats["trades"] == 3000
    accounts = [c for c in checks if c["check"].startswith("accounts ->")]
    assert sum(c["log_records"] for c in accounts) == stats["accounts"]
    db = Path(demo.settings.data_dir) / "views" / "transactional.sqlite"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(
            conn.execute("SELECT * FROM accounts_current ORDER BY account_id LIMIT 1").fetchone()
        )
        conn.execute("DELETE FROM accounts_current WHERE account_id = ?", (row["account_id"],))
    try:
        broken = run_report(demo, OFFICER, "data-quality").manifest["summary"]
        assert not broken["meets_goal"] and broken["accuracy"] < 1.0
        (gap,) = broken["discrepancies"]
        assert gap["check"] == "accounts -> accounts.accounts_current"
        assert gap["difference"] == -row["version"]
        expected = broken["expected"]
        assert broken["accuracy"] == pytest.approx((expected - row["version"]) / expected)
        assert broken["accuracy_percent"] != "100.0000%"
    finally:
        with sqlite3.connect(db) as conn:
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(
                f"INSERT INTO accounts_current ({cols}) VALUES ({marks})", list(row.values())
            )


# -- trading summary and CC6 access review --------------------------------------------------------
def test_the_trading_summary_matches_the_views_and_verifies(demo: Hub, tmp_path: Path) -> None:
    """~10-30 s: one whole report (five queries, HTML, PDF, signed pack) and its offline
    verification, as each report test here does."""
    from decimal import Decimal

    made = run_report(demo, OFFICER, "trading-daily", DEMO_DAY)
    data = json.loads(_zip(made.data)["data.json"])
    volumes = data["volumes"]["rows"]
    direct = demo.projections.query(
        demo.policy,
        OFFICER,
        "SELECT instrument, currency, sum(events) AS n, sum(notional) AS x, sum(volume) AS v "
        "FROM ohlcv_1m GROUP BY instrument, currency ORDER BY instrument, currency",
        "analytics",
    ).to_pylist()
    assert volumes and [(r["instrument"], int(r["trades"])) for r in volumes] == [
        (r["instrument"], r["n"]) for r in direct
    ]
    for row, d in zip(volumes, direct, strict=True):  # VWAP = notional / volume over the day
        assert abs(Decimal(str(row["vwap"])) - Decimal(str(d["x"])) / Decimal(str(d["v"]))) < (
            Decimal("0.0001")
        )
    movers = data["top_movers"]["rows"]
    changes = [abs(Decimal(m["change_percent"])) for m in movers]
    assert movers and changes == sorted(changes, reverse=True)
    positions = data["positions"]["rows"]
    by_account = data["pnl_by_account"]["rows"]
    assert sum(a["positions"] for a in by_account) == len(positions) > 0
    realised = sum(Decimal(str(p["realised_pnl"])) for p in positions)
    assert sum(Decimal(a["realised_pnl"]) for a in by_account) == realised
    s = made.manifest["summary"]
    assert s["trades"] == sum(r["n"] for r in direct) and s["top_mover"] == movers[0]["instrument"]
    assert "Daily trading summary" in _zip(made.data)["report.html"].decode()
    pack, key = tmp_path / "t.zip", tmp_path / "hub.pub"
    pack.write_bytes(made.data)
    key.write_text(demo.ledger.public_key() + "\n")
    assert hub_verify(["bundle", str(pack), "--public-key", str(key)]) == 0
    # another day has no trades
    assert (
        run_report(demo, OFFICER, "trading-daily", "2020-01-01").manifest["summary"]["trades"] == 0
    )


def test_the_access_review_lists_keys_denials_approvals_and_unused_keys(
    demo: Hub, tmp_path: Path
) -> None:
    issued = demo.keys.create(["analyst"], principal="rita")
    rita = Principal("rita", frozenset({"analyst"}))
    assert not demo.policy.decide(rita, "keys.create", "/v1/keys").allow  # a recorded denial
    assert demo.policy.decide(rita, "query.run", "/v1/query").allow
    today = datetime.now(UTC).date()
    made = run_report(demo, OFFICER, "access-review", today.isoformat())
    data = json.loads(_zip(made.data)["data.json"])
    keys = {k["key_id"]: k for k in data["keys"]["rows"]}
    assert keys[issued.key_id]["owner"] == "rita" and keys[issued.key_id]["state"] == "active"
    assert "salt" not in json.dumps(data) and issued.secret not in json.dumps(data)
    denied = [d for d in data["denied"]["rows"] if d["principal"] == "rita"]
    assert [(d["action"], d["resource"]) for d in denied] == [("keys.create", "/v1/keys")]
    # a Principal made by hand names no key: its decisions are counted apart from rita's key
    uses = {u["key_id"]: u for u in data["last_use"]["rows"] if u["owner"] == "rita"}
    assert set(uses) == {"", issued.key_id} and uses[""]["state"] == "no key"
    assert (uses[""]["allowed"], uses[""]["denied"]) == (1, 1) and uses[""]["last_used_at"]
    assert (uses[issued.key_id]["allowed"], uses[issued.key_id]["last_used_at"]) == (0, None)
    assert made.manifest["summary"]["period_days"] == 30
    s = made.manifest["summary"]
    assert s["denied_decisions"] == len(data["denied"]["rows"]) >= 1
    # Seen from 60 days ahead, every active key is unused for the whole 30-day period.
    from hub.reports import _Collector
    from hub.reports_access import access_review

    c = _Collector(demo, OFFICER)
    later = access_review(c, today + timedelta(days=60))
    assert issued.key_id in {u["key_id"] for u in c.data["unused_keys"]["rows"]}
    (use,) = [u for u in c.data["last_use"]["rows"] if u["key_id"] == issued.key_id]
    assert (use["last_used_at"], use["allowed"], use["denied"]) == (None, 0, 0)
    assert later["denied_decisions"] == 0 and later["unused_keys"] == later["active_keys"]
    pack, key = tmp_path / "a.zip", tmp_path / "hub.pub"
    pack.write_bytes(made.data)
    key.write_text(demo.ledger.public_key() + "\n")
    assert hub_verify(["bundle", str(pack), "--public-key", str(key)]) == 0
    assert _zip(made.data)["report.pdf"].startswith(b"%PDF-")
    assert "Access review (SOC 2 CC6)" in _zip(made.data)["report.html"].decode()


def test_the_access_review_tells_one_owners_keys_apart_over_a_chosen_period(demo: Hub) -> None:
    """Decisions record the key id beside the person: of nora's two keys, the one she used
    (yesterday, as the review's day is tomorrow) has a last use and counts, the other is unused;
    a one-day period ending tomorrow no longer holds yesterday's use, so both are unused."""
    used = demo.keys.create(["analyst"], principal="nora")
    idle = demo.keys.create(["analyst"], principal="nora")
    nora = demo.keys.verify(used.key_id, used.secret)  # as the HTTP API authenticates her
    assert nora.id == "nora"
    assert not demo.policy.decide(nora, "keys.create", "/v1/keys").allow  # stored with the next
    assert demo.policy.decide(nora, "query.run", "/v1/query").allow
    assert demo.policy.decide(nora, "query.run", "/v1/query").allow
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    made = run_report(demo, OFFICER, "access-review", tomorrow.isoformat(), days=2)
    data = json.loads(_zip(made.data)["data.json"])
    rows = {u["key_id"]: u for u in data["last_use"]["rows"] if u["owner"] == "nora"}
    assert set(rows) == {used.key_id, idle.key_id}  # no key-less row: every decision named one
    assert (rows[used.key_id]["allowed"], rows[used.key_id]["denied"]) == (2, 1)
    assert rows[used.key_id]["last_used_at"].startswith(str(tomorrow - timedelta(days=1)))
    assert (rows[idle.key_id]["last_used_at"], rows[idle.key_id]["allowed"]) == (None, 0)
    denied = [d for d in data["denied"]["rows"] if d["principal"] == "nora"]
    assert [d["key_id"] for d in denied] == [used.key_id]
    assert used.secret not in json.dumps(data)
    assert made.manifest["summary"]["period_days"] == 2
    # issued before the period: the idle key is unused for it, the used one is not
    unused = {u["key_id"] for u in data["unused_keys"]["rows"]}
    assert idle.key_id not in unused  # issued today, inside the 2-day period: too new to judge
    from hub.reports import _Collector
    from hub.reports_access import access_review

    c = _Collector(demo, OFFICER)
    one_day = access_review(c, tomorrow, days=1)
    unused = {u["key_id"] for u in c.data["unused_keys"]["rows"]}
    assert {used.key_id, idle.key_id} <= unused
    assert not [d for d in c.data["denied"]["rows"] if d["principal"] == "nora"]
    assert one_day["period_days"] == 1
    for bad in (0, 367, -5):
        with pytest.raises(InvalidInput, match=r"days=.*from 1 to 366"):
            access_review(c, tomorrow, days=bad)
    with pytest.raises(InvalidInput, match="access-review report only"):
        run_report(demo, OFFICER, "data-quality", days=7)


def test_an_access_review_records_who_approved_a_policy_change(demo: Hub) -> None:
    from core.policybundle import PolicyBundle

    files = dict(PolicyBundle.from_dir().files)
    files["hub/authz.rego"] += "\n# reviewed for the access review test\n"
    alice = Principal("alice-ar", frozenset({"security_admin"}))
    carol = Principal("carol-ar", frozenset({"security_admin"}))
    demo.keys.create(["security_admin"], principal="alice-ar")
    demo.keys.create(["security_admin"], principal="carol-ar")
    change = demo.policy_changes.propose(alice, files, "a comment")
    demo.policy_changes.approve(carol, change.change_id, "read it")
    from hub.reports import _Collector
    from hub.reports_access import access_review

    c = _Collector(demo, OFFICER)
    access_review(c, datetime.now(UTC).date())
    rows = c.data["approvals"]["rows"]
    (row,) = [r for r in rows if r["change_id"] == change.change_id]
    assert (row["proposed_by"], row["approved_by"]) == ("alice-ar", "carol-ar")
