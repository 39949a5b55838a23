"""Session 23 (consoleapprove23): a policy setting defined twice, in data and in Rego.

A bundle could define ``data.hub.two_person`` (or the grants, the role table) both in its data
file and as a Rego rule (``package hub`` / ``two_person := []``). The hub's own checks (the
two-person rule, the role index, enrolment) read the data file only, the engine may read the
rule: one bundle, two policies, and the diff's data file says the stricter one. Such a bundle
is now refused at proposal (422 ``policy_data_shadowed``, naming the file and the document);
nothing is recorded. A module defining documents of its own still proposes.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from hub.bootstrap import Hub
from tests.adversarial._api import basic

SHADOWS = {
    "a rule in package hub": "package hub\n\nimport rego.v1\n\ntwo_person := []\n",
    "an indented rule": "package hub\n\nimport rego.v1\n\n   grants := []\n",
    "a default rule": "package hub\n\nimport rego.v1\n\ndefault open_cases := []\n",
    "a package under a setting": "package hub.two_person\n\nimport rego.v1\n\nx := 1\n",
    "a quoted package path": 'package hub["role_actions"]\n\nimport rego.v1\n\nanalyst := []\n',
}


@pytest.mark.parametrize("module", list(SHADOWS.values()), ids=list(SHADOWS))
def test_a_rule_shadowing_the_data_files_settings_is_refused(
    hub: Hub, client: TestClient, module: str
) -> None:
    sue = basic(hub.keys.create(["security_admin"], principal="sue").token)
    files = {**PolicyBundle.from_dir().files, "hub/shadow.rego": module}
    before = [c.change_id for c in hub.policy_changes.store.changes()]
    r = client.post("/v1/policy/changes", json={"files": files, "reason": "tidy"}, headers=sue)
    assert r.status_code == 422 and r.json()["reason"] == "policy_data_shadowed", r.text
    assert "hub/shadow.rego" in r.json()["message"], r.text
    hub.policy_changes.store.refresh()
    assert [c.change_id for c in hub.policy_changes.store.changes()] == before


def test_a_module_with_its_own_documents_still_proposes(hub: Hub, client: TestClient) -> None:
    sue = basic(hub.keys.create(["security_admin"], principal="sue").token)
    module = "package hub.extra\n\nimport rego.v1\n\ntwo_person_note := true\n"
    files = {**PolicyBundle.from_dir().files, "hub/extra.rego": module}
    r = client.post("/v1/policy/changes", json={"files": files, "reason": "note"}, headers=sue)
    assert r.status_code == 201, r.text
