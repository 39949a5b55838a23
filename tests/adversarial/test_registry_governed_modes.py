"""Registry modes and subject deletes as governed changes (follow-ups of the session 14 review).

- A mode change (``PUT /mode[/{subject}]``) left no change event: only its ``_schemas`` record
  and the policy decision showed it. It is now a configuration change
  (``registry.mode[:<subject>]``): ``ConfigChanged`` with who, the old and the new mode, on
  ``hub.config`` and so on the ledger.
- Confluent's ``force`` flag was accepted and ignored: it now has Confluent's meaning (IMPORT
  over a subject with versions is refused, 42205, without it).
- A soft delete drops the subject's own compatibility level, so one ``schema.delete`` holder
  removed a level under the two-person rule alone. That delete is now refused until a second
  person approved the level's removal."""

from __future__ import annotations

import json

from hub.bootstrap import Hub
from tests.service.test_config_changes import ALICE, CAROL, enable_two_person

from ._api import Api

A = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})


def _config_changed(hub: Hub, key: str) -> list[dict[str, object]]:
    out = []
    for partition, end in hub.log.end_offsets("hub.config").items():
        if not end:
            continue
        for rec in hub.reader.read("hub.config", partition, 0, end):
            v = rec["value"]
            if isinstance(v, dict) and v.get("key") == key:
                out.append({**v, "offset": (partition, rec["offset"])})
    return out


def test_a_mode_change_is_recorded_with_its_actor_old_and_new_mode_on_the_ledger(
    api: Api,
) -> None:
    sam = api.as_role("security_admin")
    for mode in ("READONLY", "READWRITE"):
        r = api.client.put("/mode/victim-value", json={"mode": mode}, headers=sam)
        assert r.json() == {"mode": mode}, r.text
    r = api.client.put("/mode", json={"mode": "READONLY"}, headers=sam)
    assert r.json() == {"mode": "READONLY"}, r.text
    hub = api.hub
    got = _config_changed(hub, "registry.mode.victim-value")
    assert [(c["old_value"], c["new_value"], c["changed_by"]) for c in got] == [
        (None, '"READONLY"', "p-security_admin"),
        ('"READONLY"', '"READWRITE"', "p-security_admin"),
    ]
    (global_change,) = _config_changed(hub, "registry.mode")
    assert global_change["new_value"] == '"READONLY"'
    # each change is a leaf of the ledger, like every record of the log
    hub.ledger.sync(force_checkpoint=True)
    for c in [*got, global_change]:
        partition, offset = c["offset"]  # type: ignore[misc]
        assert hub.ledger.index_of("hub.config", partition, offset) is not None
    resources = {c.resource for c in hub.config_changes.store.changes()}
    assert {"registry.mode", "registry.mode:victim-value"} <= resources


def test_force_has_confluents_meaning(api: Api) -> None:
    """IMPORT over a subject that has versions needs force=true (Confluent's 42205 "Cannot
    import since found existing subjects"); an empty subject does not."""
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    for url in ("/mode/victim-value", "/mode"):
        r = api.client.put(url, json={"mode": "IMPORT"}, headers=sam)
        assert (r.status_code, r.json()["error_code"]) == (422, 42205), (url, r.text)
        assert "force=true" in r.json()["message"]
        assert api.client.get(url, headers=sam).json() == {"mode": "READWRITE"}
    r = api.client.put("/mode/victim-value?force=true", json={"mode": "IMPORT"}, headers=sam)
    assert r.json() == {"mode": "IMPORT"}, r.text
    r = api.client.put("/mode/empty-value", json={"mode": "IMPORT"}, headers=sam)
    assert r.json() == {"mode": "IMPORT"}, r.text
    r = api.client.put("/mode?force=nonsense", json={"mode": "IMPORT"}, headers=sam)
    assert r.status_code == 422, r.text


def test_one_person_cannot_drop_a_two_person_level_by_deleting_the_subject(api: Api) -> None:
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    r = api.client.put("/config/victim-value", json={"compatibility": "FULL"}, headers=sam)
    assert r.status_code == 200, r.text
    enable_two_person(api.hub, "registry.config:*")
    r = api.client.delete("/subjects/victim-value", headers=api.admin)
    assert r.status_code == 403, r.text  # before the fix: [1], and the level was gone
    assert r.json()["reason"] == "two_person_required"
    assert "POST /v1/config/changes" in r.json()["message"]
    assert api.client.get("/config/victim-value", headers=sam).json() == {
        "compatibilityLevel": "FULL"
    }
    assert api.client.get("/subjects/victim-value/versions", headers=pia).json() == [1]
    # with the level's removal approved by a second person, the delete goes through
    changes = api.hub.config_changes
    change = changes.propose(ALICE, "registry.config:victim-value", None, "retire the subject")
    changes.approve(CAROL, change.change_id, "agreed")
    assert api.client.delete("/subjects/victim-value", headers=api.admin).json() == [1]
    # a subject without a level of its own is deleted by one person, as before
    api.client.post("/subjects/other-value/versions", json={"schema": A}, headers=pia)
    assert api.client.delete("/subjects/other-value", headers=api.admin).json() == [1]


def test_a_proposed_import_mode_cannot_lift_a_two_person_level_either(api: Api) -> None:
    """The mode being a configuration resource, ``POST /v1/config/changes`` could set it too: the
    IMPORT guard of ``PUT /mode`` holds there (one person, applied at once, no checks)."""
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    enable_two_person(api.hub, "registry.config:*")
    for resource in ("registry.mode:victim-value", "registry.mode"):
        body = {"resource": resource, "value": "IMPORT", "reason": "bulk import"}
        r = api.client.post("/v1/config/changes", json=body, headers=sam)
        assert r.status_code == 403, (resource, r.text)
        assert "two-person rule" in r.text, r.text
    assert api.client.get("/mode/victim-value", headers=sam).json() == {"mode": "READWRITE"}
    # another mode is one person's call there too, recorded as a change
    body = {"resource": "registry.mode:victim-value", "value": "READONLY", "reason": "freeze"}
    r = api.client.post("/v1/config/changes", json=body, headers=sam)
    assert r.status_code == 201, r.text
    assert api.client.get("/mode/victim-value", headers=sam).json() == {"mode": "READONLY"}
