"""Purpose of use end to end over HTTP: investigation cases opened, used, closed, expired.

Without the headers PII is `***` (events) and NULL (queries); under an open case naming the
reader it is plaintext on every read path; masked again after close or expiry; a made-up case is
denied; every read under a case is a decision recorded with the case id."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from governance.decisions import DECISIONS_TOPIC
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args

EMAIL = "carol.case@example.org"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def opened(account: str) -> OutgoingEvent:
    return OutgoingEvent(
        event_type="hub.accounts.AccountOpened",
        value={
            "account_id": account,
            "customer_name": "Carol Case",
            "email": EMAIL,
            "date_of_birth": "1980-02-03",
            "country": "GB",
            "kyc_level": "STANDARD",
            "risk_rating": "LOW",
            "base_currency": "EUR",
            "opened_at": "2026-11-25T10:00:00Z",
        },
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Hub, TestClient, dict[str, dict[str, str]]]]:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    md = h.publisher.publish("accounts", [opened("ACC-C")], producer="t")[0]
    h.projections.run(["accounts"])
    keys = {
        "ann": auth(h.keys.create(["analyst"], principal="ann").token),
        "bob": auth(h.keys.create(["analyst"], principal="bob").token),
        "cora": auth(h.keys.create(["compliance_officer"], principal="cora").token),
    }
    keys["_partition"] = {"p": str(md.partition)}
    with TestClient(create_app(h)) as client:
        yield h, client, keys
    h.close()


def reads(client: TestClient, headers: dict[str, str], partition: str) -> tuple[str, Any, Any]:
    """What a reader sees on the three PII paths: events, a query, the events behind a row."""
    events = client.get(f"/v1/topics/accounts/events?partition={partition}", headers=headers)
    query = client.post(
        "/v1/query",
        json={"sql": "SELECT email FROM accounts_current", "store": "transactional"},
        headers=headers,
    )
    sources = client.get(
        "/v1/projections/accounts/rows/default|ACC-C/sources",
        params={"table": "accounts_current"},
        headers=headers,
    )
    return events.text, query, sources


def decisions(h: Hub) -> list[dict[str, Any]]:
    h.policy.committer.flush()  # type: ignore[attr-defined]
    end = h.log.end_offsets(DECISIONS_TOPIC).get(0, 0)
    return [r["value"] for r in h.reader.read(DECISIONS_TOPIC, 0, 0, end + 1)]


def test_case_lifecycle_over_http(setup: tuple[Hub, TestClient, dict[str, dict[str, str]]]) -> None:
    h, client, keys = setup
    part = keys["_partition"]["p"]
    ann, bob, cora = keys["ann"], keys["bob"], keys["cora"]

    # 1. No headers: masked everywhere.
    text, query, sources = reads(client, ann, part)
    assert EMAIL not in text and "***" in text
    assert query.status_code == 200 and query.json()["rows"] == [{"email": None}]
    assert EMAIL not in sources.text

    # 2. Only compliance officers (and admins) open cases; an analyst may not.
    body = {"reason": "AML alert 42", "subjects": ["ACC-C"], "investigators": ["ann"]}
    assert client.post("/v1/cases", json=body, headers=ann).status_code == 403
    r = client.post("/v1/cases", json=body, headers=cora)
    assert r.status_code == 201, r.text
    case = r.json()
    case_id = case["case_id"]
    assert case["status"] == "open" and case["opened_by"] == "cora"
    assert case["investigators"] == ["ann"] and case["subjects"] == ["ACC-C"]
    listed = client.get("/v1/cases", headers=cora).json()["cases"]
    assert [c["case_id"] for c in listed] == [case_id]

    # 3. Under the case: plaintext on every path, for its investigator only.
    under = {**ann, "X-Hub-Purpose": "investigation", "X-Hub-Case": case_id}
    text, query, sources = reads(client, under, part)
    assert EMAIL in text
    assert query.json()["rows"] == [{"email": EMAIL}]
    assert EMAIL in sources.text
    not_named = {**bob, "X-Hub-Purpose": "investigation", "X-Hub-Case": case_id}
    text, query, _ = reads(client, not_named, part)
    assert EMAIL not in text and query.json()["rows"] == [{"email": None}]

    # 4. Every read under the case is recorded with the case id.
    under_case = [d for d in decisions(h) if d["case_id"] == case_id and d["principal"] == "ann"]
    assert {d["action"] for d in under_case} >= {"event.read", "query.run", "pii.read"}
    assert all(d["purpose"] == "investigation" for d in under_case)
    assert any(d["action"] == "event.read" and d["mask"] == [] for d in under_case)

    # 5. A made-up case id is denied, naming it.
    made_up = {**ann, "X-Hub-Purpose": "investigation", "X-Hub-Case": "CASE-made-up"}
    denied = client.get(f"/v1/topics/accounts/events?partition={part}", headers=made_up)
    assert denied.status_code == 403 and "CASE-made-up" in denied.json()["message"]
    assert (
        client.post(
            "/v1/query",
            json={"sql": "SELECT email FROM accounts_current", "store": "transactional"},
            headers=made_up,
        ).status_code
        == 403
    )

    # 6. Closed: masked again (the case is known, so the request is allowed, masked).
    closed = client.post(f"/v1/cases/{case_id}/close", json={"reason": "done"}, headers=cora)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    text, query, sources = reads(client, under, part)
    assert EMAIL not in text and "***" in text
    assert query.json()["rows"] == [{"email": None}]
    assert EMAIL not in sources.text
    again = client.post(f"/v1/cases/{case_id}/close", json={}, headers=cora)
    assert again.status_code == 409
    assert client.get("/v1/cases/CASE-nope", headers=cora).status_code == 404


def test_an_expired_case_masks_again(
    setup: tuple[Hub, TestClient, dict[str, dict[str, str]]],
) -> None:
    h, client, keys = setup
    part = keys["_partition"]["p"]
    case = client.post(
        "/v1/cases",
        json={"reason": "short look", "investigators": ["ann"], "expires_in": "1h"},
        headers=keys["cora"],
    ).json()
    under = {**keys["ann"], "X-Hub-Purpose": "investigation", "X-Hub-Case": case["case_id"]}
    assert EMAIL in reads(client, under, part)[0]
    # Two hours later (the policy reads context.now; the decision cache must not outlive it).
    real = h.policy._clock_ns  # type: ignore[attr-defined]
    h.policy._clock_ns = lambda: real() + 2 * 3600 * 10**9  # type: ignore[attr-defined]
    text, query, _ = reads(client, under, part)
    assert EMAIL not in text and query.json()["rows"] == [{"email": None}]
    assert client.get("/v1/cases?status=expired", headers=keys["cora"]).status_code == 200
    bad = client.post(
        "/v1/cases", json={"reason": "x", "expires_in": "forever"}, headers=keys["cora"]
    )
    assert bad.status_code == 422 and "forever" in bad.json()["message"]
    empty = client.post("/v1/cases", json={"reason": "  "}, headers=keys["cora"])
    assert empty.status_code == 422


def test_case_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    r = runner.invoke(
        main,
        [
            *admin_args(data),
            "case",
            "open",
            "--reason",
            "DSR check",
            "--subject",
            "ACC-1",
            "--expires-in",
            "2d",
        ],
    )
    assert r.exit_code == 0, r.output
    case = json.loads(r.stdout)
    assert case["investigators"] == ["admin"] and case["subjects"] == ["ACC-1"]
    r = runner.invoke(main, [*admin_args(data), "case", "list", "--status", "open"])
    assert r.exit_code == 0 and case["case_id"] in r.stdout
    r = runner.invoke(main, [*admin_args(data), "case", "close", case["case_id"]])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "closed"
    r = runner.invoke(main, [*admin_args(data), "case", "close", case["case_id"]])
    assert r.exit_code == 1 and "already closed" in r.output
    r = runner.invoke(
        main, [*admin_args(data), "case", "open", "--reason", "x", "--expires-in", "soon"]
    )
    assert r.exit_code == 1 and "'soon'" in r.output
