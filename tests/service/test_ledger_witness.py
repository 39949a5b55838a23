"""The window between a sync's commit and its witness copy (``ledger.witness``), on the SQLite
and the tile ledger store: a process killed inside it, a witness that fails, and an attacker who
writes the store and tries to use witness intents to launder a checkpoint into the witness."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit.note import checkpoint_hash, format_checkpoint
from core.errors import HubError
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from ledger.verify import VerifyReport, verify_ledger
from ledger.witness import check_intents, witness_key
from tests.service.test_ledger import publish

REPO = Path(__file__).resolve().parents[2]
STORE_FILES = {"sqlite": "ledger.sqlite", "tiles": "ledger-tiles.sqlite"}
EVERY = 8  # checkpoint_every_leaves: several checkpoints from a few dozen records


def open_hub(data: Path, store: str) -> Hub:
    settings = load_settings(
        environ={}, data_dir=data, ledger_store=store, checkpoint_every_leaves=EVERY
    )
    h = bootstrap(settings, install_domain=False)
    h.sync_on_close = False  # nothing changes on close: what the test left is what is stored
    return h


@pytest.fixture(scope="module", params=sorted(STORE_FILES))
def pristine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A stopped data folder whose checkpoints are all witnessed (built once per store)."""
    store = str(request.param)
    data = tmp_path_factory.mktemp(f"witness-{store}") / "data"
    h = bootstrap(
        load_settings(environ={}, data_dir=data, ledger_store=store, checkpoint_every_leaves=EVERY)
    )
    try:
        publish(h, 30)
        h.ledger.sync(force_checkpoint=True)
        assert h.ledger.store.witness_intents() == []
    finally:
        h.close()
    return data, store


@pytest.fixture
def fresh(tmp_path: Path, pristine: tuple[Path, str]) -> Callable[[], tuple[Path, str]]:
    def copy() -> tuple[Path, str]:
        target = tmp_path / "data"
        shutil.copytree(pristine[0], target)
        return target, pristine[1]

    return copy


def verify(data: Path, store: str) -> VerifyReport:
    """What `hub ledger verify` runs (the hub's open makes the copies intents await)."""
    h = open_hub(data, store)
    try:
        return verify_ledger(h.ledger)
    finally:
        h.close()


def witness_note(data: Path, size: int) -> Path:
    return data / "witness" / witness_key(size)


def stored(data: Path, store: str) -> sqlite3.Connection:
    return sqlite3.connect(data / STORE_FILES[store], isolation_level=None)


def checkpoints(data: Path, store: str) -> list[tuple[int, bytes]]:
    with stored(data, store) as c:
        return [(int(s), bytes(n)) for s, n in c.execute("SELECT size, note FROM checkpoints")]


def intents(data: Path, store: str) -> list[int]:
    with stored(data, store) as c:
        return [int(r[0]) for r in c.execute("SELECT size FROM witness_intents ORDER BY size")]


def problems(report: VerifyReport) -> str:
    return " | ".join(p.describe() for p in report.problems)


# -- the crash window ----------------------------------------------------------------------------
_KILLED_AFTER_COMMIT = """
import os, signal, sys
from pathlib import Path
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.test_ledger import publish

h = bootstrap(
    load_settings(environ={{}}, data_dir=Path(sys.argv[1]), ledger_store=sys.argv[2],
                  checkpoint_every_leaves={every}),
    install_domain=False,
)
def killed(key, data):  # the first witness copy after the commit: the process dies here
    os.kill(os.getpid(), signal.SIGKILL)
h.ledger.witness.put_if_absent = killed
publish(h, 20, start=1000)
h.ledger.sync(force_checkpoint=True)
print("not killed")
"""


def test_killed_between_commit_and_witness_copy_is_made_good_at_the_next_open(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    """kill -9 of a real process right after the sync's commit, before its witness copy.

    5-6 s measured at load 9, up to 50 s at load 30: most of it is the child process starting
    Python and importing the hub; a real process death is what this test is about."""
    data, store = fresh()
    before = {s for s, _ in checkpoints(data, store)}
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_COMMIT.format(every=EVERY), str(data), store],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -9, run.stdout + run.stderr
    new = sorted({s for s, _ in checkpoints(data, store)} - before)
    assert new, "the killed sync committed no checkpoint"
    assert intents(data, store) == new  # committed with their checkpoints ...
    assert not any(witness_note(data, s).exists() for s in new)  # ... and never copied
    # Before this fix the folder failed verification forever ("witness copy missing").
    report = verify(data, store)
    assert report.ok, problems(report)
    notes = dict(checkpoints(data, store))
    for size in new:  # the open made the copies, byte for byte, and cleared the intents
        assert witness_note(data, size).read_bytes() == notes[size]
    assert intents(data, store) == []
    assert report.witness_pending == 0


