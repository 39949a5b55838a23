"""Every open refuses an older key ring put back (an erased subject's key live again).

Session 20 made ``hub serve`` and ``hub ledger verify`` refuse a keyring put back to a copy from
before an erasure, but one-shot commands (``hub query``, ``hub evidence export``, ``hub tail``)
skipped the check (a scan of the ledger's erasure entries, ~0.6 ms each), so they read the erased
subject's PII again. Now every open (``bootstrap``) checks the erasures through a MAC'd index of
the ledger's erasure entries (``governance.erasure_index``): the entries after its cursor are
read from the ledger, its MAC and the ledger's root at its cursor are checked, and a missing or
edited index is rebuilt from the ledger with a warning."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ledger.errors import LedgerIntegrityError
from tests.adversarial.test_erasure_paths import NAME, OPERATOR, SUBJECT, load
from tests.service.test_ledger import cli

# (the view the transactional query reads is a projection's; the query is refused at open)
COMMANDS = {
    "query": ["query", "SELECT count(*) AS n FROM payment_status", "--store", "transactional"],
    "export": ["evidence", "export", "--from", "2000-01-01", "--to", "2100-01-01"],
    "tail": ["tail", "accounts"],
}


def settings(data: Path):  # type: ignore[no-untyped-def]
    return load_settings(environ={}, data_dir=data)


def erased_with_older_keyring(tmp_path: Path, earlier: int = 0, index: bool = False) -> Path:
    """A folder whose SUBJECT was erased (after ``earlier`` erasures of subjects without a key),
    with its keyring then put back to a copy from before the erasure (``index``: the erasure
    index too). Returns the data folder."""
    data = tmp_path / "data"
    h = bootstrap(settings(data))
    try:
        load(h)
        keyring = h.settings.keyring_path
    finally:
        h.close()
    assert cli(data, "ledger", "verify")[0] == 0  # (and the admin key file made)
    shutil.copy2(keyring, tmp_path / "keyring.before")  # the attacker's older copy
    # with its anchor (s21, governance.keyring_anchor): the keyring alone is refused as older
    # than its anchor; with both put back, the ledger's erasure entries still refuse it
    anchor = settings(data).keyring_anchor_path
    older_anchor = anchor.read_bytes()
    older_index = settings(data).erasure_index_path.read_bytes()
    h = bootstrap(settings(data))
    try:
        for i in range(earlier):
            h.eraser.erase(OPERATOR, f"ACC-GONE-{i}", f"dsr-0-{i}", tenant_scope=None)
        h.eraser.erase(OPERATOR, SUBJECT, "dsr-1", tenant_scope=None)
    finally:
        h.close()
    put_back(keyring, tmp_path / "keyring.before")
    anchor.write_bytes(older_anchor)
    if index:
        settings(data).erasure_index_path.write_bytes(older_index)
    return data


def put_back(keyring: Path, older: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{keyring}{suffix}").unlink(missing_ok=True)
    shutil.copy2(older, keyring)


def assert_refused(data: Path, command: list[str]) -> None:
    code, out, err = cli(data, *command)
    assert code != 0, out  # before: the command ran and read the erased subject's PII
    assert "Traceback" not in err, err
    assert NAME not in out
    assert "1 erasure(s)" in err and SUBJECT in err and "keyring" in err, err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_one_shot_command_refuses_an_older_keyring(tmp_path: Path, command: str) -> None:
    data = erased_with_older_keyring(tmp_path)
    out = tmp_path / "out"
    assert_refused(data, [*COMMANDS[command], *(["--out", str(out)] if command != "tail" else [])])
    assert not out.exists()


def test_refused_after_many_earlier_erasures(tmp_path: Path) -> None:
    data = erased_with_older_keyring(tmp_path, earlier=30)
    with pytest.raises(LedgerIntegrityError, match=SUBJECT):
        bootstrap(settings(data)).close()


def test_an_older_index_put_back_with_the_keyring(tmp_path: Path) -> None:
    """The whole keys/ state from before the erasure (keyring and index, both genuine): the
    index's cursor is older than the erasure, whose entry is read from the ledger after it."""
    data = erased_with_older_keyring(tmp_path, earlier=3, index=True)
    assert _index_body(settings(data).erasure_index_path)["entries"] == []
    assert_refused(data, COMMANDS["tail"])


def test_a_command_runs_when_no_erasure_was_undone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(settings(data))
    try:
        load(h)
        h.eraser.erase(OPERATOR, SUBJECT, "dsr-1", tenant_scope=None)
        index = h.settings.erasure_index_path
    finally:
        h.close()
    code, out, err = cli(data, *COMMANDS["tail"])
    assert code == 0, err
    assert NAME not in out
    assert index.exists()  # kept up to date by the erasure itself


