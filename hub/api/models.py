"""The HTTP contract's shapes: request bodies of routes that read their body themselves, typed
success answers, and the one error shape.

Models of open answers (a change summary, a hold, a projection's status) name the members every
answer has and allow more (``Open``), so that a new member is not a breaking change; the
OpenAPI document still types every member it names.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_INT64 = 2**63 - 1  # the bound of every integer input (SQLite INTEGER, Avro long)


class Open(BaseModel):
    """An answer with the members below, and possibly more."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error answer: ``error_code`` (HTTP status x 100 + n, or Confluent's code on the
    registry paths), ``reason`` (a stable machine-readable code) and a full-sentence ``message``."""

    error_code: int
    reason: str
    message: str


# Error statuses any route may answer: bad or missing credentials, a policy denial, something
# named that does not exist, a conflict with stored state, a body too big, a bad request, and a
# policy decision that could not be recorded (retry).
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 422, 503)
REGISTRY_ERROR_STATUSES = (*ERROR_STATUSES, 406, 415)


# -- request bodies read by the routes themselves (``openapi_extra``) -----------------------
class EventIn(BaseModel):
    value: dict[str, Any] = Field(description="The record, as its schema's JSON form.")
    event_type: str | None = None
    key: str | None = None
    event_id: str | None = Field(None, description="A UUID; generated when absent.")
    occurred_at: str | None = Field(None, description="ISO 8601 time; now when absent.")
    correlation_id: str | None = None
    causation_id: str | None = None
    headers: dict[str, str] | None = None


class PublishIn(BaseModel):
    events: list[EventIn] = Field(min_length=1)


class IngestEventIn(BaseModel):
    value: dict[str, Any]
    event_type: str | None = None
    key: str | None = None
    event_id: str | None = None
    occurred_at: str | None = None


class IngestIn(BaseModel):
    events: list[IngestEventIn] = Field(min_length=1)


class ReplayIn(BaseModel):
    offsets: list[Annotated[int, Field(ge=0, le=MAX_INT64)]] = Field(
        description="Quarantine offsets to replay."
    )


class RuleSetIn(Open):
    rules: list[dict[str, Any]] = Field(description="The subject's quality rules.")


class SchemaIn(BaseModel):
    """A schema in a registry request (Confluent's ``RegisterSchemaRequest``)."""

    schema_: str = Field(alias="schema", description="The Avro schema as a JSON string.")
    schemaType: str | None = Field(None, description="AVRO (the default).")
    references: list[dict[str, Any]] | None = None
    id: int | None = Field(None, ge=1, le=2**31 - 1, description="Only in IMPORT mode.")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="Only in IMPORT mode.")


class CompatibilityIn(BaseModel):
    compatibility: str = Field(examples=["BACKWARD"])


class ModeIn(BaseModel):
    mode: str = Field(examples=["READWRITE"])


# Models the document names only by ``$ref`` (bodies routes read themselves, and answers
# declared in ``responses``); ``create_app`` adds them to the document's components.
RAW_BODY_MODELS: list[type[BaseModel]] = [
    PublishIn,
    IngestIn,
    ReplayIn,
    RuleSetIn,
    SchemaIn,
    CompatibilityIn,
    ModeIn,
]


def json_body(model: type[BaseModel], *extra_types: str) -> dict[str, Any]:
    """``openapi_extra`` declaring the JSON request body of a route that reads it itself."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    content: dict[str, Any] = {"application/json": {"schema": ref}}
    for media_type in extra_types:
        content[media_type] = {"schema": ref}
    return {"requestBody": {"required": True, "content": content}}


def raw_body(*media_types: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a body that is not one JSON document (NDJSON, framed Avro)."""
    content = {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}
    return {"requestBody": {"required": True, "description": description, "content": content}}


# -- answers --------------------------------------------------------------------------------
class LeaderRole(BaseModel):
    """This process's part in leader election (README "High availability")."""

    role: str = Field(description="leader, follower, or single (no leader election)")
    lease: str | None = Field(default=None, description="the lease's name")
    holder: str | None = Field(default=None, description="this process's id in the lease")
    epoch: int | None = Field(default=None, description="the epoch it leads under")


class LivenessRole(BaseModel):
    role: str = Field(description="leader, follower, or single (no leader election)")


class Liveness(BaseModel):
    """``GET /health``, answered to anyone: that the process serves, and its role (a load
    balancer may route by it); who it is and what it runs on are ``GET /health/details``."""

    status: str
    leader: LivenessRole


class Health(BaseModel):
    status: str
    event_log: str
    adapters: dict[str, str] = Field(description="the adapter of each component, by name")
    leader: LeaderRole = Field(description="which process runs the single-writer parts")


