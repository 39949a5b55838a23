"""What ``tofu validate`` would check in terraform/ without provider schemas, and the docs.

``tofu validate`` needs the providers' plugins (``tofu init``), which come from a provider registry
this machine cannot reach. This script checks, from the parsed HCL (python-hcl2), everything about
our own code that does not depend on a provider's schema:

- every variable has a description and a type, every output a description and a value;
- every ``var.X`` used in a folder is declared there; every ``module.M.O`` names a module block of
  that folder and an output that module declares;
- every module block points at a folder that exists, passes only variables the module declares,
  and passes every variable without a default;
- terraform/README.md names every module's every variable and output (so the docs stay complete).

Resource arguments (whether ``aws_msk_cluster`` takes ``kafka_version``) are what it cannot check.

    python infra/tools/tf_check.py terraform        # exit 0 clean, 1 with the problems listed
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import hcl2

VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
MODULE_REF = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)")
COMMENT = re.compile(r"(?m)#.*$")


def _blocks(parsed: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in parsed.get(kind, []):
        for name, body in entry.items():
            out[name.strip('"')] = body
    return out


class Folder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.parsed: list[dict[str, Any]] = []
        self.text = ""
        for tf in sorted(path.glob("*.tf")):
            with tf.open() as handle:
                self.parsed.append(hcl2.load(handle))
            self.text += COMMENT.sub("", tf.read_text()) + "\n"

    def blocks(self, kind: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for parsed in self.parsed:
            out.update(_blocks(parsed, kind))
        return out


def _section(markdown: str, title: str) -> str:
    """The text under the ``### title`` heading, up to the next heading of that level or higher."""
    match = re.search(rf"(?ms)^### {re.escape(title)}\s*$(.*?)(?=^#{{1,3}} |\Z)", markdown)
    return match.group(1) if match else ""


def check(root: Path) -> list[str]:
    problems: list[str] = []
    folders = {p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts}
    loaded = {f: Folder(f) for f in sorted(folders)}
    readme = (root / "README.md").read_text() if (root / "README.md").exists() else ""
    for path, folder in loaded.items():
        where = path.relative_to(root.parent)
        variables = folder.blocks("variable")
        outputs = folder.blocks("output")
        modules = folder.blocks("module")
        for name, body in variables.items():
            for key in ("description", "type"):
                if key not in body:
                    problems.append(f"{where}: variable {name!r} has no {key}.")
        for name, body in outputs.items():
            for key in ("description", "value"):
                if key not in body:
                    problems.append(f"{where}: output {name!r} has no {key}.")
        for used in sorted(set(VAR_REF.findall(folder.text))):
            if used not in variables:
                problems.append(
                    f"{where}: var.{used} is used but no variable {used!r} is declared."
                )
        for mod, out in sorted(set(MODULE_REF.findall(folder.text))):
            if mod not in modules:
                problems.append(f"{where}: module.{mod}.{out} names no module block {mod!r}.")
        for name, body in modules.items():
            source = str(body.get("source", "")).strip('"')
            target = (path / source).resolve()
            if not source.startswith(".") or target not in loaded:
                problems.append(
                    f"{where}: module {name!r} has source {source!r}, not a module here."
                )
                continue
            declared = loaded[target].blocks("variable")
            meta = {"source", "version", "providers", "depends_on", "count", "for_each"}
            passed = {k for k in body if k not in meta and not k.startswith("__")}
            for extra in sorted(passed - set(declared)):
                problems.append(
                    f"{where}: module {name!r} passes {extra!r}, which {source} does not declare."
                )
            for required in sorted(n for n, b in declared.items() if "default" not in b):
                if required not in passed:
                    problems.append(
                        f"{where}: module {name!r} does not pass required variable {required!r}."
                    )
            target_outputs = loaded[target].blocks("output")
            for mod, out in sorted(set(MODULE_REF.findall(folder.text))):
                if mod == name and out not in target_outputs:
                    problems.append(f"{where}: module.{mod}.{out}: {source} has no output {out!r}.")
        if path.parent.name == "modules":
            section = _section(readme, f"modules/{path.name}")
            for kind, names in (("variable", variables), ("output", outputs)):
                for name in names:
                    if f"| `{name}` |" not in section:
                        problems.append(
                            f"terraform/README.md has no row for {kind} `{name}` under "
                            f"'### modules/{path.name}'."
                        )
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "terraform").resolve()
    problems = check(root)
    for problem in problems:
        print(problem)
    folders = len({p.parent for p in root.rglob("*.tf")})
    print(f"tf_check: {folders} folders, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
