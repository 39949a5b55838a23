"""Confluent Schema Registry REST API (AVRO) over ``registry.service.SchemaRegistry``.

Mounted at the root of the hub's app, so ``SchemaRegistryClient({"url": "http://hub:8080"})``,
``AvroSerializer`` and stock tools talk to it unchanged. Shapes and error codes follow Confluent's
API reference and what ``confluent_kafka.schema_registry`` sends and parses.

Contract
- Every answer, errors included, is ``application/vnd.schemaregistry.v1+json``. Errors are
  ``{"error_code": <Confluent code>, "message": <sentence>, "reason": <hub error code>}``, chosen
  from the one table ``CONFLUENT_ERRORS``; the router translates them itself
  (``RegistryRoute``), so it does not depend on the app's exception handlers.
- Requests may send ``application/vnd.schemaregistry.v1+json``, ``application/vnd.schemaregistry
  +json``, ``application/json`` (or ``application/octet-stream``, or no type); anything else
  answers 415. An ``Accept`` header that admits none of those answers 406.
- The JSON body is parsed here, not by FastAPI: malformed JSON answers HTTP 422 with
  ``error_code`` 422 and the parser's line and column. (Confluent's REST layer answers 400 for
  a parse error and 422 for a semantically invalid body; the hub answers 422 for both so that a
  client sees one "your request body is wrong" status, and keeps 42201 for invalid schemas.)
- Handlers are sync functions run in the thread pool; the service serialises writes itself.
- Every route declares its action: ``schema.read``, ``schema.write`` (register),
  ``schema.delete`` and ``registry.config`` (changing config or mode).
- Changing a compatibility level (``PUT``/``DELETE /config[/{subject}]``) is a governed
  configuration change (``governance.configchanges``, resource ``registry.config[:<subject>]``):
  it is recorded as change events, and refused with 403 (``two_person_required``) when the
  resource is under the two-person rule; the answers are Confluent's otherwise.
- Changing a mode (``PUT /mode[/{subject}]``) is one too (resource ``registry.mode[:<subject>]``),
  with Confluent's ``force``: IMPORT over a subject with versions needs ``force=true`` (42205).
  IMPORT is refused (403) where it would skip a level under the two-person rule, force or not.
- A soft delete drops the subject's own level (as Confluent's does): refused (403
  ``two_person_required``) while that level is under the two-person rule, so that only an
  approved removal of the level lets the subject go.
- Subjects are tenants' own (``hub.registry_scope``): another tenant's subject reads, checks
  and deletes as a missing one (40401, ids 40403, references as missing; the same recorded
  decision) and lists leave it out, unless the policy allows the reader every tenant
  (``tenant.all``); registering under it is refused (403 ``subject_owned``, naming no tenant),
  and so is creating a subject of a topic the principal's tenant does not own. Shared
  (hub-owned) subjects read for everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from core.errors import (
    HubError,
    InvalidInput,
    InvalidSchema,
    NotFound,
    SubjectNotFound,
    is_storage_full,
    storage_full,
)
from core.ports.policy import Principal
from domain.shown import shown
from governance.decisions import HeldDecision
from hub.api.deps import (
    MAX_INT64,
    authorize,
    authorize_held,
    authorize_hub_wide,
    decide_async,
    decision_context,
    held_decision,
    hub_of,
    path_resource,
    principal_of,
    read_json,
    route_of,
)
from hub.api.models import (
    CompatibilityAnswer,
    CompatibilityIn,
    CompatibilityLevel,
    CompatibilitySet,
    Mode,
    ModeIn,
    SchemaIn,
    SchemaOut,
    SubjectVersionOut,
    SubjectVersionRef,
)
from hub.api.models import SchemaId as SchemaIdOut
from hub.api.models import json_body as body_schema
from hub.registry_scope import RegistryScope, open_id
from registry.internal import (
    refuse_internal_subject,
    refuse_reserved_names,
)
from registry.service import (
    Reference,
    SchemaRegistry,
    StoredSchema,
    SubjectVersion,
)

log = logging.getLogger("hub.registry.api")

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_TYPES = frozenset(
    {
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
    }
)
_REQUEST_TYPES = ACCEPTED_TYPES | {"application/octet-stream"}
_ACCEPT_RANGES = ACCEPTED_TYPES | {"*/*", "application/*"}
_MAX_VERSION = 2**31 - 1

# The one table: hub error code -> (HTTP status, Confluent error_code). An error is looked up by
# its own ``code`` first, then by the ``code`` of each class it derives from, so a new subclass
# of e.g. ``NotFound`` still answers sensibly. Codes Confluent does not define (generic 4xx) use
# the HTTP status as error_code, as Confluent's own REST layer does.
CONFLUENT_ERRORS: Mapping[str, tuple[int, int]] = {
    "subject_not_found": (404, 40401),
    "version_not_found": (404, 40402),
    "schema_not_found": (404, 40403),
    "subject_soft_deleted": (404, 40404),
    "subject_not_soft_deleted": (404, 40405),
    "version_soft_deleted": (404, 40406),
    "version_not_soft_deleted": (404, 40407),
    "subject_compatibility_not_configured": (404, 40408),
    "not_found": (404, 404),
    "incompatible_schema": (409, 409),
    "conflict": (409, 409),
    "invalid_schema": (422, 42201),
    "invalid_version": (422, 42202),
    "invalid_compatibility_level": (422, 42203),
    "invalid_mode": (422, 42204),
    "read_only_mode": (422, 42205),
    "not_import_mode": (422, 42205),
    "version_in_use": (422, 42205),
    "operation_not_permitted": (422, 42205),
    "reference_exists": (422, 42206),
    "id_in_use": (422, 42207),
    "invalid_subject": (422, 42208),
    "reserved_name": (422, 42201),
    "malformed_json": (422, 422),
    "duplicate_key": (422, 422),
    "invalid_input": (422, 422),
    "payload_too_large": (413, 413),
    "unsupported_media_type": (415, 415),
    "not_acceptable": (406, 406),
    "unauthenticated": (401, 40101),
    "forbidden": (403, 40301),
    "subject_owned": (403, 40301),
    "internal_subject": (403, 40301),
    "storage_busy": (500, 50001),
    "storage_full": (507, 50001),  # the disk under the registry's store has no room
    # a tenant at its cap of subjects or versions (core.tenant_quota): its share is full
    "tenant_quota_exceeded": (507, 507),
    "retryable": (500, 50001),
    "hub_error": (500, 50001),
}
_STORE_ERROR = (500, 50001)


class _MediaTypeError(HubError):
    """The request's Content-Type or Accept header names no type this API speaks."""

    code = "unsupported_media_type"
    http_status = 415


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


