"""Registry modes as a weapon (session 14 review): a ``registry.config`` holder (a
security_admin) or a publisher with ``schema.write`` using READONLY and IMPORT to lock the hub
out, rewrite a subject's history, or lift a compatibility level the two-person rule guards."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.test_config_changes import enable_two_person

from ._api import Api, basic, start_api

A = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})
C = json.dumps({"type": "record", "name": "T", "fields": [{"name": "c", "type": "double"}]})


def test_a_global_read_only_mode_does_not_lock_the_hub_out_after_a_restart(
    tmp_path: Path,
) -> None:
    """Before the fix: after a restart every request answered 503 ``decision_not_recorded``
    (the decision topic's schema could not be registered again), the request that would set
    the mode back included."""
    hub, client = start_api(tmp_path / "data")
    sam = basic(hub.keys.create(["security_admin"], principal="sam").token)
    pia = basic(hub.keys.create(["publisher"], principal="pia").token)
    root = basic(hub.keys.create(["admin"], principal="root").token)
    r = client.put("/mode", json={"mode": "READONLY"}, headers=sam)
    assert r.json() == {"mode": "READONLY"}, r.text
    client.close()
    hub.close()
    hub, client = start_api(tmp_path / "data")
    try:
        r = client.get("/v1/topics", headers=root)
        assert r.status_code == 200, r.text
        assert client.get("/mode/hub.decisions-value", headers=root).json() == {"mode": "READWRITE"}
        # the mode still holds for the subjects it is meant for
        r = client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
        assert (r.status_code, r.json()["error_code"]) == (422, 42205), r.text
        assert client.put("/mode", json={"mode": "READWRITE"}, headers=sam).status_code == 200
        r = client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
        assert r.status_code == 200, r.text
    finally:
        client.close()
        hub.close()


def test_read_only_mode_still_answers_an_identical_registration(api: Api) -> None:
    """Registering a schema already live in the subject writes nothing: it answers its id
    in read-only mode too (the hub's own start-up registrations depend on it)."""
    pia = api.as_role("publisher")
    first = api.client.post("/subjects/ro-value/versions", json={"schema": A}, headers=pia)
    assert first.status_code == 200, first.text
    api.client.put("/mode/ro-value", json={"mode": "READONLY"}, headers=api.admin)
    again = api.client.post("/subjects/ro-value/versions", json={"schema": A}, headers=pia)
    assert again.json() == first.json(), again.text
    other = api.client.post("/subjects/ro-value/versions", json={"schema": C}, headers=pia)
    assert other.json()["reason"] == "read_only_mode", other.text


def test_import_mode_cannot_rewrite_a_stored_version(api: Api) -> None:
    """Before the fix: in IMPORT mode a publisher replaced version 1 of a subject with another
    schema (``{"schema": ..., "version": 1}``): every reader of version 1 got the new one."""
    pia = api.as_role("publisher")
    r = api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    original = r.json()["id"]
    r = api.client.put("/mode/victim-value?force=true", json={"mode": "IMPORT"}, headers=api.admin)
    assert r.status_code == 200, r.text
    for body in ({"schema": C, "version": 1}, {"schema": C, "version": 1, "id": 99_999}):
        r = api.client.post("/subjects/victim-value/versions", json=body, headers=pia)
        assert (r.status_code, r.json()["error_code"]) == (422, 42205), r.text
        assert r.json()["reason"] == "version_in_use"
    v1 = api.client.get("/subjects/victim-value/versions/1", headers=pia).json()
    assert (v1["id"], json.loads(v1["schema"])) == (original, json.loads(A))
    # importing as a new version still works
    r = api.client.post(
        "/subjects/victim-value/versions", json={"schema": C, "version": 2}, headers=pia
    )
    assert r.status_code == 200, r.text


def test_import_mode_cannot_lift_a_two_person_compatibility_level(api: Api) -> None:
    """Before the fix: a level under the two-person rule could not be changed by one person,
    but one security_admin could set IMPORT mode (no compatibility checks at all) instead."""
    pia, sam = api.as_role("publisher"), api.as_role("security_admin")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    enable_two_person(api.hub, "registry.config:*")
    assert api.client.put("/config", json={"compatibility": "NONE"}, headers=sam).status_code == 403
    for url in ("/mode", "/mode/victim-value"):
        r = api.client.put(url, json={"mode": "import"}, headers=sam)
        assert r.status_code == 403, (url, r.text)
        assert r.json()["reason"] == "two_person_required", r.text
    assert api.client.get("/mode/victim-value", headers=sam).json() == {"mode": "READWRITE"}
    r = api.client.post("/subjects/victim-value/versions", json={"schema": C}, headers=pia)
    assert r.json()["reason"] == "incompatible_schema", r.text
    # the other modes are not about compatibility: still one person's call
    r = api.client.put("/mode/victim-value", json={"mode": "READONLY"}, headers=sam)
    assert r.json() == {"mode": "READONLY"}, r.text
