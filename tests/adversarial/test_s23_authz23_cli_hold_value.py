"""s23 (authz): ``hub config show legalhold:<id>`` tells another tenant nothing of a hold.

Over HTTP, ``GET /v1/config/values/legalhold:<id>`` answers a reader limited to another tenant
404, as for a missing hold (session 18: the value ``"held"`` told them the hold exists). The
CLI's ``hub config show TARGET`` first looks for a change of that id and otherwise shows the
resource's value, and that second half did not check the hold's tenant: globex's compliance
officer got ``{"value": "held", "requires_two_person": true}`` for acme's hold. Now it answers
as the route does (``hold_not_found``), and acme's officer still sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings


def test_another_tenants_hold_is_not_shown_by_config_show(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hub = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        carol = hub.keys.create(["compliance_officer"], principal="carol", tenant="acme").token
        gus = hub.keys.create(["compliance_officer"], principal="gus", tenant="globex").token
        carol_p = hub.keys.verify(*carol.split(":"))
        hold = hub.governance.place_hold(
            "subject:ACC-2324", actor=carol_p.id, matter="m", reason="r", tenant="acme"
        )
    finally:
        hub.close()
    target = f"legalhold:{hold.hold_id}"
    runner = CliRunner()

    r = runner.invoke(main, ["--data-dir", str(data), "--key", gus, "config", "show", target])
    out = r.output + (r.stderr or "")
    assert r.exit_code != 0, out  # before: exit 0 and the value "held"
    assert '"held"' not in out, out
    assert "hold_not_found" in out, out

    r = runner.invoke(main, ["--data-dir", str(data), "--key", carol, "config", "show", target])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["value"] == "held"