def confluent_status(exc: HubError) -> tuple[int, int]:
    """(HTTP status, Confluent error_code) of a hub error, from ``CONFLUENT_ERRORS``."""
    found = CONFLUENT_ERRORS.get(exc.code)
    if found is not None:
        return found
    for cls in type(exc).__mro__:
        code = getattr(cls, "code", None)
        if isinstance(code, str) and code in CONFLUENT_ERRORS:
            return CONFLUENT_ERRORS[code]
    return _STORE_ERROR


def registry_error_handler(request: Request, exc: Exception) -> Response:
    """The Confluent-shaped answer for any exception raised while serving a registry path."""
    if isinstance(exc, HubError):
        status, error_code = confluent_status(exc)
        body = {"error_code": error_code, "message": exc.message, "reason": exc.code}
    elif isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        status, error_code = 422, 422
        body = {
            "error_code": error_code,
            "message": f"The request is invalid: {problems}.",
            "reason": "invalid_input",
        }
    elif is_storage_full(exc):  # an unexpected write that found the disk full
        err = storage_full(f"A registry write failed ({type(exc).__name__}: {exc}).")
        status, error_code = confluent_status(err)
        body = {"error_code": error_code, "message": err.message, "reason": err.code}
    else:
        log.exception("registry request failed", extra={"hub.route": route_of(request)})
        status, error_code = _STORE_ERROR
        body = {
            "error_code": error_code,
            "message": f"The registry's backing store failed ({type(exc).__name__}); "
            "retry, and report it if it persists.",
            "reason": "store_error",
        }
    return RegistryResponse(body, status_code=status)


class RegistryRoute(APIRoute):
    """A route that checks ``Accept`` and answers every failure in Confluent's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                _check_accept(request)
                return await handler(request)
            except Exception as exc:
                return registry_error_handler(request, exc)

        return guarded


router = APIRouter(
    tags=["schema-registry"], route_class=RegistryRoute, default_response_class=RegistryResponse
)


def install(app: FastAPI) -> None:
    """Mount the registry API at the app's root. Error translation travels with the routes."""
    app.include_router(router)
    install_lean_routes(app)


# -- request helpers ------------------------------------------------------------------------
def _check_accept(request: Request) -> None:
    check_accept(request.headers.get("accept"))


def check_accept(accept: str | None) -> None:
    """Raise ``not_acceptable`` (406) when an ``Accept`` header admits no type this API
    answers with; no header admits every type."""
    if not accept:
        return
    ranges = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if ranges & _ACCEPT_RANGES:
        return
    raise _MediaTypeError(
        f"Accept {accept!r} admits no type this API answers with: accept {MEDIA_TYPE}.",
        code="not_acceptable",
    )


async def json_body(request: Request) -> Any:
    """The request body as JSON (parsed here so that errors are the registry's own)."""
    check_content_type(request.headers.get("content-type"))
    return await read_json(request, exact_decimals=False)


def check_content_type(ctype: str | None) -> None:
    """Raise ``unsupported_media_type`` (415) for a request body type the registry does not
    read; no ``Content-Type`` is read as JSON."""
    if ctype and ctype.split(";")[0].strip().lower() not in _REQUEST_TYPES:
        raise _MediaTypeError(
            f"Content-Type {ctype!r} is not supported: send {MEDIA_TYPE}.",
            code="unsupported_media_type",
        )


