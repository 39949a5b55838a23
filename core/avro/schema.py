"""Parse, validate and normalise Avro schemas for the schema registry (pure: no I/O).

``parse_schema`` turns schema text (plus Confluent schema references) into a ``ParsedSchema``:

- ``canonical`` is the registry's identity form. Unlike Avro's Parsing Canonical Form it keeps
  ``default``, ``logicalType``, ``precision``/``scale``, ``doc``, ``aliases``, ``order`` and every
  custom attribute (e.g. ``"classification": "pii"``), because decimal(10,2) and decimal(12,4) are
  not the same schema and classifications must survive a round trip.
- ``normalized`` is a graph of plain Python nodes (``Node`` subclasses) built once per schema, so
  that the compatibility checker walks objects instead of re-reading JSON.

The parser is deliberately stricter than the Avro specification's "ignore what you do not
understand" advice where silence would corrupt data: an invalid decimal, a known logical type on
the wrong base type, a union default that does not match the first branch, and duplicate JSON keys
are rejected with a message naming the field, the value and the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import fastavro

from core.errors import InvalidSchema

__all__ = [
    "PRIMITIVES",
    "ArrayNode",
    "EnumNode",
    "FieldNode",
    "FixedNode",
    "MapNode",
    "NamedNode",
    "Node",
    "ParsedSchema",
    "PrimitiveNode",
    "RecordNode",
    "UnionNode",
    "describe",
    "parse_schema",
]

PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
# "error" is the record kind Avro protocols use; Java's parser accepts it in plain schemas too.
_RECORD_KINDS: Final = frozenset({"record", "error"})
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Known logical types and the base types they may annotate. Unknown logical types are kept in the
# canonical form and otherwise ignored, as the specification says.
_LOGICAL_BASES: Final[dict[str, frozenset[str]]] = {
    "decimal": frozenset({"bytes", "fixed"}),
    "big-decimal": frozenset({"bytes"}),
    "uuid": frozenset({"string", "fixed"}),
    "date": frozenset({"int"}),
    "time-millis": frozenset({"int"}),
    "time-micros": frozenset({"long"}),
    "timestamp-millis": frozenset({"long"}),
    "timestamp-micros": frozenset({"long"}),
    "timestamp-nanos": frozenset({"long"}),
    "local-timestamp-millis": frozenset({"long"}),
    "local-timestamp-micros": frozenset({"long"}),
    "local-timestamp-nanos": frozenset({"long"}),
    "duration": frozenset({"fixed"}),
}
_FIXED_LOGICAL_SIZE: Final = {"uuid": 16, "duration": 12}
# Decimal precision the registry takes. The specification sets no bound, but the hub's decimal
# arithmetic grows with it: one value of a decimal(900000, 900000) field held a request for
# minutes, and a fixed of 10**9 bytes annotated as a decimal took a gigabyte to size. 4096
# digits is 50 times Arrow's widest decimal (76 digits) and cheap to convert.
MAX_DECIMAL_PRECISION: Final = 4096

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1

# Canonical key order: the structural keys first, then annotations; custom keys follow, sorted.
_TYPE_KEY_ORDER: Final = (
    "type",
    "name",
    "namespace",
    "aliases",
    "doc",
    "fields",
    "symbols",
    "default",
    "size",
    "items",
    "values",
    "logicalType",
    "precision",
    "scale",
)
_FIELD_KEY_ORDER: Final = ("name", "type", "default", "order", "aliases", "doc")


# --------------------------------------------------------------------------------------------
# Normalised form


class Node:
    """One Avro type. ``key`` identifies its full structure (None while being built).

    Two nodes with equal non-None keys are structurally identical for schema resolution (kinds,
    names, sizes, symbols, field names and types, logical types), so a reader always reads a
    writer with the same key; the checker uses this as a shortcut.
    """

    __slots__ = ("key", "kind", "logical", "precision", "scale")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.key: bytes | None = None
        # Known logical type name, or None. precision/scale only for decimal.
        self.logical: str | None = None
        self.precision: int | None = None
        self.scale: int | None = None


class PrimitiveNode(Node):
    """A primitive type, possibly carrying a logical type."""

    __slots__ = ()


class ArrayNode(Node):
    __slots__ = ("items",)

    def __init__(self, items: Node) -> None:
        super().__init__("array")
        self.items = items


class MapNode(Node):
    __slots__ = ("values",)

    def __init__(self, values: Node) -> None:
        super().__init__("map")
        self.values = values


class UnionNode(Node):
    __slots__ = ("branches",)

    def __init__(self, branches: tuple[Node, ...]) -> None:
        super().__init__("union")
        self.branches = branches


class NamedNode(Node):
    """A record, enum or fixed: ``fullname``, unqualified ``name``, full-name ``aliases``."""

    __slots__ = ("aliases", "fullname", "name")

    def __init__(self, kind: str, fullname: str, aliases: frozenset[str]) -> None:
        super().__init__(kind)
        self.fullname = fullname
        self.name = fullname.rpartition(".")[2]
        self.aliases = aliases


class FieldNode:
    """A record field; ``has_default`` distinguishes ``"default": null`` from no default."""

    __slots__ = ("aliases", "default", "has_default", "name", "type")

    def __init__(
        self, name: str, type_: Node, aliases: tuple[str, ...], has_default: bool, default: Any
    ) -> None:
        self.name = name
        self.type = type_
        self.aliases = aliases
        self.has_default = has_default
        self.default = default


class RecordNode(NamedNode):
    __slots__ = ("field_map", "fields")

    def __init__(self, kind: str, fullname: str, aliases: frozenset[str]) -> None:
        super().__init__(kind, fullname, aliases)
        # Filled in after registration so that the record can refer to itself.
        self.fields: tuple[FieldNode, ...] = ()
        self.field_map: dict[str, FieldNode] = {}


class EnumNode(NamedNode):
    __slots__ = ("default", "symbol_set", "symbols")

    def __init__(
        self,
        fullname: str,
        aliases: frozenset[str],
        symbols: tuple[str, ...],
        default: str | None,
    ) -> None:
        super().__init__("enum", fullname, aliases)
        self.symbols = symbols
        self.symbol_set = frozenset(symbols)
        self.default = default


class FixedNode(NamedNode):
    __slots__ = ("size",)

    def __init__(self, fullname: str, aliases: frozenset[str], size: int) -> None:
        super().__init__("fixed", fullname, aliases)
        self.size = size


def _logical_suffix(node: Node) -> str:
    if node.logical is None:
        return ""
    if node.logical == "decimal":
        return f" decimal({node.precision},{node.scale})"
    return f" {node.logical}"


def describe(node: Node) -> str:
    """A short human-readable type, e.g. ``bytes decimal(18,2)``, ``array<record com.hub.Leg>``."""
    if isinstance(node, FixedNode):
        return f"fixed {node.fullname}({node.size}){_logical_suffix(node)}"
    if isinstance(node, NamedNode):
        return f"{node.kind} {node.fullname}"
    if isinstance(node, ArrayNode):
        return f"array<{describe(node.items)}>"
    if isinstance(node, MapNode):
        return f"map<{describe(node.values)}>"
    if isinstance(node, UnionNode):
        return "union[" + ", ".join(describe(b) for b in node.branches) + "]"
    return node.kind + _logical_suffix(node)


def _primitive(kind: str) -> PrimitiveNode:
    node = PrimitiveNode(kind)
    node.key = hashlib.blake2b(repr(("p", kind)).encode(), digest_size=16).digest()
    return node


# Plain primitives are shared, so identical field types are the same object (an ``is`` test).
_PLAIN: Final[dict[str, PrimitiveNode]] = {kind: _primitive(kind) for kind in PRIMITIVES}


# --------------------------------------------------------------------------------------------
# ParsedSchema


FastavroSchema = str | list[Any] | dict[str, Any]


@dataclass(frozen=True, eq=False)
class ParsedSchema:
    """A validated schema. Equality and hash follow ``fingerprint`` and the references.

    ``canonical`` covers this schema's own text only; a registry that dedupes schemas with
    references must also compare ``references``.
    """

    text: str
    canonical: str
    fingerprint: str
    name: str | None
    parsed: FastavroSchema = field(repr=False)
    normalized: Node = field(repr=False)
    references: tuple[tuple[str, str], ...] = ()
    named_types: dict[str, NamedNode] = field(default_factory=dict, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedSchema):
            return NotImplemented
        return self.fingerprint == other.fingerprint and self.references == other.references

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.references))


def parse_schema(text: str, references: Sequence[tuple[str, str]] = ()) -> ParsedSchema:
    """Parse and validate Avro schema JSON ``text``; raise ``InvalidSchema`` naming the problem.

    ``references`` are ``(name, schema text)`` pairs in dependency order: each may use the named
    types defined by the ones before it, and ``text`` may use all of them.
    """
    names: dict[str, NamedNode] = {}
    fa_named: dict[str, Any] = {}
    for ref_name, ref_text in references:
        prefix = f"reference '{ref_name}': "
        _, ref_canon = _parse_document(ref_text, names, prefix)
        _fastavro_parse(ref_canon, fa_named, prefix)
    defined_before = set(names)
    root, canon = _parse_document(text, names, "")
    # Serialise before fastavro sees the structure, so nothing it does can change the identity.
    canonical = json.dumps(canon, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    parsed = _fastavro_parse(canon, fa_named, "")
    if isinstance(parsed, str) and parsed not in PRIMITIVES:
        # The schema is a bare reference to a type from a reference; fastavro returns the name
        # alone, which its writers cannot use, so hand out the definition with its named types.
        parsed = {**fa_named[parsed], "__fastavro_parsed": True, "__named_schemas": fa_named}
    parsed = _named_by_reference(parsed, fa_named)
    name = root.fullname if isinstance(root, NamedNode) else None
    return ParsedSchema(
        text=text,
        canonical=canonical,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
        name=name,
        parsed=parsed,
        normalized=root,
        references=tuple((n, t) for n, t in references),
        named_types={k: v for k, v in names.items() if k not in defined_before},
    )


def _fastavro_parse(canon: Any, fa_named: dict[str, Any], prefix: str) -> FastavroSchema:
    try:
        result: FastavroSchema = fastavro.parse_schema(canon, named_schemas=fa_named)
    except Exception as exc:  # fastavro raises several unrelated types; all mean "invalid"
        raise InvalidSchema(
            f"{prefix}the schema passed validation here but fastavro rejected it: {exc}"
        ) from exc
    return result


_NAMED_KINDS: Final = frozenset({"record", "error", "enum", "fixed"})


def _refs_only(schema: Any, top: bool) -> Any:
    """``schema`` with every nested named-type definition replaced by its name."""
    if isinstance(schema, list):
        return [_refs_only(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if not top and schema.get("type") in _NAMED_KINDS:
        return schema["name"]
    out = dict(schema)
    if "fields" in out:
        out["fields"] = [{**f, "type": _refs_only(f["type"], False)} for f in out["fields"]]
    if "items" in out:
        out["items"] = _refs_only(out["items"], False)
    if "values" in out:
        out["values"] = _refs_only(out["values"], False)
    return out


def _named_by_reference(parsed: FastavroSchema, fa_named: dict[str, Any]) -> FastavroSchema:
    """fastavro's parsed form, with named types below the root referred to by name only.

    fastavro 1.13 fails (``TypeError: unhashable type: 'dict'``) when resolving a writer that
    names a type against a reader that defines it inline at that spot, e.g. after a field
    holding the definition was removed; with every nested named type a name on both sides, its
    lookups always go through ``__named_schemas``.
    """
    named = {name: _refs_only(schema, True) for name, schema in fa_named.items()}
    if isinstance(parsed, dict):
        root = _refs_only({k: v for k, v in parsed.items() if not k.startswith("__")}, True)
        return {**root, "__fastavro_parsed": True, "__named_schemas": named}
    return parsed  # a primitive, or a top-level union (fastavro keeps no named-type table there)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # json.loads would keep the last value silently; a registry must not guess.
            raise InvalidSchema(f"duplicate key '{key}' in a JSON object of the schema")
        out[key] = value
    return out


def _parse_document(text: str, names: dict[str, NamedNode], prefix: str) -> tuple[Node, Any]:
    if not isinstance(text, str):
        raise InvalidSchema(f"{prefix}schema must be a JSON string, got {type(text).__name__}")
    try:
        doc = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise InvalidSchema(
            f"{prefix}schema is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except InvalidSchema as exc:
        raise InvalidSchema(prefix + exc.message) from exc
    except RecursionError as exc:
        raise InvalidSchema(f"{prefix}schema is nested too deeply to process") from exc
    parser = _Parser(names)
    try:
        root, canon = parser.parse(doc, "", "the schema")
        parser.check_defaults()
        _compute_keys(parser.nodes)
    except InvalidSchema as exc:
        if prefix:
            raise InvalidSchema(prefix + exc.message) from exc
        raise
    except RecursionError as exc:
        raise InvalidSchema(f"{prefix}schema is nested too deeply to process") from exc
    return root, canon


# --------------------------------------------------------------------------------------------
# Parser


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _sorted_json(value: Any) -> Any:
    """JSON value with object keys sorted recursively (custom attributes and defaults)."""
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def _max_decimal_precision(size: int) -> int:
    # Largest number of base-10 digits a two's-complement integer of `size` bytes always holds.
    # A byte holds more than 2 digits (2**7 - 1 = 127), so a fixed of more than half the
    # largest precision holds any precision: no integer of `size` bytes is built for it.
    if size > MAX_DECIMAL_PRECISION // 2:
        return MAX_DECIMAL_PRECISION
    return math.floor(math.log10(2 ** (8 * size - 1) - 1)) if size > 0 else 0


class _Parser:
    def __init__(self, names: dict[str, NamedNode]) -> None:
        self.names = names
        self.nodes: list[Node] = []
        self.pending_defaults: list[tuple[str, Node, Any]] = []

    # -- names ---------------------------------------------------------------------------------

    def _full_name(self, obj: dict[str, Any], ns: str, where: str) -> tuple[str, str]:
        """(full name, namespace for nested definitions) of a named type definition."""
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidSchema(f"{where}: a {obj['type']} needs a non-empty string 'name'")
        if "." in name:
            fullname = name
        else:
            explicit = obj.get("namespace", ns)
            if explicit is None:
                explicit = ""
            if not isinstance(explicit, str):
                raise InvalidSchema(
                    f"{where}: namespace must be a string, got {_json(obj.get('namespace'))}"
                )
            fullname = f"{explicit}.{name}" if explicit else name
        for part in fullname.split("."):
            if not _NAME_RE.match(part):
                raise InvalidSchema(
                    f"{where}: invalid name '{fullname}': each dot-separated part must match "
                    "[A-Za-z_][A-Za-z0-9_]*"
                )
        if fullname.rpartition(".")[2] in PRIMITIVES:
            raise InvalidSchema(
                f"{where}: '{fullname}' redefines the primitive type "
                f"'{fullname.rpartition('.')[2]}', which Avro forbids"
            )
        if fullname in self.names:
            raise InvalidSchema(
                f"{where}: duplicate definition of named type '{fullname}': a full name may be "
                "defined once; refer to it by name after its first definition"
            )
        return fullname, fullname.rpartition(".")[0]

    def _aliases(self, obj: dict[str, Any], ns: str, where: str, *, named: bool) -> list[str]:
        raw = obj.get("aliases", [])
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            raise InvalidSchema(f"{where}: aliases must be a list of strings, got {_json(raw)}")
        out: list[str] = []
        for alias in raw:
            parts = alias.split(".") if named else [alias]
            if not all(_NAME_RE.match(p) for p in parts):
                raise InvalidSchema(
                    f"{where}: invalid alias '{alias}': names must match [A-Za-z_][A-Za-z0-9_]*"
                )
            # Aliases of named types are relative to the type's namespace, like its name.
            out.append(f"{ns}.{alias}" if named and ns and "." not in alias else alias)
        return out

    def _resolve(self, ref: str, ns: str, where: str) -> Node:
        if ref in PRIMITIVES:
            return _PLAIN[ref]
        full = f"{ns}.{ref}" if ns and "." not in ref else ref
        node = self.names.get(full)
        if node is not None:
            return node
        if full != ref and ref in self.names:
            # Avro Java falls back to the null namespace here; the specification and fastavro do
            # not, so such a schema could not be used to encode or decode.
            raise InvalidSchema(
                f"{where}: unknown type '{ref}' in namespace '{ns}': the type '{ref}' of the null "
                "namespace cannot be referred to from inside a namespace; give it a namespace"
            )
        raise InvalidSchema(
            f"{where}: unknown type '{ref}': define it before use or pass its schema as a reference"
        )

    # -- types ---------------------------------------------------------------------------------

    def parse(self, obj: Any, ns: str, where: str) -> tuple[Node, Any]:
        """Return (node, canonical JSON value) for the schema ``obj`` in namespace ``ns``."""
        if isinstance(obj, str):
            node = self._resolve(obj, ns, where)
            return node, (node.fullname if isinstance(node, NamedNode) else obj)
        if isinstance(obj, list):
            return self._union(obj, ns, where)
        if isinstance(obj, dict):
            return self._object(obj, ns, where)
        raise InvalidSchema(
            f"{where}: a schema must be a type name, a JSON object or a union list, "
            f"got {_json(obj)}"
        )

    def _union(self, obj: list[Any], ns: str, where: str) -> tuple[Node, Any]:
        # An empty union (a type without values) is valid Avro: Java and Python accept it.
        branches: list[Node] = []
        canon: list[Any] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(obj):
            node, c = self.parse(item, ns, f"union branch {i} of {where}")
            if isinstance(node, UnionNode):
                raise InvalidSchema(
                    f"{where}: union branch {i} is itself a union, which Avro forbids"
                )
            ident = node.fullname if isinstance(node, NamedNode) else node.kind
            if ident in seen:
                raise InvalidSchema(
                    f"{where}: union branches {seen[ident]} and {i} are both '{ident}'; a union "
                    "may hold each unnamed type and each named type only once"
                )
            seen[ident] = i
            branches.append(node)
            canon.append(c)
        node = UnionNode(tuple(branches))
        self.nodes.append(node)
        return node, canon

    def _object(self, obj: dict[str, Any], ns: str, where: str) -> tuple[Node, Any]:
        kind = obj.get("type")
        if kind is None and "type" not in obj:
            raise InvalidSchema(f"{where}: schema object has no 'type'")
        if not isinstance(kind, str):
            raise InvalidSchema(
                f"{where}: 'type' of a schema object must be a string naming a type, got "
                f"{_json(kind)}; nest a schema object or union only as a field's type"
            )
        if kind in _RECORD_KINDS:
            return self._record(obj, ns, where)
        if kind == "enum":
            return self._enum(obj, ns, where)
        if kind == "fixed":
            return self._fixed(obj, ns, where)
        if kind == "array" or kind == "map":
            return self._container(obj, kind, ns, where)
        if kind in PRIMITIVES:
            return self._primitive_object(obj, kind, where)
        # {"type": "com.hub.Money"}: a reference written as an object (Java accepts it too).
        node = self._resolve(kind, ns, where)
        assert isinstance(node, NamedNode)
        extra = {k: v for k, v in obj.items() if k != "type"}
        if not extra:
            return node, node.fullname
        return node, {"type": node.fullname, **_sorted_json(extra)}

    def _finish(self, obj: dict[str, Any], known: dict[str, Any], skip: frozenset[str]) -> Any:
        """Canonical object: known keys in fixed order, then other attributes sorted."""
        out: dict[str, Any] = {k: known[k] for k in _TYPE_KEY_ORDER if k in known}
        for k in sorted(obj):
            if k not in known and k not in skip:
                out[k] = _sorted_json(obj[k])
        return out

    def _logical(self, obj: dict[str, Any], node: Node, where: str, known: dict[str, Any]) -> None:
        """Validate ``logicalType`` on ``obj`` and record it on ``node`` and ``known``."""
        if "logicalType" not in obj:
            return
        logical = obj["logicalType"]
        if not isinstance(logical, str):
            raise InvalidSchema(f"{where}: logicalType must be a string, got {_json(logical)}")
        known["logicalType"] = logical
        bases = _LOGICAL_BASES.get(logical)
        if bases is None:
            return  # unknown logical types are kept but ignored, as the specification says
        if node.kind not in bases:
            raise InvalidSchema(
                f"{where}: logical type '{logical}' must annotate "
                f"{' or '.join(sorted(bases))}, not {node.kind}"
            )
        if isinstance(node, FixedNode) and logical in _FIXED_LOGICAL_SIZE:
            size = _FIXED_LOGICAL_SIZE[logical]
            if node.size != size:
                raise InvalidSchema(
                    f"{where}: logical type '{logical}' needs a fixed of size {size}, "
                    f"got size {node.size}"
                )
        node.logical = logical
        if logical != "decimal":
            return
        precision = obj.get("precision")
        if type(precision) is not int or precision < 1:
            raise InvalidSchema(
                f"{where}: decimal precision must be a positive integer, got {_json(precision)}"
            )
        if precision > MAX_DECIMAL_PRECISION:
            raise InvalidSchema(
                f"{where}: decimal precision {precision} is more than the {MAX_DECIMAL_PRECISION} "
                "digits the hub takes: lower the precision"
            )
        scale = obj.get("scale", 0)
        if type(scale) is not int or not 0 <= scale <= precision:
            raise InvalidSchema(
                f"{where}: decimal scale must be an integer from 0 to the precision "
                f"({precision}), got {_json(scale)}"
            )
        if isinstance(node, FixedNode) and precision > _max_decimal_precision(node.size):
            raise InvalidSchema(
                f"{where}: decimal precision {precision} does not fit in a fixed of "
                f"{node.size} bytes (at most {_max_decimal_precision(node.size)} digits): "
                "enlarge the fixed or lower the precision"
            )
        node.precision, node.scale = precision, scale
        # Scale 0 is the default; writing it out makes equal decimals canonicalise equally.
        known["precision"], known["scale"] = precision, scale

    def _primitive_object(self, obj: dict[str, Any], kind: str, where: str) -> tuple[Node, Any]:
        if len(obj) == 1:
            return _PLAIN[kind], kind
        known: dict[str, Any] = {"type": kind}
        logical = obj.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL_BASES:
            node: Node = PrimitiveNode(kind)
            self._logical(obj, node, where, known)
            self.nodes.append(node)
        else:
            # Custom attributes (or an unknown logical type) do not change how data is read.
            node = _PLAIN[kind]
            self._logical(obj, PrimitiveNode(kind), where, known)
        return node, self._finish(obj, known, frozenset())

    def _container(self, obj: dict[str, Any], kind: str, ns: str, where: str) -> tuple[Node, Any]:
        key = "items" if kind == "array" else "values"
        if key not in obj:
            raise InvalidSchema(f"{where}: {kind} schema has no '{key}'")
        child, child_canon = self.parse(obj[key], ns, f"{kind} {key} of {where}")
        node: Node = ArrayNode(child) if kind == "array" else MapNode(child)
        self.nodes.append(node)
        known: dict[str, Any] = {"type": kind, key: child_canon}
        if "logicalType" in obj:
            self._logical(obj, node, where, known)
        return node, self._finish(obj, known, frozenset())

    def _named_common(
        self, obj: dict[str, Any], ns: str, where: str
    ) -> tuple[str, str, list[str], dict[str, Any], str]:
        fullname, inner_ns = self._full_name(obj, ns, where)
        what = f"{obj['type']} '{fullname}'"
        aliases = self._aliases(obj, inner_ns, what, named=True)
        known: dict[str, Any] = {"type": obj["type"], "name": fullname}
        if not inner_ns and ns:
            # A null-namespace type nested in a namespaced one: keep that explicit, or the bare
            # name would re-resolve into the enclosing namespace.
            known["namespace"] = ""
        if aliases:
            known["aliases"] = aliases
        if "doc" in obj:
            if not isinstance(obj["doc"], str):
                raise InvalidSchema(f"{what}: doc must be a string, got {_json(obj['doc'])}")
            known["doc"] = obj["doc"]
        return fullname, inner_ns, aliases, known, what

    def _record(self, obj: dict[str, Any], ns: str, where: str) -> tuple[Node, Any]:
        fullname, inner_ns, aliases, known, what = self._named_common(obj, ns, where)
        node = RecordNode(obj["type"], fullname, frozenset(aliases))
        self.names[fullname] = node  # before the fields: a record may refer to itself
        self.nodes.append(node)
        raw_fields = obj.get("fields")
        if not isinstance(raw_fields, list):
            raise InvalidSchema(f"{what}: 'fields' must be a list, got {_json(raw_fields)}")
        fields: list[FieldNode] = []
        canon_fields: list[Any] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_fields):
            if not isinstance(raw, dict):
                raise InvalidSchema(f"{what}: field {i} must be a JSON object, got {_json(raw)}")
            fname = raw.get("name")
            if not isinstance(fname, str) or not _NAME_RE.match(fname):
                raise InvalidSchema(
                    f"{what}: field {i} has invalid name {_json(fname)}: field names must match "
                    "[A-Za-z_][A-Za-z0-9_]*"
                )
            fwhere = f"field '{fname}' of {what}"
            if fname in seen:
                raise InvalidSchema(f"{what}: duplicate field name '{fname}'")
            seen.add(fname)
            if "type" not in raw:
                raise InvalidSchema(f"{fwhere}: field has no 'type'")
            ftype, ftype_canon = self.parse(raw["type"], inner_ns, fwhere)
            faliases = self._aliases(raw, inner_ns, fwhere, named=False)
            fknown: dict[str, Any] = {"name": fname, "type": ftype_canon}
            has_default = "default" in raw
            if has_default:
                fknown["default"] = _sorted_json(raw["default"])
                self.pending_defaults.append((fwhere, ftype, raw["default"]))
            if "order" in raw:
                if raw["order"] not in ("ascending", "descending", "ignore"):
                    raise InvalidSchema(
                        f"{fwhere}: order must be 'ascending', 'descending' or 'ignore', "
                        f"got {_json(raw['order'])}"
                    )
                fknown["order"] = raw["order"]
            if faliases:
                fknown["aliases"] = faliases
            if "doc" in raw:
                if not isinstance(raw["doc"], str):
                    raise InvalidSchema(f"{fwhere}: doc must be a string, got {_json(raw['doc'])}")
                fknown["doc"] = raw["doc"]
            fcanon = {k: fknown[k] for k in _FIELD_KEY_ORDER if k in fknown}
            for k in sorted(raw):
                if k not in fknown:
                    fcanon[k] = _sorted_json(raw[k])
            canon_fields.append(fcanon)
            fields.append(FieldNode(fname, ftype, tuple(faliases), has_default, raw.get("default")))
        node.fields = tuple(fields)
        node.field_map = {f.name: f for f in fields}
        known["fields"] = canon_fields
        return node, self._finish(obj, known, frozenset({"namespace"}))

    def _enum(self, obj: dict[str, Any], ns: str, where: str) -> tuple[Node, Any]:
        fullname, _, aliases, known, what = self._named_common(obj, ns, where)
        symbols = obj.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise InvalidSchema(
                f"{what}: 'symbols' must be a list of strings, got {_json(symbols)}"
            )
        seen: set[str] = set()
        for s in symbols:
            if not _NAME_RE.match(s):
                raise InvalidSchema(
                    f"{what}: invalid symbol '{s}': symbols must match [A-Za-z_][A-Za-z0-9_]*"
                )
            if s in seen:
                raise InvalidSchema(f"{what}: duplicate symbol '{s}'")
            seen.add(s)
        default = obj.get("default")
        if "default" in obj and (not isinstance(default, str) or default not in seen):
            raise InvalidSchema(
                f"{what}: enum default {_json(default)} is not among the symbols {symbols}: "
                "use one of the symbols or drop the default"
            )
        node = EnumNode(fullname, frozenset(aliases), tuple(symbols), default)
        self.names[fullname] = node
        self.nodes.append(node)
        known["symbols"] = list(symbols)
        if default is not None:
            known["default"] = default
        return node, self._finish(obj, known, frozenset({"namespace"}))

    def _fixed(self, obj: dict[str, Any], ns: str, where: str) -> tuple[Node, Any]:
        fullname, _, aliases, known, what = self._named_common(obj, ns, where)
        size = obj.get("size")
        if type(size) is not int or size < 0:
            raise InvalidSchema(f"{what}: size must be a non-negative integer, got {_json(size)}")
        node = FixedNode(fullname, frozenset(aliases), size)
        self._logical(obj, node, what, known)
        self.names[fullname] = node
        self.nodes.append(node)
        known["size"] = size
        return node, self._finish(obj, known, frozenset({"namespace"}))

    # -- defaults ------------------------------------------------------------------------------

    def check_defaults(self) -> None:
        """Validate field defaults once every type is complete (recursive types included)."""
        for where, node, value in self.pending_defaults:
            problem = _default_problem(node, value)
            if problem is not None:
                raise InvalidSchema(
                    f"{where}: default {_json(value)} does not match type {describe(node)}: "
                    f"{problem}"
                )


def _default_problem(node: Node, v: Any) -> str | None:
    """Why JSON value ``v`` is not a valid Avro default for ``node``, or None if it is."""
    kind = node.kind
    if kind == "null":
        return None if v is None else "expected null"
    if kind == "boolean":
        return None if isinstance(v, bool) else "expected true or false"
    if kind == "int" or kind == "long":
        lo, hi = (_INT_MIN, _INT_MAX) if kind == "int" else (_LONG_MIN, _LONG_MAX)
        if type(v) is int and lo <= v <= hi:
            return None
        return f"expected an integer from {lo} to {hi}"
    if kind == "float" or kind == "double":
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        return None if ok else "expected a number"
    if kind == "string":
        return None if isinstance(v, str) else "expected a string"
    if kind == "bytes" or isinstance(node, FixedNode):
        if not isinstance(v, str) or any(ord(c) > 255 for c in v):
            return "expected a string of characters \\u0000-\\u00ff (one per byte)"
        if isinstance(node, FixedNode) and len(v) != node.size:
            return f"expected exactly {node.size} bytes, got {len(v)}"
        return None
    if isinstance(node, EnumNode):
        if isinstance(v, str) and v in node.symbol_set:
            return None
        return f"expected one of the symbols {list(node.symbols)}"
    if isinstance(node, ArrayNode):
        if not isinstance(v, list):
            return "expected a JSON array"
        for i, item in enumerate(v):
            problem = _default_problem(node.items, item)
            if problem is not None:
                return f"element {i}: {problem}"
        return None
    if isinstance(node, MapNode):
        if not isinstance(v, dict):
            return "expected a JSON object"
        for k, item in v.items():
            problem = _default_problem(node.values, item)
            if problem is not None:
                return f"value of key '{k}': {problem}"
        return None
    if isinstance(node, UnionNode):
        if not node.branches:
            return "an empty union has no values, so no default fits it; remove the default"
        first = node.branches[0]
        problem = _default_problem(first, v)
        if problem is None:
            return None
        return (
            f"a union default must match the union's first branch ({describe(first)}): "
            f"{problem}; reorder the union or change the default"
        )
    if isinstance(node, RecordNode):
        if not isinstance(v, dict):
            return "expected a JSON object"
        for f in node.fields:
            if f.name in v:
                problem = _default_problem(f.type, v[f.name])
                if problem is not None:
                    return f"field '{f.name}': {problem}"
            elif not f.has_default:
                return f"no value for field '{f.name}', which has no default of its own"
        return None
    return f"unsupported type {kind}"  # pragma: no cover - every kind is handled above


# --------------------------------------------------------------------------------------------
# Structural keys


def recursive_type(root: Node) -> str | None:
    """The full name of a named type that contains itself (a linked list, a tree), else None.

    fastavro's compiled reader and writer recurse on the C stack once per level of a value: a
    value of such a type nested a few thousand levels deep (10 KB of Avro) kills the process
    with a segmentation fault, before any Python error can be raised. The registry refuses such
    schemas (``SchemaRegistry.register``) and file ingest refuses such writer schemas.
    """
    on_path: set[str] = set()
    done: set[int] = set()

    def walk(node: Node) -> str | None:
        if isinstance(node, NamedNode):
            if node.fullname in on_path:
                return node.fullname
            if id(node) in done:
                return None
            on_path.add(node.fullname)
            found = None
            if isinstance(node, RecordNode):
                found = next((r for f in node.fields if (r := walk(f.type))), None)
            on_path.discard(node.fullname)
            done.add(id(node))
            return found
        if isinstance(node, ArrayNode):
            return walk(node.items)
        if isinstance(node, MapNode):
            return walk(node.values)
        if isinstance(node, UnionNode):
            return next((r for b in node.branches if (r := walk(b))), None)
        return None

    return walk(root)


def refuse_recursive(parsed: ParsedSchema, what: str = "The schema") -> None:
    """Raise ``InvalidSchema`` when ``parsed`` holds a recursive type (``recursive_type``)."""
    name = recursive_type(parsed.normalized)
    if name is not None:
        raise InvalidSchema(
            f"{what} defines the recursive type {name!r} (it contains itself): the hub's Avro "
            "codec cannot bound how deep such values nest, and a deep one crashes the process. "
            "Flatten it: a list of items with parent ids, or a fixed number of levels."
        )


def _compute_keys(nodes: list[Node]) -> None:
    """Give every node a structural key (see ``Node``).

    A key is a hash over the node's kind, names, sizes, symbols, logical type and its children's
    keys. Inside a recursive type a back-reference to a type still being hashed is written as its
    name; such a partial ("open") hash is not stored, because its meaning depends on the
    enclosing definition. Starting from each node with an empty stack always yields a closed hash.
    """
    for node in nodes:
        if node.key is None:
            _key(node, [])


def _key(node: Node, stack: list[str]) -> tuple[bytes, frozenset[str]]:
    if node.key is not None:
        return node.key, frozenset()
    free: frozenset[str] = frozenset()
    parts: tuple[Any, ...]
    if isinstance(node, NamedNode):
        if node.fullname in stack:
            return ("ref:" + node.fullname).encode(), frozenset({node.fullname})
        stack.append(node.fullname)
        if isinstance(node, RecordNode):
            children = []
            for f in node.fields:
                k, fr = _key(f.type, stack)
                children.append((f.name, k))
                free |= fr
            parts = (node.kind, node.fullname, tuple(children))
        elif isinstance(node, EnumNode):
            parts = ("enum", node.fullname, node.symbols)
        else:
            assert isinstance(node, FixedNode)
            parts = ("fixed", node.fullname, node.size, node.logical, node.precision, node.scale)
        stack.pop()
        free = free - {node.fullname}
    elif isinstance(node, ArrayNode | MapNode):
        child = node.items if isinstance(node, ArrayNode) else node.values
        k, free = _key(child, stack)
        parts = (node.kind, k, node.logical)
    elif isinstance(node, UnionNode):
        keys = []
        for b in node.branches:
            k, fr = _key(b, stack)
            keys.append(k)
            free |= fr
        parts = ("union", tuple(keys))
    else:
        parts = (node.kind, node.logical, node.precision, node.scale)
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()
    if not free:
        node.key = digest
    return digest, free
