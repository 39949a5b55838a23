"""Identity escalation, as an attacker tries it (issue 10, items 1, 3 and 4).

Each test is one attack: forging keys through internal topics, reading key hashes, minting a
second identity to satisfy the two-person rule, issuing rights one lacks, impersonating someone,
and keys that should have stopped working (revoked, expired, rotated, legacy, colliding ids).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.events import OutgoingEvent, is_internal_topic
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from governance.apikeys import PEPPER_FILE
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.adversarial._api import start_api
from tests.adversarial._people import enrolled, witness
from tests.cli_keys import admin_args, admin_key_file

TRADE = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "US0378331005",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00Z",
}
INTERNAL_NAMES = [
    "hub.principals",
    "_schemas",
    "hub.quarantine",
    "hub.policies",
    "HUB.principals",  # case
    " hub.principals",  # whitespace
    "hub\uff0eprincipals",  # fullwidth full stop, NFKC-folds to "."
    "\uff48ub.principals",  # fullwidth h
    "_SCHEMAS",
    "__consumer_offsets",
    "flink.market_bars_1m",  # a Flink result topic: folded into the analytics views
    "FLINK.positions",
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    return auth(hub.keys.create(["admin"], owner="root").token)


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Hub]]:
    """One hub and its client for the tests that only check refusals (19 of them): nothing
    refused is stored, and the keys they issue have owners of their own, so they cannot see each
    other. Its projections and its app's background tasks do not start (``start_api``, no
    lifespan), so it never opens the process's one chDB session, which the other tests' hubs open
    (as ``shared_api``)."""
    h, c = start_api(tmp_path_factory.mktemp("hub") / "data")
    try:
        yield c, h
    finally:
        c.close()
        h.close()


@pytest.fixture(scope="module")
def refusing_admin(refusing: tuple[TestClient, Hub]) -> dict[str, str]:
    return auth(refusing[1].keys.create(["admin"], owner="root").token)


def forged_key_value(secret: str) -> dict[str, Any]:
    """The reviewer's payload: an admin key whose secret hash the attacker chose."""
    salt = "00" * 16
    return {
        "key_id": "hk_00000000deadbeef",
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "principal": "admin",
        "owner": "admin",
        "roles": ["admin"],
        "tenant": "default",
        "description": "",
        "issued_by": "hub",
        "issued_at": "2026-11-25T00:00:00Z",
        "expires_at": None,
        "salt": salt,
        "secret_hmac": hashlib.sha256(secret.encode()).hexdigest(),
    }


def principals_end(hub: Hub) -> int:
    return hub.log.end_offsets("hub.principals")[0]


# -- item 1: internal topics are never written from outside ---------------------------------
@pytest.mark.parametrize("role", ["publisher", "admin"])
def test_forging_an_admin_key_through_publish_and_ingest_fails(
    client: TestClient, hub: Hub, role: str
) -> None:
    caller = auth(hub.keys.create([role], owner=f"mallory-{role}").token)
    before = principals_end(hub)
    value = forged_key_value("s3cret")
    strict = client.post(
        "/v1/topics/hub.principals/events",
        headers=caller,
        json={"events": [{"value": value, "event_type": "hub.ApiKeyIssued"}]},
    )
    assert strict.status_code == 403 and strict.json()["reason"] == "internal_topic"
    ingest = client.post(
        "/v1/ingest/hub.principals",
        headers=caller,
        json={"events": [{"value": value, "event_type": "hub.ApiKeyIssued"}]},
    )
    assert ingest.status_code == 403 and ingest.json()["reason"] == "internal_topic"
    ndjson = client.post(
        "/v1/ingest/hub.principals",
        headers={**caller, "content-type": "application/x-ndjson"},
        content=json.dumps({"value": value, "event_type": "hub.ApiKeyIssued"}) + "\n",
    )
    assert ndjson.status_code == 403 and ndjson.json()["reason"] == "internal_topic"
    # Confluent wire format with the registry's own ApiKeyIssued schema id.
    sid = hub.registry.get_version("hub.ApiKeyIssued", "latest").id
    frame = b"\x00" + struct.pack(">I", sid) + b"\x00"
    avro = client.post(
        "/v1/ingest/hub.principals/avro",
        headers={**caller, "content-type": "application/octet-stream"},
        content=struct.pack(">I", len(frame)) + frame,
    )
    assert avro.status_code == 403 and avro.json()["reason"] == "internal_topic"
    assert principals_end(hub) == before  # nothing landed
    forged = client.get("/v1/topics", headers=bearer("hk_00000000deadbeef:s3cret"))
    assert forged.status_code == 401