def _registry(request: Request) -> SchemaRegistry:
    return hub_of(request).registry


def scope_for(
    hub: Any, principal: Principal, resource: str, context: Mapping[str, Any], route: str
) -> RegistryScope:
    """``principal``'s view of ``hub``'s registry for one request on ``resource``: a subject
    of another tenant is decided again as that tenant's (recorded, counted under ``route``)."""

    def decide(action: str, tenant: str) -> bool:
        decision = hub.policy.decide(principal, action, resource, {**context, "tenant": tenant})
        outcome = "allow" if decision.allow else "deny"
        hub.metrics.count_decision(action, outcome, route)
        return bool(decision.allow)

    return RegistryScope(hub.registry, principal, decide, hub.log)


def scope_of(request: Request) -> RegistryScope:
    """``scope_for`` a request (the principal its key names)."""
    return scope_for(
        hub_of(request),
        principal_of(request),
        path_resource(request.scope["path"]),
        decision_context(request),
        route_of(request),
    )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(
            f"Request body must be a JSON object, not {type(body).__name__}.",
            code="malformed_json",
        )
    return body


def _version_id(text: str) -> int | str:
    """A path version: ``latest``, ``-1`` or 1..2^31-1; raises ``invalid_version``."""
    if text.strip().lower() == "latest" or text.strip() == "-1":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= _MAX_VERSION:
        raise InvalidInput(
            f"The specified version {shown(text)} is not a valid version id: use an integer "
            f"between 1 and {_MAX_VERSION}, or 'latest' (-1).",
            code="invalid_version",
        )
    return number


def _page(items: Sequence[Any], offset: int, limit: int) -> list[Any]:
    start = max(offset, 0)
    return list(items[start : start + limit] if limit > 0 else items[start:])


class _Candidate:
    """A schema sent in a request body: ``{schema, schemaType, references}``; with ``scope``, a
    reference to a subject the principal may not read is refused as if it did not exist."""

    def __init__(
        self, registry: SchemaRegistry, body: Any, scope: RegistryScope | None = None
    ) -> None:
        obj = _object(body)
        text = obj.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise InvalidSchema(
                'The request has no schema: send {"schema": "<Avro schema as a JSON string>"}.'
            )
        schema_type = obj.get("schemaType") or "AVRO"
        if not isinstance(schema_type, str):
            raise InvalidSchema(f"schemaType {schema_type!r} is not a string: use AVRO.")
        for unsupported in ("metadata", "ruleSet"):
            if obj.get(unsupported):
                raise InvalidSchema(
                    f"{unsupported!r} (data contracts) is not supported by this registry: "
                    "register the schema without it."
                )
        self.text = text
        self.schema_type = schema_type.upper()
        self.references = tuple(_reference(registry, r, scope) for r in obj.get("references") or ())
        self.id = _optional_int(obj, "id")
        self.version = _optional_int(obj, "version")


def _reference(registry: SchemaRegistry, raw: Any, scope: RegistryScope | None = None) -> Reference:
    if not (
        isinstance(raw, dict)
        and isinstance(raw.get("name"), str)
        and isinstance(raw.get("subject"), str)
        and isinstance(raw.get("version"), int)
        and not isinstance(raw.get("version"), bool)
    ):
        raise InvalidSchema(
            f"Reference {shown(raw)} is invalid: each reference needs a string 'name', a string "
            "'subject' and an integer 'version'."
        )
    version: int = raw["version"]
    if scope is not None and not scope.readable(raw["subject"]):
        # the registry's own answers for a subject that does not exist, word for word
        if version == -1:
            raise InvalidSchema(
                f"Reference {raw['name']!r} points at subject {raw['subject']!r}, which has no "
                "live version: register it first."
            )
        raise InvalidSchema(
            f"Reference {raw['name']!r} points at subject {raw['subject']!r} version "
            f"{version}, which does not exist: register it first."
        )
    if version == -1:  # Confluent resolves -1 to the subject's latest version at registration
        try:
            version = registry.get_version(raw["subject"], "latest").version
        except NotFound as exc:
            raise InvalidSchema(
                f"Reference {raw['name']!r} points at subject {raw['subject']!r}, which has no "
                "live version: register it first."
            ) from exc
    elif version < 1:
        raise InvalidSchema(f"Reference {raw['name']!r} has version {version}: use 1 or more.")
    return Reference(raw["name"], raw["subject"], version)


def _optional_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name!r} must be a positive integer, not {shown(value)}.")
    return value


