"""A schema with Confluent references made self-contained: every referenced named type inlined.

Shredding (``core.pii``), the log-form/plain-form rewrites and the columnar readers read a
schema's JSON text on its own; a schema whose record uses ``com.acme.Money`` from another
subject's version cannot be read that way, so ingest through it failed with 422. The registry
hands out (``SchemaRegistry.parsed``) the standalone form built here instead: the same Avro
schema (the same binary encoding and resolution) whose text defines every named type it uses,
so PII marked inside a referenced schema is seen, and sealed, like PII defined in place.

Works on the registry's canonical form (``ParsedSchema.canonical``), where every name is a
fullname and no ``namespace`` is left to resolve against, so a definition can move into another
record's namespace without changing its meaning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.avro.schema import PRIMITIVES
from core.errors import InvalidSchema

_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _definitions(node: Any, out: dict[str, Any]) -> None:
    """Every named type ``node`` defines, by fullname (the first definition wins)."""
    if isinstance(node, list):
        for branch in node:
            _definitions(branch, out)
    elif isinstance(node, dict):
        if node.get("type") in _NAMED and isinstance(node.get("name"), str):
            out.setdefault(node["name"], node)
        for f in node.get("fields") or ():
            if isinstance(f, dict):
                _definitions(f.get("type"), out)
        for key in ("items", "values"):
            if key in node:
                _definitions(node[key], out)
        if isinstance(node.get("type"), dict | list):
            _definitions(node["type"], out)


def inline_references(canonical: str, referenced: Sequence[str]) -> str:
    """``canonical`` (a schema's canonical JSON) with the named types it takes from
    ``referenced`` (the canonical JSON of each referenced schema, itself standalone) defined at
    their first use, in Avro's depth-first order; a name defined twice becomes a reference."""
    available: dict[str, Any] = {}
    for text in referenced:
        _definitions(json.loads(text), available)
    defined: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES or node in defined or node not in available:
                return node  # an unknown name is the parser's to report, as before
            return walk(available[node])
        if isinstance(node, list):
            return [walk(b) for b in node]
        if not isinstance(node, dict):
            return node
        if node.get("type") in _NAMED and isinstance(node.get("name"), str):
            if node["name"] in defined:
                return node["name"]  # a referenced schema's copy of a type defined already
            defined.add(node["name"])
        out = dict(node)
        if isinstance(out.get("fields"), list):
            out["fields"] = [
                {**f, "type": walk(f["type"])} if isinstance(f, dict) and "type" in f else f
                for f in out["fields"]
            ]
        for key in ("items", "values"):
            if key in out:
                out[key] = walk(out[key])
        if isinstance(out.get("type"), dict | list) or (
            isinstance(out.get("type"), str)
            and out["type"] not in PRIMITIVES | _NAMED
            and out["type"] not in ("array", "map")
        ):
            out["type"] = walk(out["type"])
        return out

    try:
        return json.dumps(walk(json.loads(canonical)), separators=(",", ":"), ensure_ascii=False)
    except RecursionError as exc:
        raise InvalidSchema("The schema's references nest too deeply to inline.") from exc
