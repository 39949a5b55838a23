"""Keeps the Rego policy's role data in step with the Python role table.

``core.roles`` is the one list of known roles and actions (and the role table ``RoleTablePolicy``
enforces). The Rego policy reads the same table from ``governance/policies/hub/data.json``
(``roles``, ``actions``, ``role_actions``); this module writes those three keys from Python and
leaves every other key of the file alone. A unit test fails when the two disagree; fix it with::

    python -m governance.roledata          # rewrite the role keys of data.json
    python -m governance.roledata --check  # exit 1 when they differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from core.roles import ACTIONS, ROLE_ACTIONS, ROLES

POLICY_DIR = Path(__file__).resolve().parent / "policies"
DATA_FILE = POLICY_DIR / "hub" / "data.json"
ROLE_KEYS = ("roles", "actions", "role_actions")


def role_data() -> dict[str, Any]:
    """The role keys of data.json, from ``core.roles`` (sorted, so the file is stable)."""
    return {
        "roles": list(ROLES),
        "actions": list(ACTIONS),
        "role_actions": {role: sorted(ROLE_ACTIONS.get(role, ())) for role in ROLES},
    }


def dumps(data: dict[str, Any]) -> str:
    """The canonical text of data.json (two-space indent, trailing newline)."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def differences(data: dict[str, Any]) -> list[str]:
    """Each role key on which ``data`` disagrees with ``core.roles``; empty when in step."""
    want = role_data()
    return [key for key in ROLE_KEYS if data.get(key) != want[key]]


def sync(path: Path = DATA_FILE, *, write: bool = True) -> list[str]:
    """Rewrite the role keys of ``path`` when they differ; returns the keys that differed."""
    current: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    diff = differences(current)
    if diff and write:
        merged = {**role_data(), **{k: v for k, v in current.items() if k not in ROLE_KEYS}}
        path.write_text(dumps(merged), encoding="utf-8")
    return diff


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    diff = sync(write=not check)
    if diff and check:
        print(
            f"{DATA_FILE} disagrees with hub.authz on {', '.join(diff)}: "
            "run `python -m governance.roledata`.",
            file=sys.stderr,
        )
        return 1
    print(f"{DATA_FILE}: {'updated ' + ', '.join(diff) if diff else 'in step with hub.authz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
