"""An edited topic row of ``log.sqlite`` (partition count, config: retention, compaction, key
field, subject-name strategy, owner) was used unchecked: the hub opened, the default verify
passed and only ``--full`` named it, while the running hub read and wrote the topic under the
forged config. Whoever can write the log file but not ``keys/`` could, for example, put an
audit topic under compaction or a short retention. The log now refuses a topic whose row fails
its MAC when it is looked up or listed; the hub lists its topics at start, so it refuses to
start, naming the topic (the log file itself still opens: a changed row is not a wrong key)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from core.errors import LogTampered
from tests.service.test_ledger import cli, make_hub, publish


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    h = make_hub(data)
    try:
        publish(h, 10)
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 0, out + err
    return data


def _edit(data: Path, name: str, change: dict[str, str]) -> None:
    with sqlite3.connect(data / "log.sqlite") as conn:
        (text,) = conn.execute("SELECT config FROM topics WHERE name = ?", (name,)).fetchone()
        config = {**json.loads(text), **change}
        conn.execute("UPDATE topics SET config = ? WHERE name = ?", (json.dumps(config), name))


@pytest.mark.parametrize(
    "change", [{"retention.ms": "1"}, {"cleanup.policy": "compact"}, None], ids=str
)
def test_an_edited_topic_config_is_refused(data: Path, change: dict[str, str] | None) -> None:
    if change is None:  # the config emptied
        with sqlite3.connect(data / "log.sqlite") as conn:
            conn.execute("UPDATE topics SET config = '{}' WHERE name = 'trades'")
    else:
        _edit(data, "trades", change)
    with pytest.raises(LogTampered, match=r"topic 'trades' .* fails its MAC"):
        make_hub(data).close()
    code, out, err = cli(data, "ledger", "verify")  # the default verify
    assert code == 1 and "fails its MAC" in out + err, out + err


def test_a_changed_partition_count_is_refused(data: Path) -> None:
    with sqlite3.connect(data / "log.sqlite") as conn:
        conn.execute("UPDATE topics SET partitions = 2 WHERE name = 'trades'")
        conn.execute(
            "DELETE FROM partitions WHERE part = 2 AND topic_id = "
            "(SELECT id FROM topics WHERE name = 'trades')"
        )
    with pytest.raises(LogTampered, match="partition count \\(2\\)"):
        make_hub(data).close()


def test_an_edited_internal_topic_refuses_the_start(data: Path) -> None:
    with sqlite3.connect(data / "log.sqlite") as conn:
        (name,) = conn.execute(
            "SELECT name FROM topics WHERE name LIKE '\\_%' ESCAPE '\\' ORDER BY name LIMIT 1"
        ).fetchone()
    _edit(data, name, {"retention.ms": "1"})
    with pytest.raises(LogTampered, match="fails its MAC"):
        make_hub(data).close()


def test_the_log_itself_still_opens_and_serves_other_topics(data: Path) -> None:
    """A changed row is not a wrong key: the log opens, the other topics are served."""
    from hub.bootstrap import build_event_log
    from hub.settings import load_settings

    _edit(data, "trades", {"retention.ms": "1"})
    log = build_event_log(load_settings(environ={}, data_dir=data, ledger_store="sqlite"))
    try:
        with pytest.raises(LogTampered, match="'trades'"):
            log.topic("trades")
        assert log.topic("_schemas").name == "_schemas"
    finally:
        log.close()


@pytest.mark.parametrize("also_partitions", [False, True])
def test_a_deleted_topic_row_refuses_the_open(data: Path, also_partitions: bool) -> None:
    """Without its row the hub made the topic anew, empty, and appended over offsets the
    ledger holds (an audit or state topic would read as never written)."""
    with sqlite3.connect(data / "log.sqlite") as conn:
        (tid,) = conn.execute("SELECT id FROM topics WHERE name = 'trades'").fetchone()
        conn.execute("DELETE FROM topics WHERE id = ?", (tid,))
        if also_partitions:
            conn.execute("DELETE FROM partitions WHERE topic_id = ?", (tid,))
    with pytest.raises(LogTampered, match="whose topic row is gone"):
        make_hub(data).close()
    code, out, err = cli(data, "ledger", "verify")
    assert code == 1 and "whose topic row is gone" in out + err, out + err
