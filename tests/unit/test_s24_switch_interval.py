"""``hub serve`` sets the interpreter's thread switch interval from ``HUB_SWITCH_INTERVAL_MS``
(default 1 ms; docs/benchmarks/s24-visible24.md), and a bad value is refused by name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from hub.settings import load_settings


def _serve_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> float:
    import uvicorn
    from click.testing import CliRunner

    from hub.cli import main

    seen: list[float] = []

    def run(*_a: Any, **_k: Any) -> None:  # instead of serving: what the process was set to
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(uvicorn, "run", run)
    before = sys.getswitchinterval()
    try:
        r = CliRunner(env=env).invoke(main, ["--data-dir", str(tmp_path / "d"), "serve"])
    finally:
        sys.setswitchinterval(before)
    assert r.exit_code == 0, r.output
    assert len(seen) == 1
    return seen[0]


def test_serve_sets_one_ms_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _serve_interval(tmp_path, monkeypatch, {}) == pytest.approx(0.001)


def test_serve_takes_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _serve_interval(tmp_path, monkeypatch, {"HUB_SWITCH_INTERVAL_MS": "5"})
    assert got == pytest.approx(0.005)


@pytest.mark.parametrize("bad", ["0", "-1", "1000", "fast"])
def test_a_bad_interval_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ConfigError, match="switch_interval_ms"):
        load_settings(environ={"HUB_SWITCH_INTERVAL_MS": bad})