class ComponentReadiness(Open):
    """One component's check; more fields per component (topics, lag, tree_size...)."""

    component: str
    adapter: str = Field(description="the technology behind it: sqlite, kafka, opa, vault, ...")
    ok: bool
    ms: float = Field(description="how long the check took")
    reason: str | None = Field(default=None, description="why it failed")


class Readiness(BaseModel):
    ready: bool
    components: list[ComponentReadiness]


class ReadyStatus(BaseModel):
    """``GET /ready``: the status only (the components and their adapters: ``/ready/details``)."""

    ready: bool


class TopicOut(BaseModel):
    name: str
    partitions: int
    config: dict[str, str]
    end_offsets: dict[str, int] = Field(description="partition -> next offset")


class TopicCreated(BaseModel):
    name: str
    partitions: int
    config: dict[str, str]


class Position(BaseModel):
    partition: int
    offset: int


class LedgerCoverage(Open):
    """Whether the acknowledged records are on the audit ledger (``covered``) or still
    ``pending`` (``hub ledger verify`` fails once pending records exceed their bounded age)."""

    covered: bool


class Published(BaseModel):
    topic: str
    count: int
    offsets: list[Position]
    ledger: LedgerCoverage | None = None


class Records(BaseModel):
    topic: str
    partition: int
    next_offset: int
    records: list[dict[str, Any]]


class KeyIssued(Open):
    key_id: str
    token: str = Field(description="KEY_ID:SECRET, shown once.")
    roles: list[str]


class WhoAmI(BaseModel):
    principal: str
    roles: list[str]
    tenant: str
    known_roles: list[str]


class IngestRejection(Open):
    index: int | None = None
    reason_code: str
    reason: str


class Ingested(Open):
    topic: str
    accepted: int
    rejected: int
    duplicates: int
    rejections: list[IngestRejection]
    ledger: LedgerCoverage | None = None


class QualityStats(BaseModel):
    totals: dict[str, int]
    by_topic: list[dict[str, Any]] = Field(description="accepted/rejected/replayed per topic")
    by_rule: list[dict[str, Any]]
    replays: list[dict[str, Any]]
    since_start: dict[str, Any] = Field(description="this process's per-source counters")
    quarantine_records: int
    tenant_scope: str | None = Field(
        None, description="the one tenant counted (the reader's row filter); null: every tenant"
    )


class QuarantinePage(BaseModel):
    records: list[dict[str, Any]]
    next_offset: int


class QuarantineEntry(Open):
    original_base64: str


class RuleSetOut(Open):
    subject: str
    rules: list[dict[str, Any]]
    version: str | int | None


class RuleSetSummary(BaseModel):
    version: str | int | None
    rules: int


class ConfigChange(Open):
    change_id: str
    resource: str
    kind: str
    status: str
    proposed_by: str
    reason: str
    requires_approval: bool
    approvals: list[Any]


class PolicyChange(Open):
    change_id: str
    status: str
    proposed_by: str
    reason: str
    requires_approval: bool
    approvals: list[Any]


class ActivePolicy(BaseModel):
    version: str
    engine: str
    change: dict[str, Any] | None
    files: list[str]
    two_person: list[Any]


class Catalog(BaseModel):
    datasets: list[dict[str, Any]]


class LineageEvents(BaseModel):
    events: list[dict[str, Any]]


class RetentionPolicy(Open):
    scope: str
    max_age_ms: int | None
    max_records: int | None
    time_column: str | None


class RetentionPolicies(BaseModel):
    policies: list[RetentionPolicy]


class Hold(Open):
    hold_id: str
    scope: str
    matter: str


class Holds(BaseModel):
    holds: list[Hold]


class ReleaseProposed(BaseModel):
    """A hold's release awaiting a second person (``POST /v1/config/changes/{id}/approve``)."""

    hold: Hold
    change: ConfigChange


class LedgerEntries(BaseModel):
    entries: list[dict[str, Any]]
    next_after: int


class Checkpoint(BaseModel):
    size: int
    root: str = Field(description="hex")
    time_us: int
    hash: str = Field(description="hex")
    note: str = Field(description="the signed note (C2SP signed-note)")


class SchemaOut(Open):
    """A schema by id (Confluent: ``schemaType`` omitted for AVRO)."""

    schema_: str = Field(alias="schema")


class SubjectVersionOut(Open):
    subject: str
    version: int
    id: int
    schema_: str = Field(alias="schema")


class SubjectVersionRef(BaseModel):
    subject: str
    version: int


class SchemaId(BaseModel):
    id: int


class CompatibilityAnswer(BaseModel):
    is_compatible: bool
    messages: list[str] | None = None


class CompatibilityLevel(BaseModel):
    compatibilityLevel: str