@contextmanager
def index_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The index's warnings in ``caplog`` (a CLI run in this process replaced the root
    logger's handlers, pytest's among them: ``hub.logs.configure``)."""
    logger = logging.getLogger("hub.governance.erasure_index")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def _index_body(path: Path) -> Any:
    return json.loads(path.read_bytes().split(b"\n", 1)[1])


@pytest.mark.parametrize("tamper", ["drop_entry", "garbage", "made_up_mac"])
def test_an_edited_index_is_noticed(
    tmp_path: Path, tamper: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An index edited to forget the erasure (its MAC kept, or made up) is rebuilt from the
    ledger, with a warning, and the older keyring is still refused."""
    data = erased_with_older_keyring(tmp_path)
    index = settings(data).erasure_index_path
    raw = index.read_bytes()
    mac, body = raw.split(b"\n", 1)
    fields = json.loads(body)
    assert [e[2] for e in fields["entries"]] == [SUBJECT]
    if tamper == "drop_entry":
        fields["entries"] = []
        index.write_bytes(mac + b"\n" + json.dumps(fields).encode())
    elif tamper == "garbage":
        index.write_bytes(b"not an index")
    else:  # the erasure's entry gone, but a made-up MAC over the whole size
        fields["entries"] = []
        index.write_bytes(b"0" * 64 + b"\n" + json.dumps(fields).encode())
    with index_warnings(caplog), pytest.raises(LedgerIntegrityError, match=SUBJECT):
        bootstrap(settings(data)).close()
    assert any("erasure index" in r.getMessage() for r in caplog.records), caplog.text
    assert [e[2] for e in _index_body(index)["entries"]] == [SUBJECT]  # rebuilt


def test_an_index_of_another_ledger_is_noticed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A genuine index whose cursor the ledger does not reach, or whose root at the cursor is
    not the ledger's (a copy of the index from a longer ledger): rebuilt, with a warning."""
    data = erased_with_older_keyring(tmp_path)
    index = settings(data).erasure_index_path
    fields = _index_body(index)
    fields["size"] += 1_000_000
    # the MAC holds: written under the folder's key (as an attacker holding the key would)
    from governance.erasure_index import ErasureIndex
    from hub.bootstrap import erasure_index_key

    ErasureIndex.write(index, erasure_index_key(settings(data)), fields)
    with index_warnings(caplog), pytest.raises(LedgerIntegrityError, match=SUBJECT):
        bootstrap(settings(data)).close()
    assert any("erasure index" in r.getMessage() for r in caplog.records), caplog.text


def test_a_folder_without_the_index_builds_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upgrade path: a folder erased before the index existed gets it built from the ledger
    on its first open (with a warning), then read incrementally."""
    data = tmp_path / "data"
    h = bootstrap(settings(data))
    try:
        load(h)
        for i in range(3):
            h.eraser.erase(OPERATOR, f"ACC-GONE-{i}", f"dsr-0-{i}", tenant_scope=None)
        h.eraser.erase(OPERATOR, SUBJECT, "dsr-1", tenant_scope=None)
        index = h.settings.erasure_index_path
    finally:
        h.close()
    index.unlink()  # a folder from before the index
    with index_warnings(caplog):
        bootstrap(settings(data)).close()
    assert any("erasure index" in r.getMessage() for r in caplog.records), caplog.text
    built = _index_body(index)
    assert sorted(e[2] for e in built["entries"]) == sorted(
        [SUBJECT, *(f"ACC-GONE-{i}" for i in range(3))]
    )
    caplog.clear()
    with index_warnings(caplog):
        bootstrap(settings(data)).close()
    assert not any("erasure index" in r.getMessage() for r in caplog.records), caplog.text


def test_verify_catches_an_index_forged_under_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The limit of the cheap check: someone holding the MAC key (keys/log.mac) writes an index
    without the erasure at the current cursor, and an open finds nothing. ``hub ledger verify``
    reads the whole ledger: it reports the undone erasure, and rewrites the index, so the next
    open refuses again."""
    from governance.erasure_index import ErasureIndex
    from hub.bootstrap import erasure_index_key

    data = erased_with_older_keyring(tmp_path)
    index = settings(data).erasure_index_path
    fields = _index_body(index)
    fields["entries"] = []
    ErasureIndex.write(index, erasure_index_key(settings(data)), fields)
    bootstrap(settings(data)).close()  # the forged index is believed by an open
    with index_warnings(caplog):
        code, _out, err = cli(data, "ledger", "verify")
    assert code != 0 and SUBJECT in err and "1 erasure(s)" in err, err
    assert any("does not match the audit ledger" in r.getMessage() for r in caplog.records)
    assert [e[2] for e in _index_body(index)["entries"]] == [SUBJECT]
    with pytest.raises(LedgerIntegrityError, match=SUBJECT):
        bootstrap(settings(data)).close()


def test_the_index_is_rewritten_only_when_it_learns_something(tmp_path: Path) -> None:
    """Opens after other ledger entries read them (no erasure among them) and leave the file
    alone; an erasure made by another process (its index write lost) is read on the next open."""
    data = tmp_path / "data"
    h = bootstrap(settings(data))
    try:
        load(h)
        h.eraser.erase(OPERATOR, "ACC-GONE-0", "dsr-0", tenant_scope=None)
        index = h.settings.erasure_index_path
    finally:
        h.close()
    before = index.read_bytes()
    assert cli(data, *COMMANDS["tail"])[0] == 0  # its open, and its own ledger entries synced
    assert cli(data, *COMMANDS["tail"])[0] == 0
    assert index.read_bytes() == before
    h = bootstrap(settings(data))
    try:
        h.eraser.erase(OPERATOR, SUBJECT, "dsr-1", tenant_scope=None)
    finally:
        h.close()
    index.write_bytes(before)  # as if that erasure's index write were lost
    bootstrap(settings(data)).close()
    assert [e[2] for e in _index_body(index)["entries"]] == ["ACC-GONE-0", SUBJECT]
