"""Avro reader/writer compatibility, following the specification's "Schema Resolution" rules.

Pure: walks the ``normalized`` node graphs that ``parse_schema`` built once per schema.

Logical types and lossy promotions. By default (``strict_logical_types=False``) the checker
does what Apache Avro's ``SchemaCompatibility`` (Java, which Confluent's registry uses) and
``avro.compatibility`` (Python) do: logical types are ignored and a pair resolves by its
underlying types, so ``int`` vs ``date``, ``long`` vs ``timestamp-micros`` or ``bytes`` vs
``decimal(10, 2)`` are compatible, and every promotion the specification lists is allowed.
With ``strict_logical_types=True`` (``HUB_REGISTRY_STRICT_LOGICAL_TYPES=true`` for the registry;
the ingest path always resolves strictly, because it re-encodes values and must never misread a
number):

1. Decimals: precision and scale must be equal on both sides (``DECIMAL_PRECISION_MISMATCH``,
   ``DECIMAL_SCALE_MISMATCH``).
2. Other logical types that change how a value is interpreted (date, time-*, timestamp-*,
   local-timestamp-*, duration, big-decimal, decimal) must be the same on both sides, including
   their presence: timestamp-millis vs timestamp-micros, or long vs long timestamp-millis, is a
   ``LOGICAL_TYPE_MISMATCH``. ``uuid`` and unknown logical types only annotate a string or fixed
   and are ignored.
3. Promotions that can round a value: int to float, long to float and long to double
   (``LOSSY_PROMOTION``). The specification allows them, but a float holds integers exactly
   only up to 2**24 and a double up to 2**53: a long 9007199254740993 written under the old
   schema reads back as 9007199254740992.0, silently. int to long/double and float to double
   are exact and stay allowed.

An empty union (``[]``, a type with no values) is accepted as both Avro checkers accept it: a
writer with no branches writes nothing a reader could fail on; a reader with no branches reads
no writer type but another empty union.

Where this checker deliberately differs from Avro's checkers in every mode:

4. Unions: as the specification says, a writer branch is resolved against the *first* reader
   branch that matches it (same kind and unqualified name, or a promotion), and that resolution
   must succeed. Avro's checkers accept the union if *any* reader branch would work, which a
   first-match reader (fastavro, the specification) may not honour.
5. A reader enum with a default accepts unknown writer symbols (as the specification says); the
   Python package's checker also requires the default to be truthy and mishandles a reader field
   of enum type that is missing from the writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from core.avro.schema import (
    PRIMITIVES,
    ArrayNode,
    EnumNode,
    FixedNode,
    MapNode,
    NamedNode,
    Node,
    ParsedSchema,
    RecordNode,
    UnionNode,
    describe,
)

__all__ = [
    "RULES",
    "CompatibilityLevel",
    "Incompatibility",
    "check_level",
    "check_reader_writer",
]


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels; *_TRANSITIVE check every previous version."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader cannot read a writer: where (``path``), which ``rule``, and why."""

    path: str
    rule: str
    message: str
    # For LOGICAL_TYPE_MISMATCH: the (reader, writer) logical types, None for a plain type.
    logical: tuple[str | None, str | None] | None = field(default=None, compare=False, repr=False)


# Rule ids. The first six are Avro Java's SchemaIncompatibilityType names.
NAME_MISMATCH: Final = "NAME_MISMATCH"
FIXED_SIZE_MISMATCH: Final = "FIXED_SIZE_MISMATCH"
MISSING_ENUM_SYMBOLS: Final = "MISSING_ENUM_SYMBOLS"
READER_FIELD_MISSING_DEFAULT_VALUE: Final = "READER_FIELD_MISSING_DEFAULT_VALUE"
TYPE_MISMATCH: Final = "TYPE_MISMATCH"
MISSING_UNION_BRANCH: Final = "MISSING_UNION_BRANCH"
DECIMAL_PRECISION_MISMATCH: Final = "DECIMAL_PRECISION_MISMATCH"
DECIMAL_SCALE_MISMATCH: Final = "DECIMAL_SCALE_MISMATCH"
LOGICAL_TYPE_MISMATCH: Final = "LOGICAL_TYPE_MISMATCH"
LOSSY_PROMOTION: Final = "LOSSY_PROMOTION"
RULES: Final = (
    NAME_MISMATCH,
    FIXED_SIZE_MISMATCH,
    MISSING_ENUM_SYMBOLS,
    READER_FIELD_MISSING_DEFAULT_VALUE,
    TYPE_MISMATCH,
    MISSING_UNION_BRANCH,
    DECIMAL_PRECISION_MISMATCH,
    DECIMAL_SCALE_MISMATCH,
    LOGICAL_TYPE_MISMATCH,
    LOSSY_PROMOTION,
)

