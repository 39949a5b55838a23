"""The composition root is the only builder (issue 12): nothing outside ``hub/settings.py``
reads the environment, and no route or command constructs a service or an adapter: each uses
the one that ``hub.bootstrap.bootstrap`` built (a field of ``Hub``)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from core.errors import ConfigError
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "domain",
    "core",
    "audit",
    "registry",
    "ingest",
    "ledger",
    "projections",
    "governance",
    "ml",
    "hub",
    "adapters",
)
SETTINGS = ROOT / "hub" / "settings.py"
# Code that runs in, or starts, another process, where the hub's settings are not loaded:
# the launcher hands its environment (plus the job's variables) to the Flink process, and the
# Flink job script reads the registry credential the launcher passed that way.
OTHER_PROCESSES = {
    ROOT / "projections" / "flink" / "launch.py": "passes its environment to the Flink process",
    ROOT / "projections" / "flink" / "job.py": "runs inside the Flink Python worker",
    ROOT / "projections" / "spark_launch.py": "passes its environment to the Spark process",
    ROOT / "core" / "childenv.py": "passes its environment, secrets removed, to hub helpers",
}


def sources(*folders: str) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        base = ROOT / folder
        if base.is_file():
            out.append(base)
        elif base.is_dir():
            out += sorted(base.rglob("*.py"))
    return out


def environment_reads(path: Path, root: Path = ROOT) -> list[str]:
    """``os.environ`` / ``os.getenv`` / ``from os import environ, getenv`` in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb", "putenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno} os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ("environ", "getenv", "environb"):
                    found.append(f"{path.relative_to(root)}:{node.lineno} from os import ...")
    return found


def test_nothing_outside_settings_reads_the_environment() -> None:
    offenders = [
        hit
        for path in sources(*PACKAGES)
        if path != SETTINGS and path not in OTHER_PROCESSES
        for hit in environment_reads(path)
    ]
    assert offenders == []


def test_the_environment_check_sees_a_read(tmp_path: Path) -> None:
    """The check above fails on the forms it must catch (shown on a planted module)."""
    planted = tmp_path / "planted.py"
    planted.write_text("import os\nfrom os import getenv\nLEVEL = os.environ.get('X')\n")
    assert environment_reads(planted, tmp_path) == [
        "planted.py:2 from os import ...",
        "planted.py:3 os.environ",
    ]


def test_log_level_is_a_setting() -> None:
    assert load_settings(environ={}).log_level is None  # each command's own default
    assert load_settings(environ={"HUB_LOG_LEVEL": "DEBUG"}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="log_level"):
        load_settings(environ={"HUB_LOG_LEVEL": "LOUD"})


def built_by_bootstrap() -> set[str]:
    """Class names of every service and port type a ``Hub`` holds, and every adapter class."""
    from hub.bootstrap import Hub

    names: set[str] = set()
    for hint in typing.get_type_hints(Hub).values():
        for t in (hint, *typing.get_args(hint)):
            if isinstance(t, type) and t.__module__.split(".")[0] in (*PACKAGES[3:], "core"):
                names.add(t.__name__)
    for path in sources("adapters"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names |= {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    names -= {"Settings", "Metrics"}  # value objects, not services
    return names


def constructor_calls(path: Path, names: set[str], root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in names:
            found.append(f"{path.relative_to(root)}:{node.lineno} {name}(...)")
    return found


def test_no_route_or_command_constructs_a_service_or_an_adapter() -> None:
    names = built_by_bootstrap()
    # The services this issue moved into the composition root are among those checked.
    assert {
        "Governance",
        "ConfigChanges",
        "PolicyChanges",
        "PolicyFollower",
        "RetentionJob",
        "LineageLog",
        "Catalog",
        "Eraser",
        "CaseBook",
        "ProjectionService",
        "SqliteEventLog",
        "RegoPolicyEngine",
    } <= names
    offenders = [
        hit
        for path in sources(
            "hub/api", "hub/commands", "hub/cli.py", "hub/console", "hub/recovery.py"
        )
        for hit in constructor_calls(path, names)
    ]
    assert offenders == []


# The builders besides bootstrap(): the ML service is built on first use (keeps scikit-learn
# out of CLI start-up), the ML approval flow builds its own policy and config stores
# (ml/ belongs to the ML issue, #14), and the tracer is one per process (OpenTelemetry's
# provider is global), with one trace-link store per data folder; the Kafka seal migration
# works on the Kafka log itself.
OTHER_BUILDERS = {
    ROOT / "hub" / "bootstrap.py": "the composition root",
    ROOT / "hub" / "ml_setup.py": "builds the ML service on first use",
    ROOT / "hub" / "derived_secrets.py": "the composition root's secrets derived from the local "
    "MAC key file, apart so that the ML setup uses them without importing the root",
    ROOT / "hub" / "flink_features.py": "the root of Flink's Python workers for the ML feature "
    "views: an in-memory feature store per scored event",
    ROOT / "ml" / "models.py": "ModelChanges builds its PolicyStore and ConfigChangeStore (#14)",
    ROOT / "hub" / "tracing.py": "installs the process-wide tracer and its trace-link store",
    ROOT / "hub" / "migrate_kafka.py": "the one-off upgrade of a Kafka deployment to sealed "
    "records: it exists only for the Kafka log, reads its partitions and writes their seals",
}


def test_no_service_builds_what_the_composition_root_builds() -> None:
    """Services get their ports and readers handed in (e.g. ``ApiKeys`` its unredacted reader,
    ``hub.recovery`` a ledger file's store through ``open_ledger_file``)."""
    names = built_by_bootstrap()
    assert {"EventReader", "SqliteLedgerStore"} <= names
    offenders = [
        hit
        for path in sources(*PACKAGES[3:-1], "storage")
        if path not in OTHER_BUILDERS
        for hit in constructor_calls(path, names)
    ]
    assert offenders == []


def test_only_the_composition_root_imports_adapters() -> None:
    offenders = []
    for path in sources(*PACKAGES[:-1], "storage"):
        if path in OTHER_BUILDERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {m}"
                for m in modules
                if m.split(".")[0] == "adapters"
            ]
    assert offenders == []


def test_the_console_and_commands_use_no_private_router_helper() -> None:
    """The console and the CLI share code with the API through public modules (e.g.
    ``hub.api.exports``), never a router's private helpers."""
    offenders = []
    for path in sources("hub/console", "hub/commands", "hub/api/routers"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "hub.api.routers"
            ):
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert offenders == []


def test_the_constructor_check_sees_a_call(tmp_path: Path) -> None:
    planted = tmp_path / "route.py"
    planted.write_text("def f(h):\n    return retention.Governance(h.log), Catalog(h)\n")
    assert constructor_calls(planted, {"Governance", "Catalog"}, tmp_path) == [
        "route.py:2 Governance(...)",
        "route.py:2 Catalog(...)",
    ]
