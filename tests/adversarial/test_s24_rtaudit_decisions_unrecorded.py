"""Session 24 (redteam-auditor24): access decisions not recorded, and the evidence silent.

An evidence pack's CC6 population is "every access decision (allow and deny)": the entries of
``hub.decisions``. One setting, ``HUB_POLICY_RECORD_DECISIONS=false`` (the environment or the
settings file of whoever runs the hub: no proposal, no approval, no ledger entry), makes the
hub decide without recording. Before: the decisions of such a process were simply absent, the
pack for that period verified with the plain OK line, and nothing on the ledger said that
recording had been off. Now every start with recording off is on the ledger
(``policy.decisions_unrecorded``, a CC6 entry), and `hub-verify bundle` names those starts in
its OK line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from click.testing import CliRunner

from audit import bundle
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.service.test_evidence import hub_verify
from tests.service.test_ledger import admin_args


def _export(data: Path, out: Path) -> Path:
    r = CliRunner().invoke(
        main,
        [
            *admin_args(data),
            "evidence",
            "export",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--controls",
            "CC6",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.stderr
    return out


def test_a_start_without_decision_records_is_on_the_ledger_and_in_the_pack(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    bootstrap(load_settings(environ={}, data_dir=data)).close()  # recorded, as by default
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_record_decisions=False))
    try:
        mallory = Principal(id="mallory", roles=frozenset({"admin"}))
        for _ in range(3):  # decided, and never recorded
            assert h.policy.decide(mallory, "topic.read", "topics/trades").allow
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    pack = _export(data, tmp_path / "pack.zip")
    with zipfile.ZipFile(pack) as zf:
        entries = [json.loads(x) for x in zf.read(bundle.ENTRIES).splitlines()]
    actions = [e.get("leaf_columns", {}).get("action") for e in entries]
    # before: no entry says the process ran without recording its decisions
    assert "policy.decisions_unrecorded" in actions, actions
    r = hub_verify("bundle", str(pack), "--public-key", str(data / "keys" / "ledger.pub"))
    assert r.returncode == 0, r.stderr
    assert "1 start(s) of the hub recorded NO access decisions" in r.stdout, r.stdout


def test_a_pack_of_a_hub_that_always_recorded_says_nothing_of_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        h.policy.decide(
            Principal(id="ann", roles=frozenset({"admin"})), "topic.read", "topics/trades"
        )
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    pack = _export(data, tmp_path / "pack.zip")
    r = hub_verify("bundle", str(pack), "--public-key", str(data / "keys" / "ledger.pub"))
    assert r.returncode == 0, r.stderr
    assert "NO access decisions" not in r.stdout, r.stdout
