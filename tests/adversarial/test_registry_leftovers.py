"""Registry leftovers of the session 14 review (session 15).

- A soft delete of a subject drops the subject's own mode and level (as Confluent's does), but
  wrote no change event: a ``schema.delete`` holder removed a READWRITE pin or a level and the
  ledger showed no actor, old or new value. The removals are now governed changes, written in
  the delete's own transaction.
- A mode change did not wait for registrations in flight: one that was compatibility-checked
  under READWRITE was stored after READONLY had been recorded (``_schemas`` showed a version
  registered in read-only mode)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from core.ports.eventlog import Record
from hub.bootstrap import Hub
from registry.service import SCHEMAS_TOPIC
from tests.service.test_config_changes import ALICE, enable_two_person

from ._api import Api
from .test_registry_governed_modes import _config_changed

A = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})


def test_a_soft_delete_records_the_removal_of_the_subjects_mode_and_level(api: Api) -> None:
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    r = api.client.put("/mode/victim-value", json={"mode": "READWRITE"}, headers=sam)
    assert r.status_code == 200, r.text
    r = api.client.put("/config/victim-value", json={"compatibility": "FULL"}, headers=sam)
    assert r.status_code == 200, r.text
    r = api.client.delete("/subjects/victim-value", headers=api.admin)
    assert r.json() == [1], r.text
    hub = api.hub
    assert hub.registry.own_mode("victim-value") is None
    modes = _config_changed(hub, "registry.mode.victim-value")
    assert [(c["old_value"], c["new_value"]) for c in modes] == [
        (None, '"READWRITE"'),
        ('"READWRITE"', None),  # before the fix: missing, the mode vanished silently
    ]
    assert "DELETE /subjects/victim-value" in str(modes[-1]["reason"])
    (_, level_dropped) = _config_changed(hub, "registry.compatibility.victim-value")
    assert (level_dropped["old_value"], level_dropped["new_value"]) == ('"FULL"', None)
    assert modes[-1]["changed_by"] == level_dropped["changed_by"] != "p-security_admin"
    # the change history lists both removals, with their actor
    dropped = [
        c
        for c in hub.config_changes.store.changes()
        if c.resource in ("registry.mode:victim-value", "registry.config:victim-value")
        and c.new_value is None
    ]
    assert len(dropped) == 2 and all(c.applied_at for c in dropped), dropped
    # on the ledger, like every record
    hub.ledger.sync(force_checkpoint=True)
    where = modes[-1]["offset"]
    assert isinstance(where, tuple)
    partition, offset = where
    assert hub.ledger.index_of("hub.config", partition, offset) is not None


def test_a_two_person_mode_is_not_dropped_by_one_persons_delete(api: Api) -> None:
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    r = api.client.put("/mode/victim-value", json={"mode": "READWRITE"}, headers=sam)
    assert r.status_code == 200, r.text
    enable_two_person(api.hub, "registry.mode:*")
    r = api.client.delete("/subjects/victim-value", headers=api.admin)
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "two_person_required"
    assert api.hub.registry.own_mode("victim-value") == "READWRITE"
    assert api.client.get("/subjects/victim-value/versions", headers=pia).json() == [1]


def test_a_mode_change_waits_for_a_registration_in_flight(api: Api) -> None:
    """A registration checked under READWRITE whose record is being stored (its append is slow:
    the decision committer's batch) while READONLY is set through the governed path."""
    hub: Hub = api.hub
    registry = hub.registry
    entered, release = threading.Event(), threading.Event()

    def slow_append(topic: str, records: Sequence[Record]) -> object:
        entered.set()
        release.wait(10)
        return hub.log.append(topic, records)

    errors: list[BaseException] = []

    def register() -> None:
        try:
            registry.register("victim-value", A, append=slow_append)
        except BaseException as exc:
            errors.append(exc)

    def set_read_only() -> None:
        hub.config_changes.set_direct(ALICE, "registry.mode", "READONLY", "freeze", audit=False)

    reg = threading.Thread(target=register)
    reg.start()
    assert entered.wait(10)
    mode = threading.Thread(target=set_read_only)
    mode.start()
    mode.join(1.0)
    # before the fix the mode change was stored at once, ahead of the registration
    waited = mode.is_alive()
    release.set()
    reg.join(10)
    mode.join(10)
    assert not errors, errors
    assert waited, "the mode change did not wait for the registration in flight"
    kinds = []
    end = hub.log.end_offsets(SCHEMAS_TOPIC)[0]
    for rec in hub.log.read(SCHEMAS_TOPIC, 0, 0, end):
        key = json.loads(rec.key or b"{}")
        if key.get("subject") in ("victim-value", None):
            kinds.append(key["keytype"])
    assert kinds[-2:] == ["SCHEMA", "MODE"], kinds
    assert registry.mode("victim-value") == "READONLY"


def test_a_read_only_subject_is_not_deleted_nor_its_mode_dropped(api: Api) -> None:
    """The drop of the mode is decided after the read-only check: deleting a READONLY subject
    stays refused, with its mode and no change event written."""
    sam, pia = api.as_role("security_admin"), api.as_role("publisher")
    api.client.post("/subjects/victim-value/versions", json={"schema": A}, headers=pia)
    r = api.client.put("/mode/victim-value", json={"mode": "READONLY"}, headers=sam)
    assert r.status_code == 200, r.text
    r = api.client.delete("/subjects/victim-value", headers=api.admin)
    assert r.status_code == 422, r.text
    assert api.hub.registry.own_mode("victim-value") == "READONLY"
    modes = _config_changed(api.hub, "registry.mode.victim-value")
    assert [c["new_value"] for c in modes] == ['"READONLY"']


def test_a_registration_rechecks_the_mode_set_by_another_process(api: Api) -> None:
    """Another hub process sharing the log sets READONLY after this process checked the mode
    (its fence cannot see the other's reservations): the registration re-reads the mode before
    it appends, and is refused rather than stored under READONLY."""
    from core.errors import HubError
    from registry.service import SchemaRegistry

    log = api.hub.log
    other = SchemaRegistry(log)  # the other process's registry, on the same log

    raced: list[bool] = []

    class Racing(SchemaRegistry):
        def _reserve(self, *args: Any) -> Any:
            out = super()._reserve(*args)
            if not raced:  # once: between this registration's check and its append
                raced.append(True)
                other.set_mode("READONLY", "victim-value")
            return out

    mine = Racing(log)
    try:
        mine.register("victim-value", A)
    except HubError as exc:
        assert exc.code == "read_only_mode", exc
    else:
        raise AssertionError("registered under READONLY")  # before the fix
    other.refresh()
    assert "victim-value" not in other.subjects()
    assert mine.mode("victim-value") == "READONLY"
    # with the mode back, the same registration goes through (its reservation was ended)
    other.set_mode("READWRITE", "victim-value")
    assert mine.register("victim-value", A).version == 1