# -- route parameters -----------------------------------------------------------------------
CanRead = Annotated[Principal, Depends(authorize("schema.read"))]
CanWrite = Annotated[Principal, Depends(authorize("schema.write"))]
# Register stores its decision and its ``_schemas`` record in one transaction (one fsync).
CanWriteHeld = Annotated[Principal, Depends(authorize_held("schema.write"), scope="function")]
CanDelete = Annotated[Principal, Depends(authorize("schema.delete"))]
# The registry's levels and modes hold for every tenant's producers: decided hub-wide.
CanConfigure = Annotated[Principal, Depends(authorize_hub_wide("registry.config"))]
JsonBody = Annotated[Any, Depends(json_body)]
SubjectPrefix = Annotated[str, Query(alias="subjectPrefix")]
DefaultToGlobal = Annotated[bool, Query(alias="defaultToGlobal")]
LatestOnly = Annotated[bool, Query(alias="latestOnly")]
SchemaId = Annotated[int, Path(ge=-(2**31), le=2**31 - 1, description="a global schema id")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_INT64)]
PageLimit = Annotated[int, Query(ge=-1, le=MAX_INT64, description="-1: no limit")]


# -- response shapes ------------------------------------------------------------------------
# The schema itself as JSON, as registered: an Avro record (or enum, fixed...) is an object, a
# union an array of types, a primitive type a string.
_AVRO_NAMED = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "doc": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
}
_RAW_SCHEMA: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            MEDIA_TYPE: {
                "schema": {
                    "description": "The schema itself as JSON, as registered.",
                    "anyOf": [
                        _AVRO_NAMED,
                        {"type": "array", "items": {"anyOf": [{"type": "string"}, _AVRO_NAMED]}},
                        {"type": "string"},
                    ],
                }
            }
        }
    }
}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return body_schema(model, MEDIA_TYPE, "application/vnd.schemaregistry+json")


