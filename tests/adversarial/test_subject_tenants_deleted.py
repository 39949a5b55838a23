"""Every row of a data subject deleted from ``keys/subject_tenants.sqlite`` (its pairs AND its
set row). The subject then looked never named: the next tenant to publish it got a set of its
own ({acme}) and its officer crypto-shredded tenant default's data. A set is now made anew only
for a subject with no key, or whose key this process just made for the batch being named
(``KeyStore.created_here``): a subject with an older key and no record is UNVERIFIED, erased
only by an officer of every tenant (``adapters.subject_tenants``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.subject_tenants import UNVERIFIED
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ingest.pipeline import RawRecord
from tests.adversarial._legacy import as_before, publish_before
from tests.adversarial.test_erasure_cross_tenant import _erase
from tests.adversarial.test_quarantine_erasure import OPENED, account

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
        yield h
    finally:
        h.close()


def _delete_all_rows(data: Path) -> None:
    with sqlite3.connect(data / FILE) as conn:
        conn.execute("DELETE FROM subject_tenants")
        conn.execute("DELETE FROM subject_sets")


def _acme_publishes(h: Hub, subject: str) -> None:
    publish_before(h, "acme", [subject])


def _acme_officer_refused(h: Hub, subject: str) -> None:
    assert UNVERIFIED in h.subject_tenants.tenants_of(subject)  # type: ignore[union-attr]
    r = _erase(h, "acme-off", ["compliance_officer"], "acme", subject)
    assert r.status_code == 403, r.text  # type: ignore[attr-defined]
    assert h.keystore.exists(subject)
    assert not h.ledger.entries(action="subject.erase")


def test_all_rows_deleted_then_another_tenant_publishes_in_a_new_process(data: Path) -> None:
    h = _hub(data)
    try:
        publish_before(h, "default", ["ACC-9"])  # tenant default's data subject (its PII sealed)
    finally:
        h.close()
    _delete_all_rows(data)
    h = _hub(data)
    try:
        _acme_publishes(h, "ACC-9")
        assert h.subject_tenants.tenants_of("ACC-9") != frozenset({"acme"})  # type: ignore[union-attr]
        _acme_officer_refused(h, "ACC-9")
        # an officer of every tenant still may (the subject's tenants are unknown)
        r = _erase(h, "root-off", ["admin"], "default", "ACC-9")
        assert r.status_code == 201, r.text  # type: ignore[attr-defined]
        assert not h.keystore.exists("ACC-9")
    finally:
        h.close()


def test_all_rows_deleted_while_the_process_that_made_the_key_runs(hub: Hub, data: Path) -> None:
    publish_before(hub, "default", ["ACC-9"])  # the key made here, then named: no longer new
    _delete_all_rows(data)
    _acme_publishes(hub, "ACC-9")
    _acme_officer_refused(hub, "ACC-9")


def test_a_key_made_for_a_subject_already_recorded_is_not_new_later(hub: Hub, data: Path) -> None:
    # default names ACC-7 first without a key (a record with no PII, here a bare naming), then
    # publishes its PII: the key is made for a subject this process already knows (no write)
    with as_before(hub):
        hub.publisher.name_subjects("default", ["ACC-7"])
    publish_before(hub, "default", ["ACC-7"])
    _delete_all_rows(data)
    _acme_publishes(hub, "ACC-7")
    _acme_officer_refused(hub, "ACC-7")


def test_a_new_subject_is_its_publishing_tenants(hub: Hub) -> None:
    _acme_publishes(hub, "NEW-1")
    tenants = hub.subject_tenants
    assert tenants is not None
    assert tenants.tenants_of("NEW-1") == frozenset({"acme"})
    publish_before(hub, "default", ["NEW-2"])
    _acme_publishes(hub, "NEW-2")  # named by both, the second with the key made already
    assert tenants.tenants_of("NEW-2") == frozenset({"default", "acme"})
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "NEW-1")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert not hub.keystore.exists("NEW-1")


def test_a_new_subject_named_in_a_later_process_after_a_failed_naming(data: Path) -> None:
    # a key made by a batch whose naming never happened (a crash): the next process cannot
    # tell it from a deleted record, so the subject is unverified (restricts, never widens)
    h = _hub(data)
    try:
        h.keystore.ensure_key("ACC-5")
    finally:
        h.close()
    h = _hub(data)
    try:
        _acme_publishes(h, "ACC-5")
        _acme_officer_refused(h, "ACC-5")
    finally:
        h.close()


def test_a_subject_first_seen_in_a_quarantined_record_is_not_claimable(
    hub: Hub, data: Path
) -> None:
    # the quarantine seals default's rejected original under the subject's key (made there):
    # naming it after the seal leaves no key "new" for another tenant to claim later
    value = account("ACC-Q", email="carol q@example")  # fails the e-mail rule: quarantined
    raw = RawRecord(json.dumps(value).encode(), value=value, event_type=OPENED)
    with as_before(hub):
        assert hub.ingest.ingest("accounts", [raw], source="test").rejected == 1
    assert hub.keystore.exists("ACC-Q")
    _delete_all_rows(data)
    _acme_publishes(hub, "ACC-Q")
    _acme_officer_refused(hub, "ACC-Q")
