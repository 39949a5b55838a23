"""Ledger lookup by event (event id or topic/partition/offset), `hub-verify leaf`, and the
verifier run as a script from a copy of `audit/` alone."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import Hub
from hub.cli import main
from tests.cli_keys import admin_args

REPO = Path(__file__).resolve().parents[2]
TRADE = {
    "trade_id": "T1",
    "account_id": "A1",
    "instrument": "XS0001",
    "side": "BUY",
    "quantity": "100",
    "price": "101.25",
    "currency": "EUR",
    "executed_at": "2026-11-25T10:00:00Z",
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def standalone_python() -> str:
    """An interpreter that has `cryptography` but not the hub: the venv's base interpreter."""
    base = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run(
        [
            base,
            "-I",
            "-c",
            "import cryptography\ntry:\n import hub\nexcept ImportError: pass\n"
            "else: raise SystemExit(3)",
        ],
        capture_output=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip(f"{base} lacks cryptography or has the hub installed (rc {probe.returncode})")
    return base


@pytest.fixture
def copied_verifier(tmp_path: Path) -> Path:
    dst = tmp_path / "auditor" / "audit"
    shutil.copytree(REPO / "audit", dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst / "verify.py"


def run_copy(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [standalone_python(), "-I", str(script), *args],
        cwd=script.parent.parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def published_trade(hub: Hub) -> tuple[str, int, int]:
    md = hub.publisher.publish("trades", [OutgoingEvent(value=TRADE, key="A1")], producer="p")[0]
    rec = hub.log.read(md.topic, md.partition, md.offset, 1)[0]
    event_id = (rec.header("ce_id") or b"").decode()
    assert event_id
    return event_id, md.partition, md.offset


def test_lookup_by_event_id_and_by_position_over_http(hub: Hub, tmp_path: Path) -> None:
    hub.ledger.sync(force_checkpoint=True)
    event_id, part, off = published_trade(hub)
    officer = auth(hub.keys.create(["compliance_officer"], principal="cora").token)
    security = auth(hub.keys.create(["security_admin"], principal="sam").token)
    analyst = auth(hub.keys.create(["analyst"], principal="ann").token)
    with TestClient(create_app(hub)) as client:
        by_id = client.get("/v1/ledger/lookup", params={"event_id": event_id}, headers=officer)
        assert by_id.status_code == 200, by_id.text
        got = by_id.json()
        assert (got["topic"], got["partition"], got["offset"]) == ("trades", part, off)
        assert got["event_id"] == event_id
        assert got["index"] == hub.ledger.index_of("trades", part, off)
        assert got["leaf_hash"] == hub.ledger.store.leaf(got["index"])[9].hex()
        assert got["checkpoint"]["size"] > got["index"] and isinstance(got["proof"], list)
        pos = client.get(
            "/v1/ledger/lookup",
            params={"topic": "trades", "partition": part, "offset": off},
            headers=officer,
        ).json()
        assert pos["index"] == got["index"] and pos["event_id"] == event_id
        # The raw event, for `hub-verify leaf`: only with event.read as well.
        full = client.get(
            "/v1/ledger/lookup",
            params={"event_id": event_id, "include_event": "true"},
            headers=officer,
        )
        assert full.status_code == 200 and full.json()["value"]
        denied = client.get(
            "/v1/ledger/lookup",
            params={"event_id": event_id, "include_event": "true"},
            headers=security,
        )
        assert denied.status_code == 403
        assert (
            client.get(
                "/v1/ledger/lookup", params={"event_id": event_id}, headers=analyst
            ).status_code
            == 403
        )
        # Bad input: clear 4xx naming the problem.
        missing = client.get(
            "/v1/ledger/lookup",
            params={"event_id": "0190b2a0-0000-7000-8000-000000000000"},
            headers=officer,
        )
        assert missing.status_code == 404 and "0190b2a0" in missing.json()["message"]
        partial = client.get("/v1/ledger/lookup", params={"topic": "trades"}, headers=officer)
        assert partial.status_code == 422 and partial.json()["reason"] == "invalid_lookup"
        both = client.get(
            "/v1/ledger/lookup",
            params={"event_id": event_id, "topic": "trades", "partition": 0, "offset": 0},
            headers=officer,
        )
        assert both.status_code == 422
        nowhere = client.get(
            "/v1/ledger/lookup",
            params={"topic": "trades", "partition": part, "offset": 999},
            headers=officer,
        )
        assert nowhere.status_code == 404
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(full.json()))
    pub = hub.settings.ledger_key_path.with_suffix(".pub")
    r = subprocess.run(
        [sys.executable, "-m", "audit.verify", "leaf", str(event_file), "--public-key", str(pub)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert got["leaf_hash"] in r.stdout and "signed by" in r.stdout


def test_cli_find_exports_an_event_that_the_copied_verifier_checks(
    tmp_path: Path, copied_verifier: Path
) -> None:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        event_id, part, off = published_trade(h)
        pub = h.settings.ledger_key_path.with_suffix(".pub")
    finally:
        h.close()
    out = tmp_path / "found.json"
    r = CliRunner().invoke(
        main,
        [*admin_args(data), "ledger", "find", "--event-id", event_id, "--export", str(out)],
    )
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["offset"] == off and "value" not in shown  # bytes only in the export file
    r2 = CliRunner().invoke(
        main,
        [
            *admin_args(data),
            "ledger",
            "find",
            "--topic",
            "trades",
            "--partition",
            str(part),
            "--offset",
            str(off),
        ],
    )
    assert r2.exit_code == 0 and json.loads(r2.stdout)["index"] == shown["index"]
    r3 = CliRunner().invoke(main, [*admin_args(data), "ledger", "find", "--topic", "x"])
    assert r3.exit_code == 1 and "all three of topic, partition and offset" in r3.output

    # The verifier copied out of the repository, run with `python3 -I`: stdlib + cryptography.
    ok = run_copy(copied_verifier, "leaf", str(out), "--public-key", str(pub))
    assert ok.returncode == 0, ok.stderr
    assert shown["leaf_hash"] in ok.stdout and f"entry {shown['index']}" in ok.stdout
    # Any changed byte of the event is caught.
    event = json.loads(out.read_text())
    value = base64.b64decode(event["value"])
    event["value"] = base64.b64encode(value[:-1] + bytes([value[-1] ^ 1])).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(event))
    r4 = run_copy(copied_verifier, "leaf", str(bad))
    assert r4.returncode == 1 and "the event was changed" in r4.stderr
    # Without the stated leaf hash, the proof still catches it.
    del event["leaf_hash"]
    bad.write_text(json.dumps(event))
    r5 = run_copy(copied_verifier, "leaf", str(bad))
    assert r5.returncode == 1 and "INVALID" in r5.stderr
    r6 = run_copy(copied_verifier, "leaf", str(tmp_path / "nope.json"))
    assert r6.returncode == 2


def test_copied_verifier_runs_its_other_commands(copied_verifier: Path, tmp_path: Path) -> None:
    leaves = tmp_path / "leaves.txt"
    leaves.write_text("00\n01\n")
    r = run_copy(copied_verifier, "root", "--leaves-file", str(leaves))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) == 64
    helped = run_copy(copied_verifier, "--help")
    assert helped.returncode == 0 and "leaf" in helped.stdout and "bundle" in helped.stdout