# (writer kind, reader kind) pairs the specification lets a reader promote.
_PROMOTIONS: Final = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)
# Promotions the strict mode refuses: (writer kind, reader kind) -> the largest magnitude up to
# which every integer survives (2**24 for a float's 24-bit significand, 2**53 for a double's).
_LOSSY: Final = {("int", "float"): "2**24", ("long", "float"): "2**24", ("long", "double"): "2**53"}
# Logical types that only annotate (the value reads the same without them).
_ANNOTATION_ONLY: Final = frozenset({"uuid"})
# Stop collecting after this many findings: a pathological pair must not run away.
_MAX_FINDINGS: Final = 1000


def check_reader_writer(
    reader: ParsedSchema, writer: ParsedSchema, *, strict_logical_types: bool = False
) -> list[Incompatibility]:
    """Everything that stops ``reader`` from reading data written with ``writer``; [] if none.

    ``strict_logical_types``: also compare logical types (see the module docstring).
    """
    if reader.fingerprint == writer.fingerprint and reader.references == writer.references:
        return []
    out: list[Incompatibility] = []
    _Checker(out, strict_logical_types).check(
        reader.normalized, writer.normalized, "", "the top-level schema"
    )
    return out


def check_level(
    new: ParsedSchema,
    previous: Sequence[ParsedSchema],
    level: CompatibilityLevel,
    *,
    strict_logical_types: bool = False,
) -> list[Incompatibility]:
    """Check ``new`` against ``previous`` (oldest first) under Confluent's ``level``.

    BACKWARD: ``new`` reads the latest; FORWARD: the latest reads ``new``; FULL: both;
    *_TRANSITIVE: the same against every previous version. Each message starts with the index of
    the previous version it concerns.
    """
    level = CompatibilityLevel(level)
    if level is CompatibilityLevel.NONE or not previous:
        return []
    transitive = level.value.endswith("_TRANSITIVE")
    backward = level.value.startswith(("BACKWARD", "FULL"))
    forward = level.value.startswith(("FORWARD", "FULL"))
    last = len(previous) - 1
    indices = range(len(previous)) if transitive else (last,)
    out: list[Incompatibility] = []
    for i in indices:
        old = previous[i]
        if backward:
            for inc in check_reader_writer(new, old, strict_logical_types=strict_logical_types):
                out.append(_against(inc, i, last, "the new schema cannot read data written with"))
        if forward:
            for inc in check_reader_writer(old, new, strict_logical_types=strict_logical_types):
                out.append(
                    _against(inc, i, last, "data written with the new schema cannot be read by")
                )
    return out


def _against(inc: Incompatibility, index: int, last: int, relation: str) -> Incompatibility:
    which = "latest " if index == last else ""
    return Incompatibility(
        inc.path,
        inc.rule,
        f"{relation} the {which}previous version at index {index} (oldest is 0): {inc.message}",
        inc.logical,
    )


def _matches(reader: Node, writer: Node) -> bool:
    """The specification's shallow "match" used to pick a reader union branch."""
    rk, wk = reader.kind, writer.kind
    if rk == "union" or wk == "union":
        return True
    if rk != wk:
        return (wk, rk) in _PROMOTIONS
    if isinstance(reader, NamedNode) and isinstance(writer, NamedNode):
        if (
            isinstance(reader, FixedNode)
            and isinstance(writer, FixedNode)
            and (reader.size != writer.size)
        ):
            return False
        return _names_match(reader, writer)
    if isinstance(reader, ArrayNode) and isinstance(writer, ArrayNode):
        return _matches(reader.items, writer.items)
    if isinstance(reader, MapNode) and isinstance(writer, MapNode):
        return _matches(reader.values, writer.values)
    return True


def _names_match(reader: NamedNode, writer: NamedNode) -> bool:
    # Unqualified names, as the specification and Avro Java do; reader aliases are full names.
    return reader.name == writer.name or writer.fullname in reader.aliases


def _first_match(branches: tuple[Node, ...], writer: Node) -> tuple[int, Node] | None:
    for i, branch in enumerate(branches):
        if _matches(branch, writer):
            return i, branch
    return None


