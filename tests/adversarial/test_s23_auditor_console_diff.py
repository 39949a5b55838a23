"""Session 23 auditor review: the console's Approve button approved a policy change its
approver was never shown (docs/benchmarks/s23-redteam-auditor23.md).

``/ui/security`` listed the pending changes (id, proposer, reason, time) with an Approve button;
``/ui/api/security/policy`` carried no diff, so the second person of the two-person rule
approved a change id and a proposer's reason ("typo fix") while the change granted
``pii.read`` to someone. The page's data now carries each pending change's diff for a reader
allowed to read it (``policy.read`` hub-wide: every approver, since approving is hub-wide), and
the page shows it beside the button; a tenant-limited reader still sees none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import quiet_hub
from tests.adversarial.test_policy_read_scope import SECRET_GRANTEE, _proposed


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def test_the_console_shows_the_approver_what_a_pending_change_does(
    hub: Hub, client: TestClient
) -> None:
    from tests.adversarial.test_console_keys import as_

    change = _proposed(hub, client)  # pending: grants pii.read to SECRET_GRANTEE
    otto = hub.keys.create(["compliance_officer"], principal="otto")
    as_(client, otto.token, "/ui")
    r = client.get("/ui/api/security/policy")
    assert r.status_code == 200, r.text
    (pending,) = [c for c in r.json()["pending"] if c["change_id"] == change]
    assert SECRET_GRANTEE in (pending.get("diff") or ""), pending  # before: no diff at all
    ann = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme")
    as_(client, ann.token, "/ui")
    r = client.get("/ui/api/security/policy")
    assert r.status_code == 200 and SECRET_GRANTEE not in r.text, r.text
    (pending,) = [c for c in r.json()["pending"] if c["change_id"] == change]
    assert pending["diff"] is None
    js = client.get("/ui/static/security.js")  # the page renders it as text, never markup
    assert (
        js.status_code == 200
        and 'pre.textContent = row.diff === null ? "" : hub.visibleLines(row.diff)' in js.text
    )
