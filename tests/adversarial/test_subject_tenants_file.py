"""``keys/subject_tenants.sqlite`` edited. It decides which tenant's officer may crypto-shred a
data subject (test_erasure_cross_tenant); whoever could write that one file moved another
tenant's subject to their own tenant (one UPDATE) and their officer erased it, destroying the
other tenant's data, the ledger entry naming only the forger's tenant. Each row now carries a
MAC under a key derived from the hub's MAC key: a row it does not match is not believed, and
only an officer of every tenant may erase that subject. Since s18 keys are per (tenant, subject)
and publishing names nothing: the record is frozen and decides only the erasure of keys made
before (``tests/adversarial/_legacy.py`` publishes as then)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.local_keystore import subject_digest
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._legacy import publish_before
from tests.adversarial.test_erasure_cross_tenant import _erase

FILE = Path("keys") / "subject_tenants.sqlite"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _hub(data: Path) -> Hub:
    return bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))


@pytest.fixture
def hub(data: Path) -> Iterator[Hub]:
    h = _hub(data)
    try:
        publish_before(h, "default", ["ACC-9"])  # tenant default's data subject
    finally:
        h.close()
    h = _hub(data)
    try:
        yield h
    finally:
        h.close()


def _edit(data: Path, sql: str) -> None:
    with sqlite3.connect(data / FILE) as conn:
        conn.execute(sql)


def test_a_subject_moved_to_another_tenant_is_not_erased_by_its_officer(
    hub: Hub, data: Path
) -> None:
    _edit(data, "UPDATE subject_tenants SET tenant = 'acme'")
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-9")
    assert r.status_code == 403, r.text
    assert hub.keystore.exists("ACC-9")


def test_a_forged_row_replacing_the_owners_is_not_believed(hub: Hub, data: Path) -> None:
    """default's row deleted and a row for acme inserted (without a MAC: the key is not in
    this file): the subject would be acme's alone."""
    _edit(data, "DELETE FROM subject_tenants")
    _edit(
        data,
        f"INSERT INTO subject_tenants VALUES (x'{subject_digest('ACC-9').hex()}', 'acme', NULL)",
    )
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-9")
    assert r.status_code == 403, r.text
    assert hub.keystore.exists("ACC-9")


def test_the_own_tenants_officer_still_erases(hub: Hub) -> None:
    publish_before(hub, "acme", ["ACC-A1"])
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-A1")
    assert r.status_code == 201, r.text


def test_an_unkeyed_row_is_keyed_when_its_tenant_names_the_subject_again(
    hub: Hub, data: Path
) -> None:
    publish_before(hub, "acme", ["ACC-A2"])
    _edit(data, "UPDATE subject_tenants SET mac = NULL")  # as an older hub wrote it
    assert "(unverified)" in hub.subject_tenants.tenants_of("ACC-A2")
    h = _hub(data)  # a new process: nothing remembered
    try:
        publish_before(h, "acme", ["ACC-A2"])
        assert h.subject_tenants.tenants_of("ACC-A2") == frozenset({"acme"})
    finally:
        h.close()


# -- a deleted row of a shared subject (the set row) --------------------------------------------
def _shared(hub: Hub) -> None:
    """ACC-9 is default's (the fixture); acme names it too: a shared subject."""
    publish_before(hub, "acme", ["ACC-9"])
    assert hub.subject_tenants.tenants_of("ACC-9") == frozenset({"default", "acme"})


def _acme_officer_refused(hub: Hub) -> None:
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-9")
    assert r.status_code == 403, r.text
    assert hub.keystore.exists("ACC-9")


def test_deleting_the_other_tenants_row_leaves_the_subject_shared(hub: Hub, data: Path) -> None:
    _shared(hub)
    _edit(data, "DELETE FROM subject_tenants WHERE tenant = 'default'")
    assert "default" in hub.subject_tenants.tenants_of("ACC-9")
    _acme_officer_refused(hub)


def test_deleting_the_row_and_the_set_is_not_believed(hub: Hub, data: Path) -> None:
    _shared(hub)
    _edit(data, "DELETE FROM subject_tenants WHERE tenant = 'default'")
    _edit(data, "DELETE FROM subject_sets")
    assert "(unverified)" in hub.subject_tenants.tenants_of("ACC-9")
    _acme_officer_refused(hub)
    h = _hub(data)  # a new process, acme naming the subject again: no set made anew
    try:
        publish_before(h, "acme", ["ACC-9"])
        assert "(unverified)" in h.subject_tenants.tenants_of("ACC-9")
        _acme_officer_refused(h)
    finally:
        h.close()


def test_an_edited_set_is_not_believed(hub: Hub, data: Path) -> None:
    _shared(hub)
    _edit(data, "DELETE FROM subject_tenants WHERE tenant = 'default'")
    _edit(data, """UPDATE subject_sets SET tenants = '["acme"]'""")
    assert "(unverified)" in hub.subject_tenants.tenants_of("ACC-9")
    _acme_officer_refused(hub)


def test_a_file_from_before_the_sets_gets_them_once(data: Path) -> None:
    h = _hub(data)
    try:
        publish_before(h, "default", ["ACC-9"])
        _shared(h)
    finally:
        h.close()
    _edit(data, "DROP TABLE subject_sets")
    (data / "keys" / "subject-sets.keyed").unlink()
    h = _hub(data)  # builds the sets from the verified pairs
    try:
        assert h.subject_tenants.tenants_of("ACC-9") == frozenset({"default", "acme"})
        _edit(data, "DELETE FROM subject_tenants WHERE tenant = 'default'")
        _acme_officer_refused(h)
    finally:
        h.close()
    _edit(data, "DELETE FROM subject_sets")  # and not built again from what is left
    h = _hub(data)
    try:
        assert "(unverified)" in h.subject_tenants.tenants_of("ACC-9")
    finally:
        h.close()