class _Checker:
    """One reader/writer walk. ``memo`` holds record pairs known compatible or in progress."""

    __slots__ = ("depth", "in_progress", "low", "ok", "out", "strict")

    def __init__(self, out: list[Incompatibility], strict: bool) -> None:
        self.out = out
        self.strict = strict
        self.ok: set[tuple[str, str]] = set()
        self.in_progress: dict[tuple[str, str], int] = {}
        self.depth = 0
        # Shallowest in-progress pair assumed compatible while walking the current pair.
        self.low = 1 << 30

    def add(
        self,
        path: str,
        rule: str,
        message: str,
        logical: tuple[str | None, str | None] | None = None,
    ) -> None:
        self.out.append(Incompatibility(path or "/", rule, message, logical))

    def check(self, r: Node, w: Node, path: str, ctx: str) -> None:
        """Append every incompatibility of reader ``r`` with writer ``w`` at ``path``."""
        if r is w or (r.key is not None and r.key == w.key) or len(self.out) >= _MAX_FINDINGS:
            return
        rk, wk = r.kind, w.kind
        if isinstance(w, UnionNode):
            self._writer_union(r, w, path, ctx)
            return
        if isinstance(r, UnionNode):
            found = _first_match(r.branches, w)
            if found is None:
                self.add(
                    path,
                    MISSING_UNION_BRANCH,
                    f"{ctx}: the writer type {describe(w)} matches no branch of the reader "
                    f"union {describe(r)}: add a branch for it to the reader union",
                )
            else:
                self.check(found[1], w, path, ctx)
            return
        if rk != wk:
            if (wk, rk) in _PROMOTIONS:
                self._lossy(r, w, path, ctx)
                self._logical(r, w, path, ctx)
            else:
                self.add(
                    path,
                    TYPE_MISMATCH,
                    f"{ctx}: the reader type {describe(r)} cannot read the writer type "
                    f"{describe(w)}: Avro only promotes int to long/float/double, long to "
                    "float/double, float to double and string to/from bytes",
                )
            return
        if rk in PRIMITIVES:
            self._logical(r, w, path, ctx)
        elif isinstance(r, RecordNode) and isinstance(w, RecordNode):
            self._record(r, w, path, ctx)
        elif isinstance(r, EnumNode) and isinstance(w, EnumNode):
            self._name(r, w, path, ctx)
            missing = [s for s in w.symbols if s not in r.symbol_set]
            if missing and r.default is None:
                self.add(
                    path + "/symbols",
                    MISSING_ENUM_SYMBOLS,
                    f"{ctx}: the writer enum {w.fullname} has symbols {missing} that the reader "
                    f"enum {r.fullname} lacks, and the reader enum has no default: add the "
                    "symbols to the reader or give the reader enum a default",
                )
        elif isinstance(r, FixedNode) and isinstance(w, FixedNode):
            self._name(r, w, path, ctx)
            if r.size != w.size:
                self.add(
                    path + "/size",
                    FIXED_SIZE_MISMATCH,
                    f"{ctx}: the reader type {describe(r)} has size {r.size} but the writer "
                    f"type {describe(w)} has size {w.size}: a fixed's size cannot change",
                )
            self._logical(r, w, path, ctx)
        elif isinstance(r, ArrayNode) and isinstance(w, ArrayNode):
            self.check(r.items, w.items, path + "/items", f"array items of {ctx}")
        elif isinstance(r, MapNode) and isinstance(w, MapNode):
            self.check(r.values, w.values, path + "/values", f"map values of {ctx}")

    def _writer_union(self, r: Node, w: UnionNode, path: str, ctx: str) -> None:
        # Every branch the writer may pick must be readable: resolve each one on its own.
        for i, wb in enumerate(w.branches):
            bpath = f"{path}/{i}"
            bctx = f"{ctx} (writer union branch {i})"
            if isinstance(r, UnionNode):
                found = _first_match(r.branches, wb)
                if found is None:
                    self.add(
                        bpath,
                        MISSING_UNION_BRANCH,
                        f"{bctx}: the writer type {describe(wb)} matches no branch of the "
                        f"reader union {describe(r)}: add a branch for it to the reader union",
                    )
                else:
                    self.check(found[1], wb, bpath, bctx)
            elif _matches(r, wb):
                self.check(r, wb, bpath, bctx)
            else:
                self.add(
                    bpath,
                    TYPE_MISMATCH,
                    f"{bctx}: the reader type {describe(r)} cannot read the writer type "
                    f"{describe(wb)}, one of the writer union's branches: make the reader a "
                    "union that includes it",
                )

    def _name(self, r: NamedNode, w: NamedNode, path: str, ctx: str) -> None:
        if not _names_match(r, w):
            self.add(
                path + "/name",
                NAME_MISMATCH,
                f"{ctx}: the reader {r.kind} {r.fullname} does not match the writer {w.kind} "
                f"{w.fullname} by unqualified name or alias: keep the name or add "
                f"'{w.fullname}' to the reader's aliases",
            )

    def _lossy(self, r: Node, w: Node, path: str, ctx: str) -> None:
        exact_to = _LOSSY.get((w.kind, r.kind)) if self.strict else None
        if exact_to is not None:
            self.add(
                path,
                LOSSY_PROMOTION,
                f"{ctx}: the reader type {describe(r)} would round values of the writer type "
                f"{describe(w)} (integers are exact only up to {exact_to}), so a number could "
                f"change silently: keep the type {w.kind}, widen to an exact type (long, or a "
                "decimal in a new field), or convert the old records",
            )

    def _logical(self, r: Node, w: Node, path: str, ctx: str) -> None:
        if not self.strict:
            return  # Avro Java / Confluent: logical types do not take part in resolution
        rl = None if r.logical in _ANNOTATION_ONLY else r.logical
        wl = None if w.logical in _ANNOTATION_ONLY else w.logical
        if rl == wl:
            if rl == "decimal":
                if r.precision != w.precision:
                    self.add(
                        path + "/precision",
                        DECIMAL_PRECISION_MISMATCH,
                        f"{ctx}: the reader type {describe(r)} and the writer type {describe(w)} "
                        f"differ in decimal precision ({r.precision} vs {w.precision}): a "
                        "decimal's precision cannot change; add a new field instead",
                    )
                if r.scale != w.scale:
                    self.add(
                        path + "/scale",
                        DECIMAL_SCALE_MISMATCH,
                        f"{ctx}: the reader type {describe(r)} and the writer type {describe(w)} "
                        f"differ in decimal scale ({r.scale} vs {w.scale}), so every value "
                        "would be read scaled wrongly: add a new field instead",
                    )
            return
        self.add(
            path + "/logicalType",
            LOGICAL_TYPE_MISMATCH,
            f"{ctx}: the reader type {describe(r)} and the writer type {describe(w)} have "
            f"different logical types ({rl or 'none'} vs {wl or 'none'}), so values would be "
            "misinterpreted: keep the logical type or add a new field",
            (rl, wl),
        )

    def _record(self, r: RecordNode, w: RecordNode, path: str, ctx: str) -> None:
        self._name(r, w, path, ctx)
        pair = (r.fullname, w.fullname)
        if pair in self.ok:
            return
        seen_at = self.in_progress.get(pair)
        if seen_at is not None:
            # Recursive type: assume compatible (co-inductively) and remember that the result
            # of every pair between here and there depends on that assumption.
            self.low = min(self.low, seen_at)
            return
        self.depth += 1
        depth = self.depth
        self.in_progress[pair] = depth
        outer_low, self.low = self.low, 1 << 30
        before = len(self.out)
        wmap = w.field_map
        for rf in r.fields:
            wf = wmap.get(rf.name)
            if wf is None:
                for alias in rf.aliases:
                    wf = wmap.get(alias)
                    if wf is not None:
                        break
            if wf is None:
                if not rf.has_default:
                    self.add(
                        f"{path}/fields/{rf.name}",
                        READER_FIELD_MISSING_DEFAULT_VALUE,
                        f"reader field '{rf.name}' of record '{r.fullname}' (type "
                        f"{describe(rf.type)}) has no default and is missing from the writer "
                        "schema: add a default or keep the field",
                    )
                continue
            rt, wt = rf.type, wf.type
            # Identical field types are the common case; skip them before building strings.
            if rt is wt or (rt.key is not None and rt.key == wt.key):
                continue
            self.check(
                rt,
                wt,
                f"{path}/fields/{rf.name}/type",
                f"field '{rf.name}' of record '{r.fullname}'",
            )
        del self.in_progress[pair]
        self.depth -= 1
        # Cache success only if it did not lean on an outer pair's in-progress assumption.
        if self.low >= depth and len(self.out) == before:
            self.ok.add(pair)
        self.low = min(outer_low, self.low if self.low < depth else outer_low)
