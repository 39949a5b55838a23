"""The watched folder takes a file once its writer is done with it (s20).

Attack (no malice needed: an upstream job copying a large file): the watcher published
whatever bytes a file held when it passed (a half-written last line quarantined as malformed),
then moved the file to ``done/``; the writer's later bytes went on into ``done/<name>`` (same
inode) and were never ingested, while the watcher had reported the file done. Now a file
modified less than ``settle_s`` ago is left for a later pass (``hub watch --settle``,
2 s by default), and a file that changed while it was read is moved to ``failed/`` naming it,
not to ``done/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingest.files as files
from hub.bootstrap import Hub
from ingest.files import watch_once
from tests.adversarial._topics_hub import hub_with_topics

LINE = b'{"s": "a"}\n'
SCHEMA = {"type": "record", "name": "W", "fields": [{"name": "s", "type": "string"}]}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with hub_with_topics(tmp_path / "d", {"w": SCHEMA}) as h:
        yield h


def _count(h: Hub) -> int:
    return len(h.reader.read("w", 0, 0, 1000))


def test_a_file_still_being_written_is_left_for_a_later_pass(hub: Hub, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    f = drop / "big.jsonl"
    f.write_bytes(LINE * 3 + b'{"s": "hal')  # the writer is mid-line
    out = watch_once(hub.ingest, drop, "w", settle_s=60)
    assert out == [] or "still being written" in out[0][1], out
    assert f.exists() and _count(hub) == 0
    with f.open("ab") as w:
        w.write(b'f"}\n' + LINE)
    past = time.time() - 120
    os.utime(f, (past, past))
    out = watch_once(hub.ingest, drop, "w", settle_s=60)
    assert out[0][1].startswith("accepted=5 rejected=0"), out
    assert (drop / "done" / "big.jsonl").exists() and _count(hub) == 5


def test_a_file_that_grows_while_it_is_read_goes_to_failed(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    f = drop / "grow.jsonl"
    f.write_bytes(LINE * 2)
    real = files.publish_file

    def racing(*args: Any, **kwargs: Any) -> Any:
        res = real(*args, **kwargs)
        with f.open("ab") as w:  # the writer appends after the watcher's read
            w.write(LINE)
        return res

    monkeypatch.setattr(files, "publish_file", racing)
    out = watch_once(hub.ingest, drop, "w")
    assert out[0][1].startswith("failed:") and "changed while" in out[0][1], out
    assert (drop / "failed" / "grow.jsonl").exists() and not (drop / "done").joinpath(
        "grow.jsonl"
    ).exists()
