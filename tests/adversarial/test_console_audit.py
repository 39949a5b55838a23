"""A console session's start and end are on the audit ledger (session 14 review).

An auditor asking "who was logged into the console, with which key, from when to when" found
nothing: a login opened a session and a logout closed it, and neither left an entry (the pages
and data calls in between were recorded as decisions, but not which session or key made them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.service.test_console import login, page_csrf, serve_console


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    yield from serve_console(tmp_path / "data")


def test_login_and_logout_leave_entries_naming_the_person_and_the_key(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    issued = hub.keys.create(["analyst"], owner="ann", tenant="acme")
    assert login(client, issued.token).status_code == 303
    assert client.post("/ui/logout", headers={"X-CSRF-Token": page_csrf(client)}).status_code == 204
    hub.ledger.sync()
    got = [
        (e["actor"], e["action"], e["resource"], e["tenant"])
        for e in hub.ledger.entries(topic="hub.audit")
        if str(e["action"]).startswith("console.")
    ]
    resource = f"key:{issued.key_id}"
    assert got == [
        ("ann", "console.login", resource, "acme"),
        ("ann", "console.logout", resource, "acme"),
    ]
    # a failed login opens nothing and writes nothing an anonymous caller could flood
    assert login(client, f"{issued.key_id}:wrong").status_code == 401
    hub.ledger.sync()
    assert len([e for e in hub.ledger.entries(topic="hub.audit") if e["actor"] == "ann"]) >= 2
    assert not [e for e in hub.ledger.entries(action="console.login") if e["actor"] != "ann"]
