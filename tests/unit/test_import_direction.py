"""Imports go one way (STYLE rule 1): ``domain/`` imports nothing else of ours; adapters import
the ports and a short list of pure data models, never the application that composes them; ports
import no adapter. Every import is checked, also the ones inside functions (``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("domain", "hub", "adapters", "governance", "projections", "audit", "ml")

# What an adapter may import besides the standard library and third-party packages: the ports,
# the error tree, pure helpers and data models the ports' signatures use.
ADAPTER_ALLOWED = (
    "adapters",
    "hub.ports",
    "hub.errors",
    "hub.partitioner",
    "audit",
    "projections.model",
    "projections.sqlguard",
    "governance.bundle",
    "governance.cache",
)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of our packages in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(n, m) for n, m in found if m.split(".")[0] in OURS]


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(folder: str, prefixes: tuple[str, ...]) -> list[str]:
    out = []
    for f in files(folder):
        for line, module in imports_of(f):
            if not allowed(module, prefixes):
                out.append(f"{f.relative_to(ROOT)}:{line} imports {module}")
    return out


def test_the_folders_exist() -> None:
    assert files("domain") and files("adapters") and files("hub/ports")


def test_domain_imports_nothing_else_of_ours() -> None:
    assert violations("domain", ("domain",)) == []


def test_adapters_import_only_ports_and_pure_models() -> None:
    assert violations("adapters", ADAPTER_ALLOWED) == []


def test_ports_import_no_adapter_and_no_application_code() -> None:
    pure = ("hub.ports", "hub.errors", "domain", "audit", "projections.model")
    assert violations("hub/ports", pure) == []


@pytest.mark.parametrize("module", ["governance/shredding.py", "governance/cache.py"])
def test_pure_governance_modules_depend_only_on_ports(module: str) -> None:
    path = ROOT / module
    bad = [m for _, m in imports_of(path) if not allowed(m, ("hub.ports", "hub.errors"))]
    assert bad == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from hub.bootstrap import bootstrap\n", encoding="utf-8")
    assert imports_of(f) == [(2, "hub.bootstrap")]
    assert not allowed("hub.bootstrap", ADAPTER_ALLOWED)
