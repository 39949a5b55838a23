"""The hub's one exception tree.

Every error the hub raises on purpose is a ``HubError``. Adapters translate library errors at the
boundary (``raise LogError(...) from exc``). Messages are full sentences that name the value and,
where there is one, the fix.

    HubError
    ├── ConfigError               settings are invalid or inconsistent
    ├── NotFound                  a named thing does not exist (topic, subject, version, schema id)
    │   ├── TopicNotFound
    │   ├── SubjectNotFound
    │   ├── VersionNotFound
    │   └── SchemaNotFound
    ├── Conflict                  the request contradicts stored state
    │   ├── TopicExists
    │   ├── OutOfOrderSequence    an idempotent producer skipped or rewound a sequence number
    │   └── OffsetsMoved          a consumer group was moved past the consumer's own position
    ├── InvalidInput              the caller sent something malformed (bad JSON, bad Avro, too big)
    │   ├── InvalidSchema
    │   ├── IncompatibleSchema    carries the list of incompatibilities
    │   ├── PayloadTooLarge
    │   ├── SerializationError
    │   └── DuplicateEnvelopeHeader  a record carries an envelope header (ce_*, hub_*,
    │                                content-type) more than once
    ├── LogTampered               stored log records fail the log's MAC chain (changed, forged...)
    ├── AuthError
    │   ├── Unauthenticated       no or unknown credentials
    │   └── Forbidden             authenticated, but the decision is deny
    └── Retryable                 a transient condition; the same call may succeed later
        ├── StorageBusy
        ├── StorageFull           the disk under a store has no room (HTTP 507)
        └── BodyBudgetFull        request bodies in flight fill HUB_MAX_REQUEST_BYTES_IN_FLIGHT

``code`` is a stable machine-readable reason (shown in HTTP errors and CLI output); ``http_status``
is what the API answers with.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    code: str = "hub_error"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(HubError):
    code = "config_invalid"
    http_status = 500


class NotFound(HubError):
    code = "not_found"
    http_status = 404


class TopicNotFound(NotFound):
    code = "topic_not_found"


class SubjectNotFound(NotFound):
    code = "subject_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class SchemaNotFound(NotFound):
    code = "schema_not_found"


class Conflict(HubError):
    code = "conflict"
    http_status = 409


class TopicExists(Conflict):
    code = "topic_exists"


class OutOfOrderSequence(Conflict):
    code = "out_of_order_sequence"


class OffsetsMoved(Conflict):
    """A consumer group's committed offset is ahead of the consumer's own authenticated
    position (``ml.offsets``): starting there would skip records. Not retryable: a worker
    stops on it until the group is put back or the move is accepted on the record."""

    code = "offsets_moved"


class InvalidInput(HubError):
    code = "invalid_input"
    http_status = 422


class InvalidSchema(InvalidInput):
    code = "invalid_schema"


class IncompatibleSchema(InvalidInput):
    """A schema breaks the subject's compatibility rule; ``messages`` names each field and rule."""

    code = "incompatible_schema"
    http_status = 409

    def __init__(self, message: str, messages: Sequence[str]) -> None:
        super().__init__(message)
        self.messages = list(messages)


class DuplicateEnvelopeHeader(InvalidInput):
    """A record carries an envelope header (``ce_*``, ``hub_*``, ``content-type``) more than
    once: refused where it would be stored, and no reader picks one of its copies."""

    code = "duplicate_envelope_header"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class SerializationError(InvalidInput):
    code = "serialization_error"


class AuthError(HubError):
    code = "auth_error"
    http_status = 401


class Unauthenticated(AuthError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(AuthError):
    code = "forbidden"
    http_status = 403


class Retryable(HubError):
    code = "retryable"
    http_status = 503


class StorageBusy(Retryable):
    code = "storage_busy"


class StorageFull(Retryable):
    """A store's disk (or its size limit) had no room for a write: nothing of the failed write
    is kept, nothing stored before is lost; the same call succeeds once there is room. HTTP 507
    Insufficient Storage (RFC 4918): the server, not the request, is short of space."""

    code = "storage_full"
    http_status = 507


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk has no room: an
    ``OSError`` with ENOSPC, EDQUOT or EFBIG, or SQLite's ``SQLITE_FULL``."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short cause chain; a loop in it ends here
        if seen is None:
            return False
        if isinstance(seen, StorageFull):
            return True
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if str(getattr(seen, "sqlite_errorname", "")).startswith("SQLITE_FULL"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def storage_full(failed: str) -> StorageFull:
    """The error for a write refused for want of room (``is_storage_full``); ``failed`` says
    which write, naming its store (one sentence)."""
    return StorageFull(
        f"{failed} The disk has no room: nothing of this write was kept and nothing stored "
        "before is lost. Free space on the data folder's disk (or raise its quota), then send "
        "the same request again.",
    )


class BodyBudgetFull(Retryable):
    """The request bodies already held fill ``HUB_MAX_REQUEST_BYTES_IN_FLIGHT``: send again
    after the answer's ``Retry-After`` seconds."""

    code = "body_budget_full"


class VerifyRunning(Retryable):
    """A ledger verification is already running in this process (one at a time: each re-reads
    the log, and takes the ledger's sync, which every acknowledgement waits for, for its tail):
    send again after the answer's ``Retry-After``."""

    code = "verify_running"


class LogTampered(HubError):
    """Stored log records fail the log's own authentication (changed, forged, moved, removed)."""

    code = "log_tampered"
    http_status = 500


class FeatureRowRefused(HubError):
    """A stored feature row (Feast's online store or offline table, the stored feature vectors)
    failed its MAC check (missing, edited, forged, copied from another entity, tenant, view or
    place) or is older than the row the hub last wrote (replayed): no score may use it."""

    code = "feature_row_refused"
    http_status = 500
