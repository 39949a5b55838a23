"""Imports go one way (STYLE rule 1, DESIGN "Layout"): a table of layers, lowest first, and no
exception per module. Every import is checked with ``ast``: also the ones inside functions and
under ``TYPE_CHECKING``. And no import cycle, between modules or between packages."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the packages of ours it may import (besides itself, the standard library and
# third-party libraries). Services import only services listed before them.
LAYERS: dict[str, tuple[str, ...]] = {
    # 1. the pure business model
    "domain": (),
    # 2. the ledger's pure math: standard library + cryptography, runnable from its folder alone
    "audit": (),
    #    what every service shares: ports, errors, Avro, PII codec, policy bundle, folds
    "core": ("domain", "audit"),
    # 3. services, in this order
    "registry": ("domain", "audit", "core"),
    "ingest": ("domain", "audit", "core", "registry"),
    "ledger": ("domain", "audit", "core", "registry", "ingest"),
    "projections": ("domain", "audit", "core", "registry", "ingest", "ledger"),
    "governance": ("domain", "audit", "core", "registry", "ingest", "ledger", "projections"),
    "ml": (
        "domain",
        "audit",
        "core",
        "registry",
        "ingest",
        "ledger",
        "projections",
        "governance",
    ),
    # storage tiers and recovery (backups, erasure journal, cold tier, lake): ports only
    "storage": ("domain", "audit", "core"),
    # one module (or small package) per technology, implementing a port of core
    "adapters": ("domain", "audit", "core"),
    # 4. the application: settings, the composition root, API, CLI; it may use everything
    "hub": (
        "domain",
        "audit",
        "core",
        "registry",
        "ingest",
        "ledger",
        "projections",
        "governance",
        "ml",
        "storage",
        "adapters",
    ),
}
OURS = tuple(LAYERS)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, ours: tuple[str, ...] = OURS) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of the packages ``ours`` in ``path``;
    ``from a import b`` names ``a.b`` when ``b`` is a module of ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if (ROOT / Path(*sub.split("."))).with_suffix(".py").exists():
                    found.append((node.lineno, sub))
    return [(n, m) for n, m in found if m.split(".")[0] in ours]


def files(folder: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / folder).rglob("*.py"))


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for package, allowed in LAYERS.items():
        for f in files(package, root):
            for line, module in imports_of(f):
                top = module.split(".")[0]
                if top != package and top not in allowed:
                    out.append(f"{f.relative_to(root)}:{line} ({package}) imports {module}")
    return out


def graph(ours: tuple[str, ...] = OURS) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (resolved to the longest existing module)."""
    modules = {module_name(f) for package in ours for f in files(package)}
    edges: dict[str, set[str]] = defaultdict(set)
    for package in ours:
        for f in files(package):
            me = module_name(f)
            for _, target in imports_of(f, ours):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != me:
                    edges[me].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_of_ours_is_in_the_table() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "benchmarks"} == set(OURS)


def test_imports_follow_the_layer_table() -> None:
    assert violations() == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(graph()) == []


def test_no_import_cycle_among_the_benchmarks() -> None:
    """The benchmarks import the hub's packages and each other (``benchmarks.e2e`` runs
    ``benchmarks.e2e_kafka``, which shares ``benchmarks.e2e_common`` with it): no cycle either."""
    assert cycles(graph((*OURS, "benchmarks"))) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph().items():
        for b in targets:
            if a.split(".")[0] != b.split(".")[0]:
                packages[a.split(".")[0]].add(b.split(".")[0])
    assert cycles(packages) == []


def test_audit_needs_only_the_standard_library_and_cryptography() -> None:
    """An auditor runs ``hub-verify`` from the ``audit/`` folder alone."""
    import sys

    allowed = set(sys.stdlib_module_names) | {"cryptography", "audit", "__future__"}
    bad = []
    for f in files("audit"):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [f"{f.name}: {n}" for n in names if n.split(".")[0] not in allowed]
    assert bad == []


@pytest.mark.parametrize(
    ("package", "source", "upward"),
    [
        ("core", "def f():\n    from ingest.publish import Publisher\n", "ingest.publish"),
        ("adapters", "from hub.bootstrap import bootstrap\n", "hub.bootstrap"),
        (
            "registry",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ledger\n",
            "ledger",
        ),
        ("domain", "from core.errors import HubError\n", "core.errors"),
    ],
)
def test_an_upward_import_fails_the_check(
    tmp_path: Path, package: str, source: str, upward: str
) -> None:
    """The checker sees an upward import anywhere: at the top, inside a function, under
    ``TYPE_CHECKING``."""
    (tmp_path / package).mkdir()
    (tmp_path / package / "added.py").write_text(source, encoding="utf-8")
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].endswith(f"imports {upward}"), found


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
