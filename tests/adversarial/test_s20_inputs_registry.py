"""Hostile schema texts at the registry's HTTP route (s20).

A schema of 5,000 nested unions (``[[[...\"int\"...]]]``, 10 KB) was answered 500
``store_error`` "The registry's backing store failed (RecursionError)": the reserved-name
check ran ``json.loads`` on the text before the registry's own parser (which refuses it as
nested too deeply) and let the RecursionError escape. Now it is 422 ``invalid_schema``.
"""

from __future__ import annotations

import pytest

from tests.adversarial._api import Api


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_deeply_nested_schema_is_invalid_not_a_store_failure(api: Api, depth: int) -> None:
    text = "[" * depth + '"int"' + "]" * depth
    r = api.client.post("/subjects/deep-value/versions", json={"schema": text}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_schema" and "nested too deeply" in r.text, r.text
