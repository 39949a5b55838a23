"""Policy bundle data documents: one reading, no silent override (s20).

Attacks on a policy change (``PolicyBundle.from_files`` validates every upload path):
- ``hub/data.json`` holding an ``"authz"`` member while ``hub/authz/data.json`` exists: the
  embedded engine replaced the whole ``data.hub.authz`` document with the parent's member
  (reviewers read the child file; it no longer applied), where OPA refuses two files defining
  one path. The two footprints loaded different data from one bundle.
- a data document naming a member twice (``{"roles": [...], "roles": [...]}``): last wins, as in
  every JSON entry point s19 closed; refused the same way now.
"""

from __future__ import annotations

import json

import pytest

from core.policybundle import PolicyBundle, PolicyError

BASE = dict(PolicyBundle.from_dir().files)


def test_a_parent_data_document_may_not_override_a_child_file() -> None:
    parent = json.loads(BASE["hub/data.json"])
    files = {
        **BASE,
        "hub/limits/data.json": json.dumps({"max_rows": 10}),
        "hub/data.json": json.dumps({**parent, "limits": {"max_rows": 10_000_000}}),
    }
    with pytest.raises(PolicyError, match=r"hub/limits/data\.json.*max_rows|max_rows.*twice"):
        PolicyBundle.from_files(files)


def test_documents_at_different_paths_still_merge() -> None:
    files = {**BASE, "hub/limits/data.json": json.dumps({"max_rows": 10})}
    assert PolicyBundle.from_files(files).data["hub"]["limits"] == {"max_rows": 10}


def test_a_data_document_naming_a_member_twice_is_refused() -> None:
    files = {**BASE, "hub/extra/data.json": '{"level": "low", "level": "high"}'}
    with pytest.raises(PolicyError, match=r"'level' appears twice"):
        PolicyBundle.from_files(files)
