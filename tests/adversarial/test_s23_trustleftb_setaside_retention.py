"""A view store MUST NOT be set aside (and folded again) when the log no longer holds what it
was folded from (s23).

Session 22 made an unreadable view store (a chDB metadata file emptied by a write on a full
disk, a truncated SQLite views file) move aside at start and fold again from the log. When
retention had cut records from the log and no cold tier kept them, that rebuild silently lost
their rows: the hub started and answered without them (the rows stayed only in the dated
folder). Now the store is not moved then: the start fails, loudly, naming the store, the broken
files, the topics cut and the two repairs (restore the folder from a backup, or accept the loss
with ``hub projection set-aside STORE --lose-rows``, which moves it aside and says so in the
folder's note).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from hub.cli import main
from tests.adversarial.test_s22_views_start import _answers, _hub

pytest.importorskip("chdb")


def _cut(data: Path, topic: str) -> None:
    """What retention does to the hot log without a cold tier: every record of ``topic`` cut."""
    h = _hub(data)
    try:
        for partition, end in h.log.end_offsets(topic).items():
            h.log.delete_records_before(topic, partition, end)
    finally:
        h.close()


def _set_aside(data: Path, store: str, *flags: str) -> tuple[int, str]:
    got = CliRunner().invoke(
        main, ["--data-dir", str(data), "projection", "set-aside", store, *flags]
    )
    return got.exit_code, got.output


def test_an_unreadable_chdb_store_is_not_rebuilt_without_the_cut_records(tmp_path: Path) -> None:
    data = tmp_path / "d"
    bars, _, _ = _answers(data, publish=True)
    assert len(bars) == 2
    _cut(data, "trades")
    folder = data / "views" / "chdb"
    victim = sorted(folder.glob("store/*/*/*__agg_*.sql"))[0]  # a table with rows
    victim.write_bytes(b"")  # a start on a full disk
    # before: set aside, the hub started and ohlcv_1h answered [] (both bars lost)
    with pytest.raises(ConfigError) as caught:
        _answers(data, publish=False)
    said = str(caught.value)
    assert "analytics" in said and "trades" in said and "retention" in said
    assert "hub projection set-aside analytics --lose-rows" in said
    assert victim.exists() and victim.stat().st_size == 0  # left where it was
    assert list((data / "views").glob("chdb.broken-*")) == []
    # without the flag the command refuses and moves nothing
    code, out = _set_aside(data, "analytics")
    assert code != 0 and "--lose-rows" in out
    assert list((data / "views").glob("chdb.broken-*")) == []
    # the operator accepts the loss: moved aside with a note saying so, the hub starts again
    code, out = _set_aside(data, "analytics", "--lose-rows")
    assert code == 0, out
    (aside,) = (data / "views").glob("chdb.broken-*")
    note = json.loads((aside / "set-aside.json").read_text())
    assert "set-aside" in note["reason"] and "trades" in note["reason"]
    again, _, _ = _answers(data, publish=False)
    assert again == []  # what the log still holds: nothing of the cut trades


def test_an_unreadable_sqlite_store_is_not_rebuilt_without_the_cut_records(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    _, pays, _ = _answers(data, publish=True)
    assert len(pays) == 3
    _cut(data, "payments")
    path = data / "views" / "transactional.sqlite"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ConfigError) as caught:
        _answers(data, publish=False)
    said = str(caught.value)
    assert "transactional" in said and "payments" in said and "truncated" in said
    assert path.stat().st_size == size // 2
    assert list((data / "views").glob("transactional.sqlite.broken-*")) == []


def test_a_store_is_still_set_aside_when_the_log_holds_everything(tmp_path: Path) -> None:
    """Nothing cut: the s22 behaviour stands (set aside, folded again, same answers)."""
    data = tmp_path / "d"
    bars, pays, _ = _answers(data, publish=True)
    victim = sorted((data / "views" / "chdb").glob("store/*/*/*__agg_*.sql"))[0]
    victim.write_bytes(b"")
    again, pays_again, count = _answers(data, publish=False)
    assert (again, pays_again, count) == (bars, pays, 1)


def test_an_unreadable_view_definition_is_made_again_even_after_retention(
    tmp_path: Path,
) -> None:
    """The definition most at risk (an aggregate's ``<t>__p`` view, made again when it differs)
    holds no rows: emptied after retention cut the trades, the store still opens, that file
    alone goes aside, the view is made again and every bar is kept (nothing folded again)."""
    data = tmp_path / "d"
    bars, _, _ = _answers(data, publish=True)
    _cut(data, "trades")
    (victim,) = sorted((data / "views" / "chdb").glob("store/*/*/ohlcv_1h*__p.sql"))
    victim.write_bytes(b"")
    again, _, count = _answers(data, publish=False)
    assert (again, count) == (bars, 1)  # before this session: refused, or both bars lost
    (aside,) = (data / "views").glob("chdb-definitions.broken-*")
    note = json.loads((aside / "set-aside.json").read_text())
    assert "every row kept" in note["then"]
    assert list((data / "views").glob("chdb.broken-*")) == []
