"""``hub serve`` freezes what start-up built out of the collector's reach when
``HUB_GC_FREEZE`` is true (default false; docs/benchmarks/s25-visible25.md), and a bad value is
refused by name."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from hub.settings import load_settings


def _frozen_at_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    import uvicorn
    from click.testing import CliRunner

    from hub.cli import main

    seen: list[int] = []

    def run(*_a: Any, **_k: Any) -> None:  # instead of serving: how many objects are frozen
        seen.append(gc.get_freeze_count())

    monkeypatch.setattr(uvicorn, "run", run)
    gc.unfreeze()
    try:
        r = CliRunner(env=env).invoke(main, ["--data-dir", str(tmp_path / "d"), "serve"])
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
    assert r.exit_code == 0, r.output
    assert len(seen) == 1
    return seen[0]


def test_serve_leaves_the_collector_alone_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _frozen_at_serve(tmp_path, monkeypatch, {}) == 0


def test_serve_freezes_start_up_when_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what start-up built: modules, schemas, the views' and the log's state (tens of thousands)
    assert _frozen_at_serve(tmp_path, monkeypatch, {"HUB_GC_FREEZE": "true"}) > 10_000


def test_a_bad_value_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="gc_freeze"):
        load_settings(environ={"HUB_GC_FREEZE": "sometimes"})
