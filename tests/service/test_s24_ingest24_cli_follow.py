"""``hub publish FILE`` runs the ledger's follower while the file is published (session 24,
``ingest24``): the leaves of the batches already committed are written while later batches are
read, on the second core, instead of all of them in the close-time sync after the file. What is
recorded does not change: every record gets its leaf, a signed checkpoint covers them before the
command returns, and ``hub ledger verify`` passes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.commands.ingest import _ledger_followed
from hub.settings import load_settings
from ingest.files import publish_file
from tests.cli_keys import admin_args
from tests.service.accounts import open_accounts

T = {
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12345678",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00.123456Z",
}


def _file(path: Path, n: int, prefix: str) -> Path:
    path.write_text(
        "".join(json.dumps({**T, "trade_id": f"{prefix}-{i}"}) + "\n" for i in range(n))
    )
    return path


def test_leaves_are_written_while_the_file_is_published(tmp_path: Path) -> None:
    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "d", projection_autostart=False))
    try:
        open_accounts(h, ["ACC-1"])
        h.ledger.sync(force_checkpoint=True)
        base = h.ledger.store.tree_size()
        f = _file(tmp_path / "t.jsonl", 600, "F")
        covered_during: list[int] = []
        done = [0]

        def on_batch(n: int, result: object) -> None:
            done[0] += n
            if done[0] == 200:  # the first batch is committed: its leaves come without a sync
                deadline = time.monotonic() + 30
                while h.ledger.store.tree_size() < base + 200 and time.monotonic() < deadline:
                    time.sleep(0.01)
                covered_during.append(h.ledger.store.tree_size() - base)

        with _ledger_followed(h):
            out = publish_file(h.ingest, f, "trades", batch_size=200, on_batch=on_batch)
        assert out.result.accepted == 600
        assert covered_during and covered_during[0] >= 200, covered_during
        assert not [t for t in threading.enumerate() if t.name == "ledger-sync"]
        h.ledger.sync(force_checkpoint=True)
        size = h.ledger.store.tree_size()
        assert size >= base + 600
        assert h.ledger.checkpoints(min_size=size)  # a signed checkpoint covers every leaf
    finally:
        h.close()


def test_cli_publish_records_every_leaf_and_verifies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    open_accounts(h, ["ACC-1"])
    h.close()
    f = _file(tmp_path / "t.jsonl", 450, "C")
    run = CliRunner().invoke
    r = run(main, [*admin_args(data), "publish", str(f), "-t", "trades", "--batch-size", "100"])
    assert r.exit_code == 0, r.output
    assert "accepted=450 rejected=0 duplicates=0" in r.stdout
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        stored = [
            (p, r.offset)
            for p in range(h.log.topic("trades").partitions)
            for r in h.log.scan("trades", p)
        ]
        assert len(stored) == 450
        missing = [(p, o) for p, o in stored if h.ledger.index_of("trades", p, o) is None]
        assert not missing, missing[:5]
        size = h.ledger.store.tree_size()
        assert h.ledger.checkpoints(min_size=size)
    finally:
        h.close()
    r = run(main, [*admin_args(data), "ledger", "verify"])
    assert r.exit_code == 0, r.output


def test_cli_watch_records_every_leaf(tmp_path: Path) -> None:
    """``hub watch`` follows the ledger while each pass publishes: every record of the dropped
    files has its leaf and a checkpoint covers them when the pass reports."""
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    open_accounts(h, ["ACC-1"])
    h.close()
    folder = tmp_path / "in"
    folder.mkdir()
    _file(folder / "a.jsonl", 250, "WA")
    _file(folder / "b.jsonl", 120, "WB")
    r = CliRunner().invoke(
        main,
        [*admin_args(data), "watch", str(folder), "-t", "trades", "--once", "--settle", "0"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert (folder / "done" / "a.jsonl").exists() and (folder / "done" / "b.jsonl").exists()
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        stored = [
            (p, r.offset)
            for p in range(h.log.topic("trades").partitions)
            for r in h.log.scan("trades", p)
        ]
        assert len(stored) == 370
        assert all(h.ledger.index_of("trades", p, o) is not None for p, o in stored)
        assert h.ledger.checkpoints(min_size=h.ledger.store.tree_size())
    finally:
        h.close()