def schema_fields(stored: StoredSchema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stored.schema_type != "AVRO":  # Confluent omits schemaType for AVRO
        out["schemaType"] = stored.schema_type
    if stored.references:
        out["references"] = [r.as_json() for r in stored.references]
    out["schema"] = stored.text
    return out


def _version_json(sv: SubjectVersion) -> dict[str, Any]:
    return {"subject": sv.subject, "version": sv.version, "id": sv.id, **schema_fields(sv.schema)}


def _raw_schema(text: str) -> Response:
    return Response(content=text, media_type=MEDIA_TYPE)


# -- schemas --------------------------------------------------------------------------------
@router.get("/schemas/types", response_model=list[str])
def schema_types(_: CanRead) -> list[str]:
    return ["AVRO"]


@router.get("/schemas", response_model=list[SubjectVersionOut])
def list_schemas(
    request: Request,
    _: CanRead,
    subject_prefix: SubjectPrefix = "",
    deleted: bool = False,
    latest_only: LatestOnly = False,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[dict[str, Any]]:
    registry = _registry(request)
    out: list[dict[str, Any]] = []
    subjects = registry.subjects(include_deleted=deleted, prefix=subject_prefix)
    for subject in scope_of(request).readable_subjects(subjects):
        numbers = registry.versions(subject, include_deleted=deleted)
        for number in numbers[-1:] if latest_only else numbers:
            out.append(_version_json(registry.get_version(subject, number, deleted)))
    return _page(out, offset, limit)


@router.get("/schemas/ids/{schema_id}", response_model=SchemaOut)
def schema_by_id(
    request: Request,
    _: CanRead,
    schema_id: SchemaId,
    subject: str | None = None,
    format: str | None = None,  # accepted for client compatibility; AVRO has one format
) -> dict[str, Any]:
    scope_of(request).require_readable_id(schema_id)  # first: unknown asks as foreign
    stored = _registry(request).get_by_id(schema_id)
    return schema_fields(stored)


@router.get("/schemas/ids/{schema_id}/schema", responses=_RAW_SCHEMA)
def raw_schema_by_id(request: Request, schema_id: SchemaId, _: CanRead) -> Response:
    scope_of(request).require_readable_id(schema_id)  # first: unknown asks as foreign
    stored = _registry(request).get_by_id(schema_id)
    return _raw_schema(stored.text)


@router.get("/schemas/ids/{schema_id}/subjects", response_model=list[str])
def subjects_of_id(
    request: Request,
    _: CanRead,
    schema_id: SchemaId,
    subject: str | None = None,
    deleted: bool = False,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[str]:
    scope = scope_of(request)
    scope.require_readable_id(schema_id)  # first: an unknown id asks as a foreign one
    found = _registry(request).subject_versions_of(schema_id, include_deleted=deleted)
    names = sorted({sv.subject for sv in found if subject is None or sv.subject == subject})
    return _page(scope.readable_subjects(names), offset, limit)


@router.get("/schemas/ids/{schema_id}/versions", response_model=list[SubjectVersionRef])
def versions_of_id(
    request: Request,
    _: CanRead,
    schema_id: SchemaId,
    subject: str | None = None,
    deleted: bool = False,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[dict[str, Any]]:
    scope = scope_of(request)
    scope.require_readable_id(schema_id)  # first: an unknown id asks as a foreign one
    found = _registry(request).subject_versions_of(schema_id, include_deleted=deleted)
    readable = set(scope.readable_subjects({sv.subject for sv in found}))
    pairs = [
        {"subject": sv.subject, "version": sv.version}
        for sv in found
        if (subject is None or sv.subject == subject) and sv.subject in readable
    ]
    return _page(pairs, offset, limit)


# -- subjects -------------------------------------------------------------------------------
@router.get("/subjects", response_model=list[str])
def list_subjects(
    request: Request,
    _: CanRead,
    subject_prefix: SubjectPrefix = "",
    deleted: bool = False,
    deleted_only: bool = False,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[str]:
    registry = _registry(request)
    if deleted_only:
        live = set(registry.subjects(prefix=subject_prefix))
        names = [
            s
            for s in registry.subjects(include_deleted=True, prefix=subject_prefix)
            if s not in live
        ]
    else:
        names = registry.subjects(include_deleted=deleted, prefix=subject_prefix)
    return _page(scope_of(request).readable_subjects(names), offset, limit)


@router.get("/subjects/{subject}/versions", response_model=list[int])
def list_versions(
    request: Request,
    _: CanRead,
    subject: str,
    deleted: bool = False,
    deleted_only: bool = False,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[int]:
    registry = _registry(request)
    scope_of(request).require_readable(subject)
    if deleted_only:
        every = registry.versions(subject, include_deleted=True)
        try:
            live = set(registry.versions(subject))
        except SubjectNotFound:  # every version is soft-deleted
            live = set()
        numbers = [v for v in every if v not in live]
    else:
        numbers = registry.versions(subject, include_deleted=deleted)
    return _page(numbers, offset, limit)


@router.get("/subjects/{subject}/versions/{version}", response_model=SubjectVersionOut)
def get_version(
    request: Request,
    _: CanRead,
    subject: str,
    version: str,
    deleted: bool = False,
    format: str | None = None,
) -> dict[str, Any]:
    scope_of(request).require_readable(subject)
    sv = _registry(request).get_version(subject, _version_id(version), include_deleted=deleted)
    return _version_json(sv)


@router.get("/subjects/{subject}/versions/{version}/schema", responses=_RAW_SCHEMA)
def get_version_schema(
    request: Request,
    _: CanRead,
    subject: str,
    version: str,
    deleted: bool = False,
) -> Response:
    scope_of(request).require_readable(subject)
    sv = _registry(request).get_version(subject, _version_id(version), include_deleted=deleted)
    return _raw_schema(sv.schema.text)


@router.get("/subjects/{subject}/versions/{version}/referencedby", response_model=list[int])
def referenced_by(
    request: Request,
    _: CanRead,
    subject: str,
    version: str,
    offset: PageOffset = 0,
    limit: PageLimit = -1,
) -> list[int]:
    scope = scope_of(request)
    scope.require_readable(subject)
    ids = _registry(request).referenced_by(subject, _version_id(version))
    return _page([i for i in ids if scope.readable_id(i)], offset, limit)


@router.post(
    "/subjects/{subject}/versions", response_model=SchemaIdOut, openapi_extra=_body(SchemaIn)
)
def register(
    request: Request,
    _: CanWriteHeld,
    body: JsonBody,
    subject: str,
    normalize: bool = False,  # accepted: the registry always compares canonical forms
) -> dict[str, Any]:
    return {"id": register_body(scope_of(request), subject, body, held_decision(request))}


def register_body(scope: RegistryScope, subject: str, body: Any, held: HeldDecision | None) -> int:
    """Register the schema a request's body holds under ``subject`` (internal subjects refused,
    another tenant's refused: ``RegistryScope.claim``); with ``held``, the schema's record is
    appended in the held decision's transaction. The id. Shared by this route and its lean twin
    (``hub.api.registry_fast``)."""
    refuse_internal_subject(subject, "registering a schema version under")
    registry = scope.registry
    # one arrival for the claim's and the registration's reads: the registration's step 1
    # applies what the claim's catch-up read (``SchemaRegistry.arrival``)
    with registry.arrival():
        tenant = scope.claim(subject)
        candidate = _Candidate(registry, body, scope)
        refuse_reserved_names(registry, subject, candidate.text)
        sv = registry.register(
            subject,
            candidate.text,
            candidate.schema_type,
            candidate.references,
            schema_id=candidate.id,
            version=candidate.version,
            append=None if held is None else held.commit,
            tenant=tenant,
        )
    return int(sv.id)


@router.post("/subjects/{subject}", response_model=SubjectVersionOut, openapi_extra=_body(SchemaIn))
def lookup(
    request: Request,
    _: CanRead,
    body: JsonBody,
    subject: str,
    normalize: bool = False,
    deleted: bool = False,
    format: str | None = None,
) -> dict[str, Any]:
    registry = _registry(request)
    scope = scope_of(request)
    candidate = _Candidate(registry, body, scope)  # a bad body first, as for a missing subject
    scope.require_readable(subject)
    sv = registry.lookup(
        subject,
        candidate.text,
        candidate.schema_type,
        candidate.references,
        include_deleted=deleted,
    )
    return _version_json(sv)


@router.delete("/subjects/{subject}/versions/{version}", response_model=int)
def delete_version(
    request: Request,
    _: CanDelete,
    subject: str,
    version: str,
    permanent: bool = False,
) -> int:
    refuse_internal_subject(subject, "deleting a version of")
    scope_of(request).claim(subject, "schema.delete")
    return _registry(request).delete_version(subject, _version_id(version), permanent=permanent)


@router.delete("/subjects/{subject}", response_model=list[int])
def delete_subject(
    request: Request,
    principal: CanDelete,
    subject: str,
    permanent: bool = False,
) -> list[int]:
    refuse_internal_subject(subject, "deleting")
    scope_of(request).claim(subject, "schema.delete")
    if not permanent:
        _refuse_ungoverned_level_drop(request, subject)
    changes = getattr(hub_of(request), "config_changes", None)
    if changes is None or permanent:  # the bare registry app has no change events to write
        return _registry(request).delete_subject(subject, permanent=permanent)
    # the level and mode a soft delete drops are governed changes in the delete's transaction
    on_drop = changes.subject_delete(principal, f"{request.method} {request.url.path}")
    deleted = _registry(request).delete_subject(subject, on_drop=on_drop)
    changes.store.refresh()
    return deleted


def _refuse_ungoverned_level_drop(request: Request, subject: str) -> None:
    """A soft delete drops the subject's own compatibility level (as Confluent's does); when
    that level is under the two-person rule one ``schema.delete`` holder would remove it alone,
    so the delete is refused (``two_person_required``) until the level's removal was proposed
    and approved by a second person. The level is not kept across the delete: a re-created
    subject starting from the global level is what Confluent clients expect."""
    changes = getattr(hub_of(request), "config_changes", None)
    if changes is None:
        return
    from governance.configchanges import TwoPersonRequired, registry_resource

    resource = registry_resource(subject)
    if _registry(request).own_compatibility(subject) is None:
        return
    if changes.requires_two_person(resource):
        raise TwoPersonRequired(
            f"Deleting subject {subject!r} drops its compatibility level {resource!r}, which is "
            "under the two-person rule: propose removing the level (POST /v1/config/changes "
            f'{{"resource": "{resource}", "value": null, "reason": ...}}), have a second '
            "person approve it, then delete the subject."
        )


# -- compatibility --------------------------------------------------------------------------
def _compatibility_answer(
    scope: RegistryScope, subject: str, body: Any, version: int | str | None, verbose: bool
) -> dict[str, Any]:
    registry = scope.registry
    candidate = _Candidate(registry, body, scope)
    # a subject the principal may not read is checked as a missing one is (the same answer)
    problems = registry.check(
        subject,
        candidate.text,
        candidate.schema_type,
        candidate.references,
        version,
        as_missing=not scope.readable(subject),
    )
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        messages = [
            f"{{errorType:'{p.rule}', description:'{p.message}', additionalInfo:'{p.path}'}}"
            for p in problems
        ]
        if problems:
            messages.append(f"{{compatibility: '{registry.compatibility(subject)}'}}")
        answer["messages"] = messages
    return answer


@router.post(
    "/compatibility/subjects/{subject}/versions/{version}",
    response_model=CompatibilityAnswer,
    response_model_exclude_unset=True,  # "messages" only when verbose, as Confluent answers
    openapi_extra=_body(SchemaIn),
)
def test_compatibility(
    request: Request,
    _: CanRead,
    body: JsonBody,
    subject: str,
    version: str,
    verbose: bool = False,
    normalize: bool = False,
) -> dict[str, Any]:
    version_id = _version_id(version)
    return _compatibility_answer(scope_of(request), subject, body, version_id, verbose)


@router.post(
    "/compatibility/subjects/{subject}/versions",
    response_model=CompatibilityAnswer,
    response_model_exclude_unset=True,  # "messages" only when verbose, as Confluent answers
    openapi_extra=_body(SchemaIn),
)
def test_compatibility_all(
    request: Request,
    _: CanRead,
    body: JsonBody,
    subject: str,
    verbose: bool = False,
    normalize: bool = False,
) -> dict[str, Any]:
    return _compatibility_answer(scope_of(request), subject, body, None, verbose)


# -- config and mode ------------------------------------------------------------------------
def _level_of(body: Any) -> str:
    obj = _object(body)
    level = obj.get("compatibility", obj.get("compatibilityLevel"))
    if not isinstance(level, str):
        raise InvalidInput(
            'The body must name a level: {"compatibility": "BACKWARD"} (or FORWARD, FULL, '
            "NONE, and their _TRANSITIVE forms).",
            code="invalid_compatibility_level",
        )
    return level


def _mode_of(body: Any) -> str:
    mode = _object(body).get("mode")
    if not isinstance(mode, str):
        raise InvalidInput(
            'The body must name a mode: {"mode": "READWRITE"} (or READONLY, '
            "READONLY_OVERRIDE, IMPORT).",
            code="invalid_mode",
        )
    return mode


@router.get("/config", response_model=CompatibilityLevel)
def get_global_config(request: Request, _: CanRead) -> dict[str, Any]:
    return {"compatibilityLevel": _registry(request).compatibility()}


def _governed_set(
    request: Request, principal: Principal, subject: str | None, level: str | None
) -> None:
    """Change a level through ``governance.configchanges`` (a recorded change event, refused
    under the two-person rule); straight on the registry when the app has no governance (the
    bare registry app, which has no event publisher)."""
    hub = hub_of(request)
    if getattr(hub, "publisher", None) is None:
        registry = _registry(request)
        if level is None:
            registry.delete_compatibility(subject)
        else:
            registry.set_compatibility(level, subject)
        return
    from governance.configchanges import registry_resource

    reason = f"{request.method} {request.url.path}"
    # No audit action on hub.audit here: the change is evidenced by its own events
    # (hub.config-changes, and ConfigChanged on hub.config), and the first audit action
    # would register hub.audit's schema on _schemas in the middle of a client's requests.
    hub.config_changes.set_direct(principal, registry_resource(subject), level, reason, audit=False)


@router.put("/config", response_model=CompatibilitySet, openapi_extra=_body(CompatibilityIn))
def set_global_config(
    request: Request,
    principal: CanConfigure,
    body: JsonBody,
) -> dict[str, Any]:
    level = _registry(request).check_compatibility_level(_level_of(body))
    _governed_set(request, principal, None, level)
    return {"compatibility": level}


@router.delete("/config", response_model=CompatibilityLevel)
def delete_global_config(request: Request, principal: CanConfigure) -> dict[str, Any]:
    previous = _registry(request).compatibility()
    _governed_set(request, principal, None, None)
    return {"compatibilityLevel": previous}


@router.get("/config/{subject}", response_model=CompatibilityLevel)
def get_subject_config(
    request: Request,
    _: CanRead,
    subject: str,
    default_to_global: DefaultToGlobal = False,
) -> dict[str, Any]:
    scope_of(request).require_readable(subject)
    level = _registry(request).compatibility(subject, default_to_global=default_to_global)
    return {"compatibilityLevel": level}


@router.put(
    "/config/{subject}", response_model=CompatibilitySet, openapi_extra=_body(CompatibilityIn)
)
def set_subject_config(
    request: Request,
    principal: CanConfigure,
    body: JsonBody,
    subject: str,
) -> dict[str, Any]:
    refuse_internal_subject(subject, "changing the compatibility level of")
    level = _registry(request).check_compatibility_level(_level_of(body))
    _governed_set(request, principal, subject, level)
    return {"compatibility": level}


@router.delete("/config/{subject}", response_model=CompatibilityLevel)
def delete_subject_config(
    request: Request, subject: str, principal: CanConfigure
) -> dict[str, Any]:
    refuse_internal_subject(subject, "changing the compatibility level of")
    # A subject without a level of its own answers 40408, as before any change is written.
    previous = _registry(request).compatibility(subject, default_to_global=False)
    _governed_set(request, principal, subject, None)
    return {"compatibilityLevel": previous}


@router.get("/mode", response_model=Mode)
def get_global_mode(request: Request, _: CanRead) -> dict[str, Any]:
    return {"mode": _registry(request).mode()}


def _refuse_ungoverned_import(request: Request, subject: str | None, mode: str) -> None:
    """``ConfigChanges.refuse_ungoverned_import`` for IMPORT, before Confluent's ``force`` rule
    (a 403 whatever ``force``); the bare registry app has no governance to ask."""
    changes = getattr(hub_of(request), "config_changes", None)
    if mode.upper() == "IMPORT" and changes is not None:
        changes.refuse_ungoverned_import(subject)


def _governed_mode(
    request: Request, principal: Principal, subject: str | None, mode: str, force: bool
) -> str:
    """Set a mode as a governed change (``registry.mode[:<subject>]`` through
    ``governance.configchanges``: ``ConfigChanged`` with the actor, the old and the new mode on
    ``hub.config``, a leaf of the ledger like every record), after Confluent's ``force`` rule
    (``SchemaRegistry.check_mode_change``) and the IMPORT guard of two-person levels; straight
    on the registry in the bare registry app, which has no event publisher."""
    registry = _registry(request)
    _refuse_ungoverned_import(request, subject, mode)  # first: force does not lift it
    mode = registry.check_mode_change(mode, subject, force)
    hub = hub_of(request)
    if getattr(hub, "publisher", None) is None:
        return registry.set_mode(mode, subject, force)
    from governance.configchanges import registry_mode_resource

    reason = f"{request.method} {request.url.path}" + (" force=true" if force else "")
    # no hub.audit action, as for a level (_governed_set): the change events are the evidence
    hub.config_changes.set_direct(
        principal, registry_mode_resource(subject), mode, reason, audit=False
    )
    return mode


# ``force`` has Confluent's meaning: IMPORT over a subject with versions (globally: while any
# non-internal subject has) is refused with 42205 unless force=true.
Force = Annotated[
    bool,
    Query(description="Set IMPORT although the subject (or, globally, any subject) has versions."),
]


@router.put("/mode", response_model=Mode, openapi_extra=_body(ModeIn))
def set_global_mode(
    request: Request,
    principal: CanConfigure,
    body: JsonBody,
    force: Force = False,
) -> dict[str, Any]:
    return {"mode": _governed_mode(request, principal, None, _mode_of(body), force)}


@router.get("/mode/{subject}", response_model=Mode)
def get_subject_mode(
    request: Request,
    _: CanRead,
    subject: str,
    default_to_global: DefaultToGlobal = True,
) -> dict[str, Any]:
    scope_of(request).require_readable(subject)
    return {"mode": _registry(request).mode(subject)}


@router.put("/mode/{subject}", response_model=Mode, openapi_extra=_body(ModeIn))
def set_subject_mode(
    request: Request,
    principal: CanConfigure,
    body: JsonBody,
    subject: str,
    force: Force = False,
) -> dict[str, Any]:
    refuse_internal_subject(subject, "changing the mode of")
    return {"mode": _governed_mode(request, principal, subject, _mode_of(body), force)}


# -- lean routes ----------------------------------------------------------------------------
# The reads serialisers send on their hot path, served by plain ``async`` Starlette routes put
# ahead of their FastAPI twins (which stay for the OpenAPI document and as the reference the
# tests compare them with, byte for byte): no thread-pool hop for the dependency and another
# for the handler, no dependency solving, no response-model validation. They enforce exactly
# what the twins do, in the same order: ``Accept`` (406), the key (AuthMiddleware, outside),
# the ``schema.read`` decision on the request path with the same context, counted in the same
# metrics and recorded (``decide_async``: a synced read awaits its fsync without a thread),
# then the path parameter (pydantic's own error for the same type), then the lookup; every
# failure in Confluent's shape through ``registry_error_handler``.
_SCHEMA_ID = TypeAdapter(SchemaId)


async def authorize_async(request: Request, action: str) -> Principal:
    """``hub.api.deps.authorize(action)`` for an async route: same decision, record, metrics
    and errors, awaited in the event loop."""
    principal = principal_of(request)
    decision = await decide_async(
        hub_of(request),
        route_of(request),
        principal,
        action,
        request.url.path,
        decision_context(request),
    )
    request.state.decision = decision  # as ``settle`` leaves it
    return principal


def _path_schema_id(request: Request) -> int:
    raw = request.path_params["schema_id"]
    try:
        return int(_SCHEMA_ID.validate_python(raw))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("path", "schema_id")} for e in exc.errors(include_url=False)]
        ) from None


def _lean(
    path: str, answer: Callable[[Request], Coroutine[Any, Any, Response]], name: str
) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            _check_accept(request)
            return await answer(request)
        except Exception as exc:
            return registry_error_handler(request, exc)

    route = Route(path, endpoint, methods=["GET"], name=name, include_in_schema=False)
    route.methods = {"GET"}  # as the FastAPI twin: HEAD answers 405
    return route


async def _readable_id(request: Request, schema_id: int) -> None:
    """``RegistryScope.require_readable_id`` for an async route: in the loop when the id is
    the principal's own or shared (no decision to ask), else (another tenant's, or unknown:
    the same question) in the thread pool."""
    if not open_id(_registry(request), schema_id, principal_of(request).tenant):
        await run_in_threadpool(scope_of(request).require_readable_id, schema_id)


async def _lean_schema_by_id(request: Request) -> Response:
    await authorize_async(request, "schema.read")
    schema_id = _path_schema_id(request)
    await _readable_id(request, schema_id)
    stored = _registry(request).get_by_id(schema_id)
    # SchemaOut's serialisation: its declared member first, then the others as given
    body: dict[str, Any] = {"schema": stored.text}
    body.update(schema_fields(stored))
    return RegistryResponse(body)


async def _lean_raw_schema_by_id(request: Request) -> Response:
    await authorize_async(request, "schema.read")
    schema_id = _path_schema_id(request)
    await _readable_id(request, schema_id)
    stored = _registry(request).get_by_id(schema_id)
    return _raw_schema(stored.text)


LEAN_ROUTES = (
    _lean("/schemas/ids/{schema_id}", _lean_schema_by_id, "schema_by_id_lean"),
    _lean("/schemas/ids/{schema_id}/schema", _lean_raw_schema_by_id, "raw_schema_by_id_lean"),
)


def install_lean_routes(app: FastAPI) -> None:
    """Put the lean routes ahead of every other route of ``app`` (first match wins)."""
    app.router.routes[:0] = list(LEAN_ROUTES)