@pytest.mark.parametrize("name", INTERNAL_NAMES)
def test_internal_name_variants_are_refused_on_every_write_path(
    refusing: tuple[TestClient, Hub], refusing_admin: dict[str, str], name: str
) -> None:
    (client, _), admin = refusing, refusing_admin
    assert is_internal_topic(name)
    path = name.replace("/", "%2F")
    body = {"events": [{"value": TRADE}]}
    r = client.post(f"/v1/topics/{path}/events", headers=admin, json=body)
    assert (r.status_code, r.json()["reason"]) == (403, "internal_topic"), r.text
    r = client.post(f"/v1/ingest/{path}", headers=admin, json=body)
    assert (r.status_code, r.json()["reason"]) == (403, "internal_topic"), r.text
    r = client.post("/v1/topics", headers=admin, json={"name": name, "partitions": 1})
    assert (r.status_code, r.json()["reason"]) == (403, "internal_topic"), r.text


def test_percent_encoded_internal_topic_is_refused(
    refusing: tuple[TestClient, Hub], refusing_admin: dict[str, str]
) -> None:
    (client, _), admin = refusing, refusing_admin
    r = client.post(
        "/v1/topics/hub%2Eprincipals/events", headers=admin, json={"events": [{"value": TRADE}]}
    )
    assert (r.status_code, r.json()["reason"]) == (403, "internal_topic")


def test_business_topics_that_merely_mention_hub_are_fine(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert not is_internal_topic("trades") and not is_internal_topic("github.events")
    r = client.post("/v1/topics", headers=admin, json={"name": "github.events", "partitions": 1})
    assert r.status_code == 201
    r = client.post("/v1/topics/trades/events", headers=admin, json={"events": [{"value": TRADE}]})
    assert r.status_code == 201


def _all_routes(routes: list[Any]) -> list[Any]:
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_all_routes(inner.routes) if inner is not None else [r])
    return out


def test_every_write_route_taking_a_topic_refuses_internal_topics(
    refusing: tuple[TestClient, Hub], refusing_admin: dict[str, str]
) -> None:
    """A new route with ``{topic}`` that writes cannot forget the guard: this test finds it."""
    (client, _), admin = refusing, refusing_admin
    checked = 0
    for route in _all_routes(client.app.routes):  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute) or "{topic}" not in route.path:
            continue
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            url = route.path.replace("{topic}", "hub.principals")
            if url.endswith("/avro"):
                frame = b"\x00\x00\x00\x00\x01\x00"
                kwargs: dict[str, Any] = {"content": struct.pack(">I", len(frame)) + frame}
            else:
                kwargs = {"json": {"events": [{"value": TRADE}]}}
            r = client.request(method, url, headers=admin, **kwargs)
            assert (r.status_code, r.json().get("reason")) == (403, "internal_topic"), (
                method,
                route.path,
                r.text,
            )
            checked += 1
    assert checked >= 3


def test_cli_publish_and_watch_refuse_internal_topics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    f = tmp_path / "k.jsonl"
    f.write_text(json.dumps(forged_key_value("x")) + "\n")
    for args in (
        ["publish", str(f), "-t", "hub.principals"],
        ["publish", str(f), "-t", "_schemas"],
    ):
        r = CliRunner().invoke(main, [*admin_args(data), *args])
        assert r.exit_code == 1 and "internal_topic" in r.stderr, r.output
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(f, inbox / "a.jsonl")
    r = CliRunner().invoke(
        main,
        [*admin_args(data), "watch", str(inbox), "-t", "hub.principals", "--once", "--settle", "0"],
    )
    assert r.exit_code != 0 or not (inbox / "done" / "a.jsonl").exists()
    assert "internal_topic" in r.output + r.stderr


