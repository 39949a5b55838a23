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
    # The approver is a person the admin vouched for before the proposal.
    code, handed, _ = run(data, "keys", "create", "--role", "compliance_officer", "--owner", "c")
    code, out, err = run(data, "policy", "propose", str(new), "--reason", "open CASE-1")
    assert code == 0, err
    change = json.loads(out)
    assert change["status"] == "pending_approval" and '+    "CASE-1"' in change["diff"]
    assert "two-person rule" in err

    code, _, err = run(data, "policy", "approve", change["change_id"])
    assert code == 1 and "Two-person rule" in err
    # An identity the proposer mints after proposing is its puppet, not a second person.
    code, puppet, _ = run(data, "keys", "create", "--role", "compliance_officer", "--owner", "d")
    code, _, err = run(data, "policy", "approve", change["change_id"], "--key", puppet.strip())
    assert code == 1 and "was created by 'admin'" in err
    # The admin was shown the key it issued to c: not c's own until c rotates it.
    code, _, err = run(data, "policy", "approve", change["change_id"], "--key", handed.strip())
    assert code == 1 and "rotate their own key first" in err
    as_c = ["--data-dir", str(data), "--key", handed.strip()]
    rotated = CliRunner().invoke(main, [*as_c, "keys", "rotate", handed.split(":")[0]])
    assert rotated.exit_code == 0, rotated.stderr
    key = rotated.stdout.strip().splitlines()[-1]
    code, out, err = run(data, "policy", "approve", change["change_id"], "--key", key.strip())
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
