"""Configuration changes approved at the same time by two processes on one data folder.

Two changes of one setting are proposed against the same value. Process B approves the first
after process A checked the second against the value in force and before A appended: A's
``ConfigChangeApplied`` and its effect (on ``_schemas`` and ``hub.config``) silently replaced the
first, whose diff its approver never saw. A MUST answer 409 (``StaleChange``) and write nothing of
its effect: the apply is guarded by the end of the topics the value is read from, checked under
the log's write lock (``governance.configchanges``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from core.ports.eventlog import Transaction
from governance.configchanges import CONFIG_TOPIC, StaleChange
from governance.configstore import CONFIG_CHANGES_TOPIC
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.test_config_changes import ALICE, CAROL, LEVEL, enable_two_person, events


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[tuple[Hub, Hub]]:
    """Two hubs on one data folder, as two processes would open it."""
    settings = load_settings(environ={}, data_dir=tmp_path / "data")
    a = bootstrap(settings)
    b = bootstrap(settings)
    try:
        yield a, b
    finally:
        b.close()
        a.close()


def _kinds(hub: Hub, change_id: str) -> list[str]:
    return [
        r["headers"]["ce_type"]
        for r in events(hub, CONFIG_CHANGES_TOPIC)
        if r["value"]["change_id"] == change_id
    ]


def test_the_second_of_two_approvals_racing_in_two_processes_is_refused_and_writes_nothing(
    hubs: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = hubs
    enable_two_person(a, "registry.config:*")
    first = a.config_changes.propose(ALICE, LEVEL, "FULL", "one")
    second = a.config_changes.propose(ALICE, LEVEL, "NONE", "two")
    assert first.old_value is None and second.old_value is None  # both against the default

    log = a.config_changes._log
    real = log.transaction

    def b_approves_first(transactional_id: str) -> AbstractContextManager[Transaction]:
        """A checked ``second`` against the value in force; B appends before A does."""
        monkeypatch.setattr(log, "transaction", real)  # once
        assert b.config_changes.approve(CAROL, first.change_id, "b").status == "applied"
        return real(transactional_id)

    monkeypatch.setattr(log, "transaction", b_approves_first)
    with pytest.raises(StaleChange, match="propose it again"):
        a.config_changes.approve(CAROL, second.change_id, "a")

    for hub in (a, b):
        hub.config_changes.store.refresh()
        hub.registry.refresh()
        assert hub.registry.compatibility("trades-value") == "FULL"
        assert hub.config_changes.store.change(second.change_id).status == "pending_approval"
    assert _kinds(a, second.change_id) == ["hub.ConfigChangeProposed"]
    levels = [
        r["value"]["new_value"]
        for r in events(a, CONFIG_TOPIC)
        if r["value"].get("key") == "registry.compatibility.trades-value"
    ]
    assert levels == ['"FULL"']  # nothing of the loser's effect


def test_a_change_applied_at_once_records_the_value_another_process_just_set(
    hubs: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct change read the value in force, then B set another before A appended: A's
    change and its ``hub.config`` record named a value that was no longer the one replaced.
    It is checked again, and records B's value as the one it replaced."""
    a, b = hubs
    log = a.config_changes._log
    real = log.transaction

    def b_sets_level(transactional_id: str) -> AbstractContextManager[Transaction]:
        monkeypatch.setattr(log, "transaction", real)  # once
        assert b.config_changes.set_direct(CAROL, LEVEL, "FULL", "b") is not None
        return real(transactional_id)

    monkeypatch.setattr(log, "transaction", b_sets_level)
    change = a.config_changes.set_direct(ALICE, LEVEL, "NONE", "a")
    assert change is not None and change.old_value == '"FULL"'
    assert '-"FULL"' in change.diff
    olds = [
        r["value"]["old_value"]
        for r in events(a, CONFIG_TOPIC)
        if r["value"].get("key") == "registry.compatibility.trades-value"
    ]
    assert olds == [None, '"FULL"']
