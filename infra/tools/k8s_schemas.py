"""Kubernetes JSON schemas for kubeconform, offline, from the ``kubernetes-validate`` wheel.

kubeconform validates against per-kind JSON schemas, normally downloaded from a schema repository
on GitHub, which cannot be reached here. The ``kubernetes-validate`` package (PyPI) ships the same
schemas generated from Kubernetes' OpenAPI, in a "local" layout: one file per kind whose ``$ref``
points at a shared ``/api/_definitions.json``. kubeconform's loader would fetch that reference over
HTTP, so this script writes each kind as a standalone schema: the definitions it reaches are copied
into its own ``$defs`` and the references rewritten to ``#/$defs/...``. Files keep their names
(``deployment-apps-v1.json``), which is kubeconform's ``{{.ResourceKind}}{{.KindSuffix}}.json``.

    python infra/tools/k8s_schemas.py SOURCE_DIR OUT_DIR

Standard library only: it runs under any Python 3.9+.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PREFIX = "/api/_definitions.json#/$defs/"


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref[len(PREFIX) :] if ref.startswith(PREFIX) else None
            if name is None and ref.startswith("#/$defs/"):
                name = ref[len("#/$defs/") :]
            if name is not None:
                found.add(name)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            out["$ref"] = "#/$defs/" + ref[len(PREFIX) :]
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def standalone(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every definition it reaches, transitively, in its own ``$defs``."""
    needed: set[str] = set()
    todo: set[str] = set()
    _refs(schema, todo)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        if name not in defs:
            raise SystemExit(f"k8s_schemas: definition {name!r} is referenced but not defined.")
        needed.add(name)
        more: set[str] = set()
        _refs(defs[name], more)
        todo |= more - needed
    out = _rewrite(schema)
    if needed:
        out["$defs"] = {name: _rewrite(defs[name]) for name in sorted(needed)}
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: k8s_schemas.py SOURCE_DIR OUT_DIR", file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    definitions = source / "_definitions.json"
    if not definitions.is_file():
        print(
            f"k8s_schemas: {definitions} does not exist; is SOURCE_DIR a kubernetes-validate "
            "schema folder such as .../kubernetes-json-schema/v1.37.0-local-strict?",
            file=sys.stderr,
        )
        return 1
    defs = json.loads(definitions.read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.glob("*.json")):
        if path.name in ("_definitions.json", "all.json"):
            continue
        schema = json.loads(path.read_text())
        (out / path.name).write_text(json.dumps(standalone(schema, defs), separators=(",", ":")))
        count += 1
    print(f"k8s_schemas: wrote {count} standalone schemas to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
