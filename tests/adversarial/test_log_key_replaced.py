"""``keys/log.mac`` deleted or replaced. The hub made a new key on start (``load_or_create``)
and went on appending under it: every batch stored before failed verification from then on,
and whoever wrote the replacement key could forge the batches that followed. The embedded
log now refuses, on open, a key that authenticates none of its MACs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from core.errors import ConfigError, LogTampered
from tests.service.test_ledger import cli, make_hub, publish


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data)
    try:
        publish(h, 30)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, _out, err = cli(data, "ledger", "verify")  # also makes the CLI's admin key
    assert code == 0, err
    return data


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_the_hub_does_not_start_on_another_log_key(data: Path, how: str) -> None:
    key = data / "keys" / "log.mac"
    if how == "deleted":
        key.unlink()
    else:
        key.write_bytes(os.urandom(32))
    with pytest.raises(ConfigError, match="does not authenticate the log"):
        make_hub(data).close()
    code, out, err = cli(data, "ledger", "verify")
    assert code != 0 and "does not authenticate the log" in out + err, out + err


def test_one_changed_topic_row_is_named_not_taken_for_a_wrong_key(data: Path) -> None:
    """Not a wrong key: the partitions' seals still match; the topic itself is refused on use
    (test_topic_row_mac), so the hub's start and verify name it."""
    with sqlite3.connect(data / "log.sqlite") as conn:
        conn.execute("UPDATE topics SET config = '{}' WHERE name = 'trades'")
    with pytest.raises(LogTampered, match=r"topic 'trades' .* fails its MAC"):
        make_hub(data).close()
    code, out, err = cli(data, "ledger", "verify", "--full")
    assert code == 1 and "fails its MAC" in out + err, out + err
    assert "does not authenticate the log" not in out + err


def test_a_new_data_folder_makes_its_key(tmp_path: Path) -> None:
    h = make_hub(tmp_path / "fresh")
    try:
        publish(h, 3)
    finally:
        h.close()
    make_hub(tmp_path / "fresh").close()
