"""A command's start runs with the cyclic garbage collector paused and its objects frozen for
the command's length (issue 13, session 25, ``verify25``): the collector MUST be on and nothing
left frozen once the command ends (successful, failed, or refused before its hub was built), so a
process running many commands (tests, an embedding program) frees their reference cycles; a
freeze the caller made is not undone; the command's output is the same."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from click.testing import CliRunner

from hub.cli import main
from tests.cli_keys import admin_args


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_verify_leaves_the_collector_on_and_nothing_frozen(tmp_path: Path) -> None:
    args = admin_args(tmp_path / "hub")
    for _ in range(2):
        r = CliRunner().invoke(main, [*args, "ledger", "verify"])
        assert r.exit_code == 0, r.output
        assert r.output.startswith("OK ledger: ")
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    # a cycle made after the command is freed by a collection
    ref = weakref.ref(_Cycle())
    gc.collect()
    assert ref() is None


def test_a_failing_command_and_a_bad_setting_leave_it_on_too(tmp_path: Path) -> None:
    args = admin_args(tmp_path / "hub")
    r = CliRunner().invoke(main, [*args, "ledger", "entry", "999999"])
    assert r.exit_code == 1
    assert gc.isenabled() and gc.get_freeze_count() == 0
    r = CliRunner().invoke(
        main, [*args, "ledger", "verify"], env={"HUB_LEDGER_VERIFY_THREADS": "0"}
    )
    assert r.exit_code == 1
    assert "ledger_verify_threads" in r.output
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_callers_freeze_and_disabled_collector_are_kept(tmp_path: Path) -> None:
    args = admin_args(tmp_path / "hub")
    gc.disable()
    gc.freeze()
    try:
        r = CliRunner().invoke(main, [*args, "ledger", "verify"])
        assert r.exit_code == 0, r.output
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # theirs, not thawed by the command
    finally:
        gc.unfreeze()
        gc.enable()