def test_a_failing_witness_leaves_pending_checkpoints_copied_by_the_next_sync(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    data, store = fresh()
    h = open_hub(data, store)
    try:
        assert h.ledger.witness is not None
        real = h.ledger.witness.put_if_absent

        def down(key: str, data: bytes) -> bool:
            raise HubError("The witness store is unreachable.", code="object_store")

        h.ledger.witness.put_if_absent = down  # type: ignore[method-assign]
        publish(h, 12, start=2000)
        made = h.ledger.sync(force_checkpoint=True).checkpoints
        assert made and h.ledger.store.witness_intents() == made
        report = verify_ledger(h.ledger)
        assert report.ok, problems(report)
        assert report.witness_pending == len(made)  # pending, not failed
        h.ledger.witness.put_if_absent = real  # type: ignore[method-assign]
        h.ledger.sync()  # the next sync makes the copies
        assert h.ledger.store.witness_intents() == []
        report = verify_ledger(h.ledger)
        assert report.ok and report.witness_pending == 0, problems(report)
    finally:
        h.close()
    assert all(witness_note(data, s).exists() for s in made)


# -- what an intent must not excuse -------------------------------------------------------------
def test_a_deleted_witness_copy_without_intent_still_fails(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    data, store = fresh()
    newest = checkpoints(data, store)[-1][0]
    witness_note(data, newest).unlink()  # exactly what a crash leaves, but without the intent
    report = verify(data, store)
    assert not report.ok
    assert f"checkpoint {newest}" in problems(report)
    assert "missing and no witness intent" in problems(report)
    assert not witness_note(data, newest).exists()  # and the open did not put it back


def forge_intent(data: Path, store: str, size: int) -> None:
    with stored(data, store) as c:
        c.execute("INSERT INTO witness_intents VALUES (?)", (size,))


def assert_not_laundered(data: Path, store: str, size: int, *words: str) -> None:
    report = verify(data, store)  # opens the hub: the copy would be made here if accepted
    assert not report.ok, f"a forged intent laundered checkpoint {size}"
    text = problems(report)
    for w in words:
        assert w in text, (w, text)
    assert not witness_note(data, size).exists()
    assert size in intents(data, store)  # kept, for the next verify to report again


def test_a_forged_intent_for_an_older_checkpoint_is_refused(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    """A copy deleted in the middle of the history stays missing: an intent only covers
    checkpoints above the newest witnessed one."""
    data, store = fresh()
    sizes = [s for s, _ in checkpoints(data, store)]
    mid = sizes[len(sizes) // 2]
    witness_note(data, mid).unlink()
    forge_intent(data, store, mid)
    assert_not_laundered(data, store, mid, f"checkpoint {mid}", "already holds the newer")


def test_a_rewritten_newest_checkpoint_with_a_forged_intent_is_refused(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    """The strongest attacker: holds the signing key and the store, deletes the newest
    witness copy, re-signs a checkpoint of that size over another tree (chained correctly to
    the witnessed one before it) and writes an intent for it. The pending tree must be
    consistent with the witnessed one, so it is refused, and never copied."""
    data, store = fresh()
    cps = checkpoints(data, store)
    (prev_size, prev_note), (newest, _) = cps[-2], cps[-1]
    h = open_hub(data, store)
    try:
        signer, origin = h.ledger.signer, h.ledger.config.origin
    finally:
        h.close()
    # dated now: a checkpoint dated far ahead of the clock is refused at start on its own
    # (tests/adversarial/test_s25_rtaudit_clock_ahead.py); the rule under test is the witness's
    at_us = time.time_ns() // 1000
    forged = signer.sign_note(
        format_checkpoint(
            origin, newest, bytes(range(32)), prev=checkpoint_hash(prev_note), time_micros=at_us
        )
    )
    with stored(data, store) as c:
        c.execute(
            "UPDATE checkpoints SET root = ?, note = ?, hash = ?, time_us = ? WHERE size = ?",
            (bytes(range(32)), forged, checkpoint_hash(forged), at_us, newest),
        )
    witness_note(data, newest).unlink()
    forge_intent(data, store, newest)
    assert_not_laundered(data, store, newest, f"checkpoint {newest}")
    h = open_hub(data, store)
    try:  # the rule that refused the copy (verify itself stops at the root it recomputes)
        assert h.ledger.witness is not None
        found = check_intents(h.ledger.store, h.ledger.witness, [signer.verifier()], origin, 8)
    finally:
        h.close()
    assert found.problem is not None and found.at == newest
    assert f"not an extension of the witnessed tree of {prev_size}" in found.problem


def test_an_intent_for_a_checkpoint_the_store_lacks_is_refused(
    fresh: Callable[[], tuple[Path, str]],
) -> None:
    data, store = fresh()
    ghost = checkpoints(data, store)[-1][0] + 1_000
    forge_intent(data, store, ghost)
    assert_not_laundered(data, store, ghost, f"checkpoint {ghost}", "store lacks")


def test_too_many_pending_checkpoints_fail(fresh: Callable[[], tuple[Path, str]]) -> None:
    """More pending checkpoints than one sync transaction signs: witnessing kept failing (or
    the intents are forged); verify says so instead of passing them."""
    data, store = fresh()
    cps = checkpoints(data, store)
    settings: dict[str, Any] = {"ledger_sync_batch": EVERY}  # at most 1 + 2 per transaction
    tail = [s for s, _ in cps[-4:]]
    for size in tail:
        witness_note(data, size).unlink()
        forge_intent(data, store, size)
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=data,
            ledger_store=store,
            checkpoint_every_leaves=EVERY,
            **settings,
        ),
        install_domain=False,
    )
    h.sync_on_close = False
    try:
        report = verify_ledger(h.ledger)
    finally:
        h.close()
    assert not report.ok
    assert "4 checkpoints await their witness copy" in problems(report)
    assert not any(witness_note(data, s).exists() for s in tail)
