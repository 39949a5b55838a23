"""``hub policy ...``: propose a file, two-person approval with API keys, history, rollback."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from core.policybundle import PolicyBundle
from hub.cli import main
from tests.cli_keys import admin_args


def run(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*admin_args(data), *args])
    return result.exit_code, result.stdout, result.stderr


CREATE = ("keys", "create", "--role")


def enrol(data: Path, token: str, second: str | None = None) -> str:
    """The person redeems their token (``hub enrol``): their own KEY_ID:SECRET."""
    env = {"HUB_ENROL_SECOND": second} if second else {}
    r = CliRunner().invoke(main, ["--data-dir", str(data), "enrol"], input=token, env=env)
    assert r.exit_code == 0, r.output
    return r.stdout.strip()


def test_policy_change_flow(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, _ = run(data, "policy", "show")
    assert code == 0 and json.loads(out)["change"] == "shipped"
    shipped = PolicyBundle.from_dir()
    doc = json.loads(shipped.files["hub/data.json"])
    doc["open_cases"] = ["CASE-1"]
    new = tmp_path / "data.json"
    new.write_text(json.dumps(doc, indent=2) + "\n")

    code, _, err = run(data, "policy", "propose", str(new))
    assert code == 2 and "--reason" in err  # why is required
    # The hub's first people: enrolled while nobody could approve yet (bootstrap), tokens
    # shown whole to the admin, so neither ever approves the admin's own changes.
    c1, c2 = (enrol(data, run(data, *CREATE, "security_admin", "--owner", o)[1]) for o in "cd")
    code, out, err = run(data, "policy", "propose", str(new), "--reason", "open CASE-1")
    assert code == 0, err
    change = json.loads(out)
    assert change["status"] == "pending_approval" and '+    "CASE-1"' in change["diff"]
    assert "two-person rule" in err

    code, _, err = run(data, "policy", "approve", change["change_id"])
    assert code == 1 and "Two-person rule" in err
    code, _, err = run(data, "policy", "approve", change["change_id"], "--key", c1)
    assert code == 1 and "whole enrolment token" in err
    # A person the admin creates now gets half a token: useless without a second approver.
    code, half, err = run(data, *CREATE, "compliance_officer", "--owner", "p")
    assert code == 0 and "second approver" in err
    r = CliRunner().invoke(main, ["--data-dir", str(data), "enrol"], input=half)
    assert r.exit_code == 1 and "waits for a second approver" in r.stderr
    # c requests e, d approves and hands e the second half: e is nobody's puppet.
    as_c1 = ["--data-dir", str(data), "--key", c1]
    r = CliRunner().invoke(main, [*as_c1, *CREATE, "security_admin", "--owner", "e"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    r = CliRunner().invoke(
        main,
        ["--data-dir", str(data), "principals", "approve", token.split(".")[0], "--key", c2],
    )
    assert r.exit_code == 0, r.output
    key = enrol(data, token, r.stdout.strip())
    code, out, err = run(data, "policy", "approve", change["change_id"], "--key", key)
    assert code == 0, err
    assert json.loads(out)["status"] == "activated"
    code, out, _ = run(data, "policy", "show")
    assert json.loads(out)["version"] == change["bundle_version"]

    code, key2, _ = run(data, "keys", "create", "--role", "analyst", "--principal", "a")
    code, _, err = run(data, "policy", "approve", change["change_id"], "--key", key2.strip())
    assert code == 1 and "policy.approve" in err  # analysts may not approve

    code, out, err = run(data, "policy", "rollback", shipped.version[:10], "--reason", "closed")
    assert code == 0, err
    assert json.loads(out)["kind"] == "rollback"
    code, out, _ = run(data, "policy", "history")
    assert len(out.strip().splitlines()) == 2


def test_policy_test_command(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "policy", "test")
    assert code == 0, err
    assert "policy cases pass" in out
