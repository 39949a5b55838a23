"""Issue 10 item 8: the OpenAPI document can drive a contract test. Every operation declares a
typed success answer, its request body (POST/PUT), its errors in the shared error shape, and
bounds on every integer it takes."""

from __future__ import annotations

from typing import Any

import pytest

from .test_route_matrix import DOC, OPERATIONS

# POST routes that take no body at all (their input is the path and the query).
NO_BODY = {
    ("post", "/v1/retention/run"),
    ("post", "/v1/ledger/verify"),
    ("post", "/v1/projections/{name}/rebuild"),
    ("post", "/v1/evidence"),
    ("post", "/v1/tier/offload"),  # query parameters, like hub tier offload's options
}
IDS = [f"{m.upper()} {p}" for m, p, _ in OPERATIONS]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        resolved: dict[str, Any] = DOC["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _typed(schema: dict[str, Any]) -> bool:
    """A schema that says something: a model, an array of something, a scalar, or a map of
    typed values; not ``{}`` nor a bare object of anything."""
    schema = _resolve(schema)
    if "anyOf" in schema:
        return all(_typed(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return _typed(schema.get("items", {}))
    if kind == "object":
        extra = schema.get("additionalProperties")
        return bool(schema.get("properties")) or (isinstance(extra, dict) and bool(extra))
    return kind in {"string", "integer", "number", "boolean"}


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_success_answers_are_typed(method: str, path: str, op: dict[str, Any]) -> None:
    ok = [s for s in op["responses"] if s.startswith("2")]
    assert ok, "no success response"
    for status in ok:
        content = op["responses"][status].get("content", {})
        assert content, f"{status} declares no content"
        for media, body in content.items():
            assert _typed(body.get("schema", {})), (status, media, body)


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_bodies_are_declared(method: str, path: str, op: dict[str, Any]) -> None:
    if method not in {"post", "put"} or (method, path) in NO_BODY:
        return
    body = op.get("requestBody")
    assert body and body.get("content"), f"{method.upper()} {path} declares no request body"
    for media, spec in body["content"].items():
        schema = spec.get("schema", {})
        assert _typed(schema) or schema.get("format") == "binary", (media, schema)


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_errors_use_the_shared_shape(method: str, path: str, op: dict[str, Any]) -> None:
    if path in ("/health", "/ready"):  # the probes: no credentials, no policy
        return
    for status in ("401", "403", "404", "422"):
        assert status in op["responses"], f"{status} not declared"
        for body in op["responses"][status]["content"].values():
            assert body["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    error = DOC["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error_code", "reason", "message"}


def _integers(schema: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    schema = _resolve(schema)
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "integer":
        found.append((where, schema))
    for i, sub in enumerate(schema.get("anyOf", [])):
        found += _integers(sub, f"{where}|{i}")
    for name, sub in schema.get("properties", {}).items():
        found += _integers(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _integers(schema["items"], f"{where}[]")
    return found


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_integer_input_is_bounded(method: str, path: str, op: dict[str, Any]) -> None:
    inputs = [(p["name"], p["schema"]) for p in op.get("parameters", [])]
    for media, spec in (op.get("requestBody") or {}).get("content", {}).items():
        inputs.append((f"body({media})", spec.get("schema", {})))
    for name, schema in inputs:
        for where, ints in _integers(schema, name):
            assert "maximum" in ints and "minimum" in ints, f"{where} is unbounded: {ints}"
