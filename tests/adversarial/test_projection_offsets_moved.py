"""A projection's checkpoint moved forward. The positions (``_projection_offsets``) are plain
rows of the view store: whoever can write it (the SQLite file, a database role) moves an offset
forward and the runner skips the records in between for good; the view silently lacks them and
nothing compared a view with the log. ``hub projection verify`` replays the log into a temporary
copy up to exactly the positions the checkpoint claims and compares the digests (a count or
digest stored beside the positions would be moved with them)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.test_append_wakeup import payment
from tests.service.test_ledger import cli

VIEWS = Path("views") / "transactional.sqlite"


def _hub(data: Path) -> Hub:
    return bootstrap(load_settings(environ={}, data_dir=data, projection_autostart=False))


def _publish(h: Hub, first: int, n: int) -> None:
    events = [payment(f"P{i}", f"{i}.00") for i in range(first, first + n)]
    h.publisher.publish("payments", events, "test", "acme")


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    h = _hub(data)
    try:
        _publish(h, 0, 12)
        h.projections.run(["payments"])
    finally:
        h.close()
    code, out, err = cli(data, "projection", "verify", "payments")
    assert code == 0, out + err
    assert json.loads(out)["ok"] is True
    yield data


def _verify(data: Path) -> tuple[int, str]:
    code, out, err = cli(data, "projection", "verify", "payments")
    return code, out + err


def test_an_offset_moved_forward_skips_records_and_verify_names_it(data: Path) -> None:
    h = _hub(data)
    try:
        _publish(h, 12, 6)  # not yet folded
    finally:
        h.close()
    with sqlite3.connect(data / VIEWS) as conn:  # the attacker: skip what came after
        conn.execute(
            "UPDATE _projection_offsets SET next_offset = next_offset + 6 "
            "WHERE projection_id = 'payments' AND topic = 'payments' AND part = ("
            "SELECT part FROM _projection_offsets WHERE projection_id = 'payments' "
            "AND topic = 'payments' ORDER BY next_offset DESC LIMIT 1)"
        )
    h = _hub(data)
    try:
        h.projections.run(["payments"])  # folds nothing: the six payments are skipped
        result = h.projections.verify("payments")
    finally:
        h.close()
    assert result["ok"] is False
    assert any("differs from the log replayed" in p for p in result["problems"]), result
    code, out = _verify(data)
    assert code == 1 and "differs from the log replayed" in out, out


def test_an_offset_moved_past_the_log_end_is_named(data: Path) -> None:
    with sqlite3.connect(data / VIEWS) as conn:
        conn.execute(
            "UPDATE _projection_offsets SET next_offset = next_offset + 1000 "
            "WHERE projection_id = 'payments'"
        )
    code, out = _verify(data)
    assert code == 1 and "past the log's end" in out, out


def test_an_edited_row_is_named(data: Path) -> None:
    with sqlite3.connect(data / VIEWS) as conn:
        (n,) = conn.execute("SELECT count(*) FROM payment_status").fetchone()
        assert n == 12
        conn.execute(
            "DELETE FROM payment_status WHERE rowid = (SELECT min(rowid) FROM payment_status)"
        )
    code, out = _verify(data)
    assert code == 1 and "differs from the log replayed" in out, out


def test_a_view_still_catching_up_verifies(data: Path) -> None:
    """Records past the checkpoint are not a difference: the replay stops where it claims."""
    h = _hub(data)
    try:
        _publish(h, 12, 4)
    finally:
        h.close()
    code, out = _verify(data)
    assert code == 0, out
