"""``hub_native`` for the tests of its hot loops: skipped with a loud reason where it is not
built on a developer's machine; in CI (``CI=true``) a missing module is an import error."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def native_module() -> ModuleType:
    """The built ``hub_native`` module (``make setup`` runs native/build.sh; needs cargo)."""
    if os.environ.get("CI") == "true":
        return __import__("hub_native")
    return pytest.importorskip(
        "hub_native",
        reason="LOUD: hub_native is not built (make setup runs native/build.sh; needs cargo)",
    )
