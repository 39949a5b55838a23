"""One YAML mapping, one value per key: the YAML twin of ``core.jsonkeys``.

PyYAML keeps the last value of a repeated key silently, as Python's ``json`` does; a file of a
governed change (a rule set, a config value, the settings) read one way by its reviewer and
another by the hub is refused instead (``duplicate_key``), naming the key and its line.
"""

from __future__ import annotations

from typing import Any

import yaml

from core.errors import InvalidInput

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


class _UniqueLoader(_Base):  # type: ignore[misc]
    """A safe loader whose mappings refuse a key given twice (merge keys ``<<`` excepted)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: the base class refuses it
                    break
                if repeated:
                    line = key_node.start_mark.line + 1
                    raise _Repeated(key, line)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Repeated(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


def load_unique(text: str, where: str) -> Any:
    """``text`` as YAML (a safe load), or ``InvalidInput`` naming a key repeated in one
    mapping (``duplicate_key``) or the YAML error (``invalid_yaml``); ``where`` names the text."""
    try:
        return yaml.load(text, Loader=_UniqueLoader)
    except _Repeated as exc:
        raise InvalidInput(
            f"{where} is ambiguous YAML: key {exc.key!r} appears twice in one mapping (line "
            f"{exc.line}): give it once; parsers disagree on which value a repeated key has.",
            code="duplicate_key",
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where} is not valid YAML: {exc}.", code="invalid_yaml") from exc