# -- item 4: internal topics are read only with internal.read, hashes never -------------------
@pytest.mark.parametrize(
    "role", ["analyst", "publisher", "compliance_officer", "security_admin", "ml_engineer"]
)
def test_business_roles_cannot_read_internal_topics(
    refusing: tuple[TestClient, Hub], role: str
) -> None:
    client, hub = refusing
    who = auth(hub.keys.create([role], owner=f"p-{role}").token)
    for topic in ("hub.principals", "hub.quarantine", "_schemas", "hub.policies"):
        r = client.get(f"/v1/topics/{topic}/events", headers=who)
        assert r.status_code == 403, (role, topic, r.text)
        assert "secret" not in r.text


def test_admin_reads_principals_without_any_hash(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    issued = hub.keys.create(["analyst"], owner="ann")
    stored = hub.keys.get(issued.key_id)
    r = client.get("/v1/topics/hub.principals/events", headers=admin)
    assert r.status_code == 200
    values = [rec["value"] for rec in r.json()["records"]]
    assert any(v["key_id"] == issued.key_id for v in values)
    for v in values:
        assert v["secret_hmac"] in ("", "[redacted]") and v["salt"] in ("", "[redacted]")
    assert stored.secret_hmac not in r.text and stored.salt not in r.text
    assert issued.secret not in r.text


def test_hub_tail_needs_internal_read_and_never_prints_hashes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        ann = h.keys.create(["analyst"], owner="ann")
        stored = h.keys.get(ann.key_id)
    finally:
        h.close()
    r = CliRunner().invoke(
        main, ["--data-dir", str(data), "--key", ann.token, "tail", "hub.principals"]
    )
    assert r.exit_code == 1 and "internal.read" in r.stderr
    r = CliRunner().invoke(main, [*admin_args(data), "tail", "hub.principals", "-n", "50"])
    assert r.exit_code == 0, r.output
    assert ann.key_id in r.stdout
    assert stored.secret_hmac not in r.stdout and stored.salt not in r.stdout


# -- salted, keyed hashes ---------------------------------------------------------------------
def test_stored_hash_is_keyed_and_salted_and_a_leaked_log_is_useless(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        a = h.keys.create(["analyst"], owner="ann")
        b = h.keys.create(["analyst"], owner="bob")
        ka, kb = h.keys.get(a.key_id), h.keys.get(b.key_id)
        pepper = (data / "keys" / PEPPER_FILE).read_bytes()
    finally:
        h.close()
    assert ka.salt != kb.salt and not ka.secret_sha256
    assert ka.secret_hmac != hashlib.sha256(a.secret.encode()).hexdigest()
    want = hmac.new(pepper, bytes.fromhex(ka.salt) + a.secret.encode(), "sha256").hexdigest()
    assert ka.secret_hmac == want
    raw = (data / "log.sqlite").read_bytes()
    assert pepper not in raw and a.secret.encode() not in raw
    assert hashlib.sha256(a.secret.encode()).hexdigest().encode() not in raw
    # The log alone (another folder, no pepper): the right secret no longer verifies.
    # The whole folder but the pepper: with the log's MAC key (without it the log is refused on
    # open: test_log_key_replaced) and the ledger with its key (an empty ledger over a log that
    # holds records is refused: test_s19_rtb_ledger_removed).
    leaked = tmp_path / "leaked"
    shutil.copytree(data, leaked)
    (leaked / "keys" / PEPPER_FILE).unlink()
    other = bootstrap(load_settings(environ={}, data_dir=leaked))
    try:
        with pytest.raises(Exception, match="Invalid API key"):
            other.keys.verify(a.key_id, a.secret)
    finally:
        other.close()


def test_legacy_sha256_keys_still_work_are_flagged_and_rotate_away(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    secret = "legacy-secret-from-the-previous-version"
    hub.publisher.publish(
        "hub.principals",
        [
            OutgoingEvent(
                event_type="hub.ApiKeyIssued",
                value={
                    "key_id": "hk_1111111111111111",
                    "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                    "principal": "olga",
                    "roles": ["analyst"],
                    "tenant": "default",
                    "description": "",
                    "issued_by": "local-operator",
                    "issued_at": "2026-11-01T00:00:00Z",
                },
            )
        ],
        producer="test",
    )
    token = f"hk_1111111111111111:{secret}"
    assert client.get("/v1/topics", headers=auth(token)).status_code == 200
    listed = {k["key_id"]: k for k in client.get("/v1/keys", headers=admin).json()}
    assert listed["hk_1111111111111111"]["legacy"] is True
    assert listed["hk_1111111111111111"]["owner"] == "olga"
    rotated = client.post("/v1/keys/hk_1111111111111111/rotate", headers=auth(token), json={})
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["token"]
    assert client.get("/v1/topics", headers=auth(token)).status_code == 401
    assert client.get("/v1/whoami", headers=auth(new)).json()["principal"] == "olga"
    assert hub.keys.get(rotated.json()["key_id"]).legacy is False


# -- item 3: issuance rules -------------------------------------------------------------------
def test_issuance_rules_for_a_non_admin(client: TestClient, hub: Hub) -> None:
    hub.keys.create(["compliance_officer"], owner="carol")
    sam = auth(hub.keys.create(["security_admin"], owner="sam").token)

    def issue(**body: Any) -> tuple[int, str]:
        r = client.post("/v1/keys", headers=sam, json=body)
        return r.status_code, r.json().get("reason", "")

    assert issue(roles=["security_admin"], owner="sam") == (403, "self_issue")
    assert issue(roles=["security_admin"], owner=" SAM ") == (403, "self_issue")
    assert issue(roles=["compliance_officer"], owner="x1") == (403, "role_escalation")
    assert issue(roles=["security_admin", "analyst"], owner="x2") == (403, "role_escalation")
    assert issue(roles=["admin"], owner="x3") == (403, "role_escalation")
    assert issue(roles=["security_admin"], owner="admin") == (403, "owner_reserved")
    assert issue(roles=["security_admin"], owner="Admin") == (403, "owner_reserved")
    assert issue(roles=["security_admin"], owner="local-operator") == (403, "owner_reserved")
    assert issue(roles=["security_admin"], owner="carol") == (403, "owner_exists")
    assert issue(roles=["security_admin"], owner="CAROL") == (403, "owner_exists")
    assert issue(roles=["security_admin"], owner="c\u0430rol")[0] == 422  # Cyrillic a
    assert issue(roles=["security_admin"], owner="tim", tenant="globex") == (
        403,
        "tenant_escalation",
    )
    assert issue(roles=["security_admin"], owner="tim")[0] == 201
    assert issue(roles=["security_admin"], owner="tim") == (403, "owner_exists")  # once


def test_admin_may_issue_anything_even_a_second_key_to_a_person(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    hub.keys.create(["analyst"], owner="ann")
    r = client.post("/v1/keys", headers=admin, json={"roles": ["admin"], "owner": "ann"})
    assert r.status_code == 201
    # a role that may approve: ann enrols (governance.enrolment), the admin holds no key of hers
    assert r.json()["owner"] == "ann" and "token" not in r.json()
    half = None
    if r.json()["status"] == "pending_approval":
        half = hub.keys.approve_enrolment(witness(hub), r.json()["enrolment_id"])
    ann = hub.keys.redeem(r.json()["enrolment_token"], "a" * 43, second=half)
    assert client.get("/v1/whoami", headers=auth(ann.token)).json()["principal"] == "ann"


def _policy_files() -> dict[str, str]:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["open_cases"] = [*data.get("open_cases", []), "CASE-EVIL"]
    return {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def test_reviewer_attack_second_security_admin_key_cannot_approve(
    client: TestClient, hub: Hub
) -> None:
    """security_admin proposes a policy change, mints itself another security_admin identity
    (under its own name, no name, or any new name, even two hops away), and approves."""
    sam_token = hub.keys.create(["security_admin"], owner="sam").token
    sam = auth(sam_token)
    proposed = client.post(
        "/v1/policy/changes",
        headers=sam,
        json={"files": _policy_files(), "reason": "open a case"},
    )
    assert proposed.status_code in (200, 201), proposed.text
    change = proposed.json()
    assert change["status"] == "pending_approval"
    cid = change["change_id"]

    assert client.post("/v1/keys", headers=sam, json={"roles": ["security_admin"], "owner": "sam"})
    # a key that may approve is never handed to its creator: no owner, no enrolment
    r = client.post("/v1/keys", headers=sam, json={"roles": ["security_admin"]})
    assert (r.status_code, r.json()["reason"]) == (422, "owner_required")
    r = client.post("/v1/keys", headers=sam, json={"roles": ["security_admin"], "owner": "s2"})
    assert r.status_code == 201 and "token" not in r.json()
    assert r.json()["status"] == "pending_approval"  # sam holds half a token
    assert (
        client.post(
            "/v1/enrol", json={"token": r.json()["enrolment_token"], "secret": "s" * 43}
        ).status_code
        == 401
    )
    mine = client.post(f"/v1/enrolments/{r.json()['enrolment_id']}/approve", headers=sam, json={})
    assert mine.status_code == 403 and "Two-person rule" in mine.json()["message"]
    # even with a second approver, s2 was enrolled by sam while sam's change was pending
    half = hub.keys.approve_enrolment(witness(hub), r.json()["enrolment_id"])
    s2 = hub.keys.redeem(r.json()["enrolment_token"], "s" * 43, second=half)
    p = client.post(f"/v1/policy/changes/{cid}/approve", headers=auth(s2.token), json={})
    assert p.status_code == 403 and "Two-person rule" in p.json()["message"]
    r = client.post(f"/v1/policy/changes/{cid}/approve", headers=sam, json={})
    assert r.status_code == 403
    assert hub.policy_changes.store.change(cid).activated_at is None


def test_same_owner_with_another_role_or_after_rotation_cannot_approve(
    client: TestClient, hub: Hub
) -> None:
    alice_sec = hub.keys.create(["security_admin"], owner="alice")
    alice_co = hub.keys.create(["compliance_officer"], owner="alice")  # admin: 2nd key, 2nd role
    cid = client.post(
        "/v1/policy/changes",
        headers=auth(alice_sec.token),
        json={"files": _policy_files(), "reason": "r"},
    ).json()["change_id"]
    r = client.post(f"/v1/policy/changes/{cid}/approve", headers=auth(alice_co.token), json={})
    assert r.status_code == 403 and "Two-person rule" in r.json()["message"]
    rotated = client.post(
        f"/v1/keys/{alice_sec.key_id}/rotate", headers=auth(alice_sec.token), json={}
    )
    assert rotated.status_code == 201
    r = client.post(
        f"/v1/policy/changes/{cid}/approve", headers=auth(rotated.json()["token"]), json={}
    )
    assert r.status_code == 403
    carol = hub.keys.create(["compliance_officer"], owner="carol")  # admin-vetted, independent
    r = client.post(f"/v1/policy/changes/{cid}/approve", headers=auth(carol.token), json={})
    assert r.status_code == 200, r.text


def test_config_two_person_rule_compares_owners_and_provenance(hub: Hub) -> None:
    alice_key = hub.keys.create(["security_admin"], owner="alice")
    carol_key = hub.keys.create(["compliance_officer"], owner="carol")
    alice = hub.keys.get(alice_key.key_id).principal
    carol = hub.keys.get(carol_key.key_id).principal  # an approval is made with a person's key
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["two_person"] = [*data["two_person"], "registry.config*"]
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    policies = hub.policy_changes
    policies.approve(carol, policies.propose(alice, files, "two people").change_id)

    changes = hub.config_changes
    change = changes.propose(alice, "registry.config:trades-value", "FULL", "tighten")
    assert change.applied_at is None
    other_alice = Principal("ALICE", frozenset({"compliance_officer"}), attributes={"key_id": "x"})
    with pytest.raises(Exception, match="Two-person rule"):
        changes.approve(other_alice, change.change_id)
    puppet = enrolled(
        hub, Principal("alice", frozenset({"security_admin"})), ["security_admin"], owner="al2"
    )
    puppet_p = hub.keys.verify(*puppet.token.split(":"))
    with pytest.raises(Exception, match="Two-person rule"):  # enrolled by alice meanwhile
        changes.approve(puppet_p, change.change_id)
    assert changes.approve(carol, change.change_id).applied_at is not None


# -- revocation, rotation, expiry -------------------------------------------------------------
def test_revoked_key_fails_at_once_with_basic_and_bearer_even_from_another_process(
    client: TestClient, hub: Hub, admin: dict[str, str], tmp_path: Path
) -> None:
    victim = hub.keys.create(["analyst"], owner="vic")
    assert client.get("/v1/topics", headers=auth(victim.token)).status_code == 200
    # Another process on the same data folder (the CLI) revokes it.
    admin_token = hub.keys.create(["admin"], owner="ops").token
    r = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(hub.settings.data_dir),
            "--key",
            admin_token,
            "keys",
            "revoke",
            victim.key_id,
            "--reason",
            "laptop stolen",
        ],
    )
    assert r.exit_code == 0, r.output
    started = time.monotonic()
    for headers in (auth(victim.token), bearer(victim.token)):
        r = client.get("/v1/topics", headers=headers)
        assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert time.monotonic() - started < 1.0
    listed = client.get("/v1/keys", headers=admin).json()
    assert victim.key_id not in {k["key_id"] for k in listed}
    again = client.post(f"/v1/keys/{victim.key_id}/revoke", headers=admin, json={"reason": "x"})
    assert again.status_code == 422


def test_non_admin_cannot_revoke_or_rotate_keys_above_it(client: TestClient, hub: Hub) -> None:
    root = hub.keys.create(["admin"], owner="root")
    sam = auth(hub.keys.create(["security_admin"], owner="sam").token)
    r = client.post(f"/v1/keys/{root.key_id}/revoke", headers=sam, json={"reason": "coup"})
    assert (r.status_code, r.json()["reason"]) == (403, "key_not_manageable")
    r = client.post(f"/v1/keys/{root.key_id}/rotate", headers=sam, json={})
    assert r.status_code == 403
    ann = auth(hub.keys.create(["analyst"], owner="ann").token)
    r = client.post(f"/v1/keys/{root.key_id}/revoke", headers=ann, json={"reason": "x"})
    assert r.status_code == 403


def test_a_peer_cannot_rotate_a_key_to_learn_its_new_secret(client: TestClient, hub: Hub) -> None:
    """Rotating hands out the new secret: a security_admin rotating a peer's key would then
    hold a second person's identity and could approve its own change with it."""
    sam = auth(hub.keys.create(["security_admin"], owner="sam").token)
    tim = hub.keys.create(["security_admin"], owner="tim")
    r = client.post(f"/v1/keys/{tim.key_id}/rotate", headers=sam, json={})
    assert (r.status_code, r.json()["reason"]) == (403, "key_not_manageable")
    assert client.get("/v1/topics", headers=auth(tim.token)).status_code == 200


def test_cascade_revokes_what_a_leaked_key_issued(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    leaked = hub.keys.create(["security_admin"], owner="sam")
    tim = enrolled(hub, hub.keys.get(leaked.key_id).principal, ["security_admin"], owner="tim")
    child = {"key_id": tim.key_id, "token": tim.token}
    tom = enrolled(hub, hub.keys.get(tim.key_id).principal, ["security_admin"], owner="tom")
    grandchild = {"key_id": tom.key_id, "token": tom.token}
    pending = hub.keys.issue(hub.keys.get(leaked.key_id).principal, ["security_admin"], owner="ula")
    r = client.post(
        f"/v1/keys/{leaked.key_id}/revoke",
        headers=admin,
        json={"reason": "leaked", "cascade": True},
    )
    assert r.status_code == 200
    assert set(r.json()["revoked"]) == {leaked.key_id, child["key_id"], grandchild["key_id"]}
    for token in (leaked.token, child["token"], grandchild["token"]):
        assert client.get("/v1/topics", headers=auth(token)).status_code == 401
    # an enrolment requested with the leaked key ends with it
    states = {e.enrolment_id: e.state(datetime.now(UTC)) for e in hub.keys.enrolments()}
    assert states[pending.enrolment_id] == "expired"  # type: ignore[union-attr]


def test_expired_key_fails_and_is_not_revived(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    short = enrolled(
        hub, Principal("root", frozenset({"admin"})), ["analyst"], owner="eve", expires_at=soon
    )
    assert client.get("/v1/topics", headers=auth(short.token)).status_code == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    r = client.get("/v1/topics", headers=auth(short.token))
    assert r.status_code == 401 and "expired" in r.json()["message"]
    # Rotating an expired key is refused; a new key for the same owner is a new key id.
    r = client.post(f"/v1/keys/{short.key_id}/rotate", headers=admin, json={})
    assert r.status_code == 422
    fresh = client.post("/v1/keys", headers=admin, json={"roles": ["analyst"], "owner": "eve"})
    assert fresh.json()["key_id"] != short.key_id
    assert client.get("/v1/topics", headers=auth(short.token)).status_code == 401
    past = client.post(
        "/v1/keys",
        headers=admin,
        json={"roles": ["analyst"], "owner": "eve", "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert past.status_code == 422
    r = client.post("/v1/keys", headers=admin, json={"roles": ["analyst"], "expires_in": "2h"})
    assert r.status_code == 201


def test_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(
    client: TestClient, hub: Hub
) -> None:
    old = hub.keys.create(["analyst"], owner="gus")
    r = client.post(f"/v1/keys/{old.key_id}/rotate", headers=auth(old.token), json={"grace": "2s"})
    assert r.status_code == 201
    new = r.json()["token"]
    assert client.get("/v1/topics", headers=auth(old.token)).status_code == 200
    assert client.get("/v1/topics", headers=auth(new)).status_code == 200
    time.sleep(2.1)
    assert client.get("/v1/topics", headers=auth(old.token)).status_code == 401
    assert client.get("/v1/topics", headers=auth(new)).status_code == 200


def test_colliding_key_id_never_replaces_the_first_key(client: TestClient, hub: Hub) -> None:
    ann = hub.keys.create(["analyst"], owner="ann")
    forged = forged_key_value("attacker")
    forged["key_id"] = ann.key_id
    hub.publisher.publish(  # even an internal writer cannot overwrite an issued key
        "hub.principals", [OutgoingEvent(value=forged, event_type="hub.ApiKeyIssued")], "t"
    )
    assert client.get("/v1/topics", headers=auth(f"{ann.key_id}:attacker")).status_code == 401
    who = client.get("/v1/whoami", headers=auth(ann.token)).json()
    assert who["principal"] == "ann" and who["roles"] == ["analyst"]


def test_listing_keys_never_shows_hashes(
    client: TestClient, hub: Hub, admin: dict[str, str], tmp_path: Path
) -> None:
    ann = hub.keys.create(["analyst"], owner="ann")
    stored = hub.keys.get(ann.key_id)
    body = client.get("/v1/keys?all=true", headers=admin).text
    assert ann.key_id in body
    for secret in (stored.secret_hmac, stored.salt, ann.secret, "secret_hmac", "salt"):
        assert secret not in body
    sam = auth(hub.keys.create(["security_admin"], owner="sam").token)
    assert client.get("/v1/keys", headers=sam).status_code == 200
    assert client.get("/v1/keys", headers=auth(ann.token)).status_code == 403


# -- the command line needs a credential --------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--role", "admin", "--owner", "x"],
        ["keys", "list"],
        ["policy", "propose", "{tmp}/x.rego", "--reason", "r"],
        ["erase", "ACC-1", "--reason", "r"],
        ["retention", "set", "topic:trades", "--max-age-ms", "1", "--reason", "r"],
        ["legal-hold", "place", "subject:A"],
        ["topics"],
        ["tail", "trades"],
        ["schema", "list"],
    ],
)
def test_cli_refuses_without_a_credential(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "x.rego").write_text("package x\n")
    data = tmp_path / "data"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = CliRunner().invoke(main, ["--data-dir", str(data), *args], env={"HUB_API_KEY": ""})
    assert r.exit_code == 1 and "needs a credential" in r.stderr, r.output


def test_cli_init_bootstraps_once_and_bad_credentials_fail(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = tmp_path / "admin.key"
    r = CliRunner().invoke(main, ["--data-dir", str(data), "init", "--key-file", str(key)])
    assert r.exit_code == 0, r.output
    assert key.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "second.key"
    r = CliRunner().invoke(main, ["--data-dir", str(data), "init", "--key-file", str(other)])
    assert r.exit_code == 1 and "already_initialised" in r.stderr and not other.exists()
    base = ["--data-dir", str(data)]
    r = CliRunner().invoke(main, [*base, "--key-file", str(key), "keys", "list"])
    assert r.exit_code == 0 and "admin" in r.stdout
    r = CliRunner().invoke(main, [*base, "--key", "hk_0000000000000000:nope", "topics"])
    assert r.exit_code == 1 and "Invalid API key" in r.stderr
    r = CliRunner().invoke(main, [*base, "--key", "no-colon", "topics"])
    assert r.exit_code == 1 and "KEY_ID:SECRET" in r.stderr


def test_cli_issuance_revoke_and_rotate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin = admin_args(data)
    r = CliRunner().invoke(
        main, [*admin, "keys", "create", "--role", "security_admin", "--owner", "sam"]
    )
    assert r.exit_code == 0 and "hub enrol" in r.stderr, r.output  # a token, not a key
    r = CliRunner().invoke(main, ["--data-dir", str(data), "enrol"], input=r.stdout)
    assert r.exit_code == 0, r.output
    sam = r.stdout.strip()
    base = ["--data-dir", str(data), "--key", sam]
    r = CliRunner().invoke(main, [*base, "keys", "create", "--role", "compliance_officer"])
    assert r.exit_code == 1 and "role_escalation" in r.stderr
    r = CliRunner().invoke(
        main, [*base, "keys", "create", "--role", "security_admin", "--owner", "sam"]
    )
    assert r.exit_code == 1 and "self_issue" in r.stderr
    out = tmp_path / "sam.key"
    r = CliRunner().invoke(main, [*base, "keys", "rotate", sam.split(":")[0], "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o600
    r = CliRunner().invoke(main, [*base, "topics"])
    assert r.exit_code == 1 and "revoked" in r.stderr
    new = ["--data-dir", str(data), "--key-file", str(out)]
    r = CliRunner().invoke(main, [*new, "keys", "list", "--all"])
    assert r.exit_code == 0 and "revoked" in r.stdout and "secret" not in r.stdout
    r = CliRunner().invoke(main, [*admin, "keys", "revoke", out.read_text().split(":")[0]])
    assert r.exit_code == 2  # --reason is required


def test_registry_subjects_and_query_params_do_not_open_internal_topics(
    client: TestClient, hub: Hub, admin: dict[str, str]
) -> None:
    """A schema registered under an internal topic's subject, or a ``topic`` query parameter,
    gives no way to write the internal topic."""
    schema = json.dumps(
        {"type": "record", "name": "Evil", "fields": [{"name": "key_id", "type": "string"}]}
    )
    client.post("/subjects/_schemas-value/versions", headers=admin, json={"schema": schema})
    client.post("/subjects/hub.principals-value/versions", headers=admin, json={"schema": schema})
    before = principals_end(hub), hub.log.end_offsets("_schemas")[0]
    for topic in ("_schemas", "hub.principals"):
        r = client.post(
            f"/v1/topics/{topic}/events",
            headers=admin,
            json={"events": [{"value": {"key_id": "x"}}]},
        )
        assert (r.status_code, r.json()["reason"]) == (403, "internal_topic")
    r = client.post(
        "/v1/ingest/trades?topic=hub.principals", headers=admin, json={"events": [{"value": TRADE}]}
    )
    assert r.status_code == 200 and r.json()["topic"] == "trades"
    assert principals_end(hub) == before[0]
    assert hub.log.end_offsets("_schemas")[0] == before[1]  # no record from a publish