class CompatibilitySet(BaseModel):
    compatibility: str


class Mode(BaseModel):
    mode: str


def text(media_type: str = "text/plain") -> dict[int | str, dict[str, Any]]:
    """``responses`` of a route answering text."""
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}}}


def binary(media_type: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a route answering bytes (a zip, a query result)."""
    return {status: {"content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


class Erasure(Open):
    subject: str
    reason: str
    actor: str
    key_existed: bool
    audit_offset: int | None


class LineageGraph(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class RetentionRun(Open):
    """What a retention run removed (or, with ``dry_run``, would remove)."""

    deleted: list[dict[str, Any]] = Field(description="log ranges: topic, partition, from, to")
    deleted_rows: list[dict[str, Any]] = Field(description="view rows per projection table")
    skipped: list[Any]


class LedgerEntry(Open):
    checkpoint: dict[str, Any]
    proof: list[str] = Field(description="hex hashes of the inclusion proof")


class SignedTree(BaseModel):
    size: int
    root: str
    note: str


class ConsistencyProof(BaseModel):
    from_: SignedTree = Field(alias="from")
    to: SignedTree
    proof: list[str]


class Verification(Open):
    ok: bool
    leaves: int
    checkpoints: int
    problems: list[dict[str, Any]]


class ProjectionStatus(Open):
    projection: str
    store: str
    tables: list[str]
    lag: int | dict[str, Any] | None


class Rebuilt(Open):
    projection: str
    replayed: int
    seconds: float


class ProjectionAt(Open):
    """A projection's rows as of an offset or a time."""

    projection: str
    offset: int | None
    time_ms: int | None
    views: dict[str, Any] = Field(description="table -> rows")
    digests: dict[str, Any]


class RowSources(Open):
    """A row and the events behind it, with their ledger positions when known."""

    projection: str
    table: str
    row: dict[str, Any] | None
    events: list[dict[str, Any]]
    complete: bool


class ConfigValue(Open):
    resource: str
    value: Any = Field(description="The value in force (null: the default).")
    requires_two_person: bool


class QueryResult(BaseModel):
    """``POST /v1/query`` with ``format=json``."""

    columns: list[str]
    rows: list[dict[str, Any]]


RAW_BODY_MODELS.append(QueryResult)  # POST /v1/query with format=json


class KeyOut(BaseModel):
    """A key as listings show it: never a secret, salt or hash."""

    key_id: str
    owner: str
    roles: list[str]
    tenant: str
    state: str
    legacy: bool
    issued_by: str | None = None
    issued_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    replaces: str | None = None
    description: str = ""
    issuance: str = Field(
        default="", description="enrolled, bootstrap, issued (never approves) or legacy"
    )
    legacy_issued: bool = Field(
        default=False, description="an approver whose key another person issued: re-enrol them"
    )


class EnrolmentTicketOut(BaseModel):
    """A person with approval rights gets an enrolment token, never a key
    (``governance.enrolment``): they redeem it with ``hub enrol`` or ``POST /v1/enrol``."""

    enrolment_id: str
    enrolment_token: str = Field(
        description="he_ID.FIRST_HALF, shown once; with status pending_approval a second "
        "approver adds the second half (POST /v1/enrolments/{id}/approve)."
    )
    owner: str
    roles: list[str]
    status: str
    expires_at: str
    resets: str | None = None


class EnrolmentOut(BaseModel):
    enrolment_id: str
    owner: str
    roles: list[str]
    tenant: str
    kind: str
    resets: str | None = None
    state: str
    requested_by: str
    requested_at: str
    requires_approval: bool
    bootstrap: bool
    approved_by: str | None = None
    approval_reason: str | None = Field(
        None, description="Why the second approver approved (none before it was recorded)."
    )
    expires_at: str
    key_id: str | None = None
    ended_reason: str | None = Field(
        None, description="Why it ended unredeemed: expired, superseded or withdrawn."
    )


class EnrolmentApprovedOut(BaseModel):
    enrolment_id: str
    owner: str
    second_half: str = Field(
        description="Give this to the person (never to the requester): they redeem "
        "he_ID.FIRST_HALF.SECOND_HALF."
    )


class KeysRevoked(BaseModel):
    revoked: list[str] = Field(description="the key ids revoked (more than one with cascade)")


class KeyRotated(BaseModel):
    key_id: str
    token: str = Field(description="KEY_ID:SECRET of the replacement, shown once")
    replaces: str


class Case(Open):
    case_id: str
    status: str
    reason: str
    subjects: list[str]
    investigators: list[str]
    tenant: str
    opened_by: str
    expires_at: str


class Cases(BaseModel):
    cases: list[Case]
