"""One-shot commands without pandas (issue 13, session 23).

pyarrow imports pandas the first time it converts Python values or hands back NumPy ones
(``pa.array(list)`` with an inferred type, ``Array.to_numpy``): only to ask whether a value is a
pandas object, or to learn pandas' null markers. A command that records one run or lineage
event paid that import, 0.2-0.4 CPU s (0.75 s wall at load 11), and used nothing of pandas.

:func:`without_pandas` makes pandas unimportable for the length of such a command. While it
cannot be imported no pandas object can exist, so pyarrow's answers (not a pandas object, no
pandas null) are the ones it would give with pandas loaded: the same arrays, bytes and hashes.
Code that does need pandas meanwhile fails loudly (ModuleNotFoundError naming the command's
choice), never silently. After the command, the first import of pandas in the same process
(tests, an embedding program) goes through, and pyarrow is then told pandas is there: its
pandas shim remembers one failed attempt, which would otherwise read a pandas Series given to
``pa.array`` as a plain sequence.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_NAME = "pandas"


@contextmanager
def without_pandas(command: str) -> Iterator[None]:
    """pandas unimportable while the block runs (nothing to do when it is already imported)."""
    if _NAME in sys.modules or any(isinstance(f, _Gate) for f in sys.meta_path):
        yield
        return
    gate = _Gate(command)
    sys.meta_path.insert(0, gate)
    try:
        yield
    finally:
        gate.command = None  # open: a later import goes through and pyarrow learns of it


class _Gate:
    """The finder in front of ``sys.meta_path``: refuses pandas while ``command`` is set; once
    it is None, the first import of pandas removes the gate and loads pandas as usual, then
    tells pyarrow."""

    def __init__(self, command: str) -> None:
        self.command: str | None = command

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname != _NAME:
            return None
        if self.command is not None:
            raise ModuleNotFoundError(
                f"pandas is not loaded during `{self.command}`: the command hands pyarrow no "
                "pandas object (hub.nopandas). Load it in a command that needs it.",
                name=fullname,
            )
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenTellArrow(spec.loader)  # type: ignore[assignment]
        return spec


class _ThenTellArrow:
    """pandas' own loader, then pyarrow's pandas shim asked to import it again (it is in
    ``sys.modules`` by then: no cost) so that it knows pandas is there."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        made: ModuleType | None = self._loader.create_module(spec)
        return made

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        arrow = sys.modules.get("pyarrow.lib")
        if arrow is not None:
            arrow._pandas_api.compat  # noqa: B018  # its import, with raise_=True: now found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
