"""The native extension for the tests that compare it with the Python reference: under CI a
missing build fails (``make setup`` builds it), elsewhere such a test skips loudly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra import in_ci


def native_module(needs: str | None = None) -> Any:
    """``hub_native``, which must hold ``needs`` (a build older than that function fails)."""
    try:
        import hub_native  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if in_ci():
            pytest.fail("hub_native is not built: `make setup` runs native/build.sh (needs cargo).")
        pytest.skip("LOUD: hub_native is not built (run `make setup` with cargo installed).")
    if needs is not None and not hasattr(hub_native, needs):
        pytest.fail(f"hub_native predates {needs}: rerun `make setup`.")
    return hub_native
