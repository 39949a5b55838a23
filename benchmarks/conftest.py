"""Shared benchmark reporting: every figure is printed beside a baseline measured in the same run.

A benchmark calls ``report.add(group, name, rate, unit, baseline=...)``; at the end of the session a
table prints each figure and its ratio to the named baseline of the same group. Machines here are
noisy, so ratios, not absolute numbers, are what notes quote.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class Row:
    group: str
    name: str
    value: float
    unit: str
    baseline: str | None
    higher_is_better: bool


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        group: str,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        higher_is_better: bool = True,
    ) -> None:
        self.rows.append(Row(group, name, value, unit, baseline, higher_is_better))

    def render(self) -> str:
        lines = [
            "",
            "=" * 100,
            f"{'group':<22}{'measure':<44}{'value':>16} {'unit':<10}{'vs baseline':>8}",
            "-" * 100,
        ]
        by_key = {(r.group, r.name): r for r in self.rows}
        for r in self.rows:
            ratio = ""
            base = by_key.get((r.group, r.baseline)) if r.baseline else None
            if base is not None and base.value:
                q = r.value / base.value if r.higher_is_better else base.value / r.value
                ratio = f"{q:6.2f}x of '{r.baseline}'"
            lines.append(f"{r.group:<22}{r.name:<44}{r.value:>16,.2f} {r.unit:<10}{ratio}")
        lines.append("=" * 100)
        return "\n".join(lines)


_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    yield _REPORT


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT.rows:
        terminalreporter.write_line(_REPORT.render())
