"""The Schema Registry service: subjects, versions, global ids, compatibility, config and mode.

Its whole state is a fold of the ``_schemas`` topic, written in Confluent Schema Registry's own
record format (JSON keys ``{"keytype": "SCHEMA"|"CONFIG"|"MODE", ...}`` and JSON values; a permanent
delete is a tombstone), so the topic is readable by the same tools on Kafka. Every read first
catches up with the topic's tail, so several hub processes sharing one log agree. One read is
allowed a bounded lag instead: the write path's lookup of a subject's latest schema
(``writer_version``, every publish and ingest batch asks it) skips the broker round trip while
the log's watcher of ``_schemas`` learnt of nothing new (``core.fold``'s watched catch-ups):
this process's own registrations are seen at once, another process's once the watcher learnt
of it (about one round trip after its commit on Kafka) and in any case by every lookup that
begins more than ``tail_watch_s`` (``HUB_REGISTRY_TAIL_WATCH_S``, 1 s by default; 0: every
lookup asks the broker) after its commit.

Contract
- The same schema (same canonical form and references) MUST get the same global id in every
  subject; a new schema MUST get ``max(id) + 1``, except after a registration whose append
  failed: its id MUST NOT be handed out again by the process (the append may still land), so
  ids skip it.
- An id MUST name one schema in every instance. Hub processes sharing the log choose ids each
  on its own, so two registering new schemas at once may choose the same id: the fold keeps the
  id's first record in the log and ignores a later record that claims it for another schema
  (every instance folds the same records in the same order, so all agree), and the
  registration whose record was ignored registers again with a new id (``_LostRace``); its
  caller is answered only its own schema's id and version.
- Concurrent registrations under different subjects MUST be stored without holding the
  registry's lock (they share the caller's transaction batch); under one subject they are
  serialised. Readers MUST NOT see a registration before its record is stored.
- Registering a schema already registered (not deleted) in a subject MUST return its id and MUST
  NOT create a version.
- A registration that breaks the subject's compatibility level MUST be rejected with
  ``IncompatibleSchema`` naming each field and rule, and MUST NOT change any state.
- A permanent delete MUST follow a soft delete of the same version or subject; a soft delete of
  a version or subject already soft-deleted MUST be refused (``SoftDeleted``). A subject's soft
  delete also removes its own compatibility level and mode (as Confluent's registry does).
- A version referenced by another schema MUST NOT be deleted.
- A registration MUST NOT replace a stored version (IMPORT with an explicit version included):
  a version keeps the schema it was registered with until it is deleted.
- Internal subjects (``registry.internal``) MUST NOT follow the global mode: the hub registers
  its own schemas there whenever it starts; a subject's own mode still applies.
- A subject is owned by one tenant (``owner``): the tenant its first record names
  (``"tenant"`` in the SCHEMA value, a member Confluent's readers ignore), kept while any of its
  versions is stored, soft-deleted ones included, and gone with its last permanent delete.
  Every version record repeats it. A registration naming a ``tenant`` MUST be refused
  (``SubjectOwned``) when the subject is another tenant's; one naming none (the hub's own
  callers) writes under the subject's owner, or the hub's own tenant for a new subject. A
  subject whose records name no tenant (registered before ownership existed, until
  ``registry.owners.adopt`` rewrites them) is the hub's own. ``-plain`` companions
  (``registry.plain``) follow their subject's owner.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from core.avro.compatibility import CompatibilityLevel, Incompatibility, check_level
from core.avro.schema import ParsedSchema, parse_schema, refuse_recursive
from core.errors import (
    Conflict,
    Forbidden,
    HubError,
    IncompatibleSchema,
    InvalidInput,
    InvalidSchema,
    Retryable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from core.fold import TopicFold
from core.ports.eventlog import EventLog, Record
from core.ports.policy import HUB_TENANT
from core.tenant_quota import TenantQuotaExceeded
from registry.internal import is_internal_subject
from registry.plain import SUFFIX, falsely_sealed, log_form, plain_subject, unsealed
from registry.standalone import inline_references
from registry.subjectnames import refuse_unsafe_new_subject

SCHEMAS_TOPIC = "_schemas"
_P = ParamSpec("_P")
# Appends records to a topic durably (raises on failure): ``EventLog.append``'s shape, or a
# caller's own (``register(..., append=)``: the decision that allowed it, in one transaction).
Appender = Callable[[str, Sequence[Record]], object]
_R = TypeVar("_R")
MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
# ``delete_subject(on_drop=)``: (subject, {"CONFIG"|"MODE": value dropped}) -> more records to
# append with the delete, per topic.
SettingsDropped = Callable[[str, dict[str, str]], Sequence[tuple[str, Sequence[Record]]]]


_LOG = logging.getLogger("hub.registry")
# How many times a registration whose record lost its id to another process's (``_LostRace``)
# registers again before the caller is asked to retry.
_RACE_ATTEMPTS = 8


class _LostRace(Exception):
    """Step 8 found the registration's record not folded: another process's registration chose
    the same id (or the same version of the subject) and its record came first in the log."""


class OperationNotPermitted(HubError):
    """Confluent's 42205 for a mode change its rules refuse (IMPORT over live subjects)."""

    code = "operation_not_permitted"
    http_status = 422


class ReadOnlyMode(HubError):
    code = "read_only_mode"
    http_status = 422


class ReferenceExists(Conflict):
    code = "reference_exists"
    http_status = 422


class NotSoftDeleted(Conflict):
    """A permanent delete of a version or subject that was not soft-deleted first."""

    code = "not_soft_deleted"
    http_status = 404


class SoftDeleted(Conflict):
    """A soft delete of a version or subject that is already soft-deleted."""

    code = "soft_deleted"
    http_status = 404


class InvalidCompatibilityLevel(InvalidInput):
    code = "invalid_compatibility_level"


class SubjectOwned(Forbidden):
    """A change to a subject another tenant owns. The message names no tenant: the subject's
    name is taken (a registry has one namespace), its owner is not the caller's to learn."""

    code = "subject_owned"


@dataclass(frozen=True, slots=True)
class Reference:
    """A named type taken from another subject's version (Confluent schema reference)."""

    name: str
    subject: str
    version: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True, slots=True)
class StoredSchema:
    id: int
    text: str
    schema_type: str
    references: tuple[Reference, ...]


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    subject: str
    version: int
    id: int
    schema: StoredSchema
    deleted: bool = False
    # The subject's owner as the record names it; None: written before ownership existed.
    tenant: str | None = None


def _again_after_lost_race(
    method: Callable[Concatenate[SchemaRegistry, _P], _R],
) -> Callable[Concatenate[SchemaRegistry, _P], _R]:
    """``register`` again while its record loses its id to another process's registration
    (``_LostRace``: see the contract), up to ``_RACE_ATTEMPTS`` times. The first attempt's
    ``append`` stored its record (and what rides with it, the decision that allowed it); the
    next ones use the log's own append."""

    def wrapper(self: SchemaRegistry, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        for _ in range(_RACE_ATTEMPTS):
            try:
                return method(self, *args, **kwargs)
            except _LostRace as lost:
                _LOG.warning("registering again: another process's record came first (%s)", lost)
                kwargs["append"] = None
        subject = args[0] if args else kwargs.get("subject")
        raise Retryable(
            f"Registering under subject {subject!r} lost {_RACE_ATTEMPTS} times in a row to "
            "registrations of other hub processes choosing the same schema id: retry.",
            code="registry_contended",
        )

    functools.update_wrapper(wrapper, method)
    return wrapper


def _locked(
    method: Callable[Concatenate[SchemaRegistry, _P], _R],
) -> Callable[Concatenate[SchemaRegistry, _P], _R]:
    """Run a reader under the registry's lock: the fold mutates the dicts readers iterate."""

    def wrapper(self: SchemaRegistry, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._arrived(), self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(wrapper, method)
    return wrapper


def _fresh(
    method: Callable[Concatenate[SchemaRegistry, _P], _R],
) -> Callable[Concatenate[SchemaRegistry, _P], _R]:
    """``_locked`` for a reader that catches up first (``refresh``): the log is read before
    the wait for the lock (``_caught_up``), its ``refresh`` under the lock only applies."""

    def wrapper(self: SchemaRegistry, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._caught_up():
            return method(self, *args, **kwargs)

    functools.update_wrapper(wrapper, method)
    return wrapper


@dataclass
class _State:
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids_by_identity: dict[tuple[str, tuple[Reference, ...]], int] = field(default_factory=dict)
    subjects: dict[str, dict[int, SubjectVersion]] = field(default_factory=dict)
    config: dict[str | None, str] = field(default_factory=dict)
    mode: dict[str | None, str] = field(default_factory=dict)
    # subject -> the tenant its first folded record named (see the module's contract)
    owners: dict[str, str] = field(default_factory=dict)
    # schema id -> every tenant that ever owned a subject holding it (never shrinks: a
    # permanent delete does not make a private schema public)
    id_tenants: dict[int, set[str]] = field(default_factory=dict)


@dataclass
class _Reservations:
    """Registrations whose ``_schemas`` record is being stored (the registry's lock released).

    Readers never see them (they read the fold only); registrations choose ids and versions
    above them. One reservation per subject at a time: a second registration under the same
    subject waits until the first is stored or failed, then starts again from the fold (so the
    same schema registered twice concurrently gets one id and one version)."""

    subjects: set[str] = field(default_factory=set)
    # identity -> [reserved id, registrations holding it]: the same new schema registered
    # concurrently under two subjects gets one id.
    ids: dict[tuple[str, tuple[Reference, ...]], list[int]] = field(default_factory=dict)
    # Every id reserved by this process so far: a reserved id is never handed out twice, even
    # when its registration failed (a failed append may still land, e.g. after a timeout).
    high_id: int = 0
    writers_waiting: int = 0  # other writers (deletes, config, mode, IMPORT) waiting to drain


class SchemaRegistry:
    """A Confluent-compatible Avro schema registry whose state lives in the event log."""

    def __init__(
        self,
        log: EventLog,
        default_compatibility: str = "BACKWARD",
        *,
        strict_logical_types: bool = False,
        max_subjects_per_tenant: int = 0,
        max_versions_per_tenant: int = 0,
        refused: Callable[[str, str], None] = lambda tenant, limit: None,
        tail_watch_s: float = 1.0,
    ) -> None:
        self._log = log
        # per-tenant caps (``_refuse_over_caps``; 0: off) and their refusals' metric
        self.max_subjects_per_tenant = max_subjects_per_tenant
        self.max_versions_per_tenant = max_versions_per_tenant
        self._refused = refused
        self._default = CompatibilityLevel(default_compatibility)
        # False: logical types are ignored in compatibility checks, as Confluent (Avro Java) does.
        self.strict_logical_types = strict_logical_types
        self._state = _State()
        self._parsed: dict[int, ParsedSchema] = {}
        # (id, text) -> the parse of a registration being stored (step 8): used by the fold only
        # for a record of that id AND text, so a lost race never caches it under the id
        self._pending_parsed: dict[tuple[int, str], ParsedSchema] = {}
        # records ignored by the fold because they claimed an id holding another schema
        self.ignored_id_claims = 0
        self._lock = threading.RLock()
        self._reserved = _Reservations()
        # refresh() shares the fold's reads; per thread the ticket taken when its ``_locked`` call
        # arrived (``_arrived``)
        self._arrival = threading.local()
        self._settled = threading.Condition(self._lock)  # notified when a reservation ends
        log.create_topic(SCHEMAS_TOPIC, 1, {"cleanup.policy": "compact"})
        # Folding a schema with references parses it, which looks the references up through
        # readers that refresh: the fold refuses such a nested call (it would fold twice).
        self._fold = TopicFold(
            log,
            SCHEMAS_TOPIC,
            lambda rec: self._apply(rec.key, rec.value),
            batch=10_000,
            lock=self._lock,
            watch_s=tail_watch_s,
        )
        self.refresh()

    # -- folding the topic ------------------------------------------------------------------
    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """One request's arrival, for the several calls that serve it in this thread (a
        registration's ``RegistryScope.claim`` asks ``owner``, then ``register``): each call's
        first catch-up is shared with any read begun after the REQUEST arrived, instead of
        after the call did. So the registration's step 1 applies what the claim's read found
        (both are as fresh as the request) instead of asking the log again; steps 7-8 (the
        mode check before the append, the fold back after it) still read afresh. Nested: the
        outermost arrival stands."""
        local = self._arrival
        if hasattr(local, "request"):
            yield
            return
        local.request = self._fold.ticket()
        try:
            yield
        finally:
            del local.request

    @contextlib.contextmanager
    def _arrived(self, fresh: bool = False) -> Iterator[bool]:
        """Take the caller's arrival ticket (``TopicFold.ticket``) BEFORE its wait for the
        lock: its first ``refresh`` does not read the log again when a whole read begun after
        it arrived has ended meanwhile (it still applies what that read found). Within
        ``arrival`` (and not ``fresh``), the request's ticket. Nested: the outermost call's
        arrival stands; yields whether this call is the outermost."""
        local = self._arrival
        if hasattr(local, "ticket"):
            yield False
            return
        request = None if fresh else getattr(local, "request", None)
        local.ticket = self._fold.ticket() if request is None else request
        try:
            yield True
        finally:
            del local.ticket

    @contextlib.contextmanager
    def _caught_up(self, fresh: bool = False) -> Iterator[None]:
        """Hold the lock with the state caught up with ``_schemas`` as of the call: the log is
        read BEFORE the wait for the lock (shared with every caller that arrived meanwhile),
        so no caller holds the lock across a broker round trip; the first ``refresh`` under
        the lock then applies what was read (no round trip of its own). Nested (the lock
        already held by an outer call): as before, the method's own ``refresh`` reads.
        ``fresh``: a read begun after this call, even within a request's ``arrival``."""
        with self._arrived(fresh) as outermost:
            if outermost:
                self._fold.catch_up(self._arrival.ticket)
            with self._lock:
                yield

    def refresh(self) -> None:
        """Apply every ``_schemas`` record not yet folded into the in-memory state.

        Concurrent callers share the fold's reads (``TopicFold.catch_up(ticket)``):
        read-your-writes and cross-instance freshness keep (a read shared is one begun after
        the caller arrived); on Kafka N waiting requests no longer pay N ListOffsets round
        trips one after another."""
        # a reader's ticket, taken before its lock wait (``_arrived``), serves its first
        # refresh only (later ones follow its own steps); else the read is its own
        ticket = getattr(self._arrival, "ticket", -1)
        if ticket >= 0:
            self._arrival.ticket = -1
        self._fold.catch_up(ticket if ticket >= 0 else None)

    def _apply(self, key_bytes: bytes | None, value_bytes: bytes | None) -> None:
        if key_bytes is None:
            return
        key = json.loads(key_bytes)
        st = self._state
        keytype = key.get("keytype")
        subject = key.get("subject")
        if keytype == "SCHEMA":
            if value_bytes is None:  # permanent delete
                versions = st.subjects.get(subject, {})
                versions.pop(int(key["version"]), None)
                if not versions:
                    st.subjects.pop(subject, None)
                    st.owners.pop(subject, None)
                return
            v = json.loads(value_bytes)
            refs = tuple(
                Reference(r["name"], r["subject"], int(r["version"]))
                for r in v.get("references") or ()
            )
            stored = StoredSchema(int(v["id"]), v["schema"], v.get("schemaType", "AVRO"), refs)
            held = st.schemas.get(stored.id)
            if held is None:
                st.schemas[stored.id] = stored
                st.ids_by_identity[(self._canonical_of(stored), refs)] = stored.id
            elif held != stored and not self._same_schema(held, stored):
                # another process's registration chose this id first (see the contract)
                self.ignored_id_claims += 1
                _LOG.warning(
                    "ignored a _schemas record claiming id %s (held by another schema) for "
                    "subject %r version %s",
                    stored.id,
                    subject,
                    v.get("version"),
                )
                return
            tenant = v.get("tenant")
            if not isinstance(tenant, str) or not tenant:
                tenant = None
            st.subjects.setdefault(subject, {})[int(v["version"])] = SubjectVersion(
                subject,
                int(v["version"]),
                stored.id,
                st.schemas[stored.id],
                bool(v.get("deleted")),
                tenant,
            )
            if tenant is not None:
                st.owners.setdefault(subject, tenant)
                st.id_tenants.setdefault(stored.id, set()).add(st.owners[subject])
        elif keytype == "CONFIG":
            if value_bytes is None:
                st.config.pop(subject, None)
            else:
                st.config[subject] = json.loads(value_bytes)["compatibilityLevel"]
        elif keytype == "MODE":
            if value_bytes is None:
                st.mode.pop(subject, None)
            else:
                st.mode[subject] = json.loads(value_bytes)["mode"]

    def _same_schema(self, held: StoredSchema, claim: StoredSchema) -> bool:
        """Whether ``claim`` (a record's schema) is the schema ``held`` under its id: the same
        canonical form and references. The claim is parsed afresh, never from the id's cache
        (which holds the held schema's parse)."""
        if held.references != claim.references or held.schema_type != claim.schema_type:
            return False
        try:
            resolved = self._resolve_references(claim.references, claim.id)
            mine = parse_schema(claim.text, resolved).canonical
        except HubError:
            mine = claim.text
        return mine == self._canonical_of(held)

    def _canonical_of(self, stored: StoredSchema) -> str:
        try:
            if stored.references:  # the identity is the form read with its references
                resolved = self._resolve_references(stored.references, stored.id)
                return parse_schema(stored.text, resolved).canonical
            return self.parsed(stored.id, stored).canonical
        except HubError:
            return stored.text

    def _write(self, records: Sequence[Record], append: Appender | None = None) -> None:
        if append is None:
            self._log.append(SCHEMAS_TOPIC, records)
        else:
            append(SCHEMAS_TOPIC, records)
        self.refresh()

    @staticmethod
    def _key(keytype: str, subject: str | None, version: int | None = None) -> bytes:
        # Confluent's field order (keytype, subject, version, magic): compaction compares bytes.
        key: dict[str, Any] = {"keytype": keytype, "subject": subject}
        if version is not None:
            key["version"] = version
        key["magic"] = 1 if version else 0
        return json.dumps(key, separators=(",", ":")).encode()

    def _schema_record(self, sv: SubjectVersion) -> Record:
        value: dict[str, Any] = {
            "subject": sv.subject,
            "version": sv.version,
            "id": sv.id,
            "schema": sv.schema.text,
            "deleted": sv.deleted,
        }
        if sv.schema.schema_type != "AVRO":
            value["schemaType"] = sv.schema.schema_type
        if sv.schema.references:
            value["references"] = [r.as_json() for r in sv.schema.references]
        if sv.tenant is not None:
            value["tenant"] = sv.tenant
        return Record(
            value=json.dumps(value, separators=(",", ":")).encode(),
            key=self._key("SCHEMA", sv.subject, sv.version),
        )

    # -- parsing ----------------------------------------------------------------------------
    def parsed(self, schema_id: int, stored: StoredSchema | None = None) -> ParsedSchema:
        """The parsed schema of a global id (cached); raises ``SchemaNotFound``. A schema with
        references comes standalone (``registry.standalone``): its text defines the named
        types it takes from them, so readers of the text alone (shredding, the log and plain
        forms, the columnar readers) see them, PII marked inside them included."""
        cached = self._parsed.get(schema_id)
        if cached is not None:
            return cached
        if stored is None:
            stored = self.get_by_id(schema_id)
        pending = self._pending_parsed.get((schema_id, stored.text))
        if pending is not None and not stored.references:
            self._parsed[schema_id] = pending
            return pending
        result = parse_schema(stored.text, self._resolve_references(stored.references, stored.id))
        if stored.references:
            result = self._standalone(result, stored.references, (schema_id,))
        self._parsed[schema_id] = result
        return result

    def _standalone(
        self, parsed: ParsedSchema, refs: Sequence[Reference], within: tuple[int, ...] = ()
    ) -> ParsedSchema:
        """``parsed`` (read with ``refs``) as one self-contained schema. ``within``: the ids
        being made standalone further up, so that a cycle (only IMPORT mode or a forged
        ``_schemas`` record can make one) is refused rather than recursed into."""
        if len(within) > 32:
            raise InvalidSchema("Schema references nest deeper than 32 levels.")
        referenced = []
        for ref in refs:
            sv = self._referenced(ref, within)
            inner = self._parsed.get(sv.id)
            if inner is None:
                inner = parse_schema(
                    sv.schema.text, self._resolve_references(sv.schema.references, sv.id)
                )
                if sv.schema.references:
                    inner = self._standalone(inner, sv.schema.references, (*within, sv.id))
                self._parsed[sv.id] = inner
            referenced.append(inner.canonical)
        return parse_schema(inline_references(parsed.canonical, referenced))

    def _referenced(self, ref: Reference, path: Sequence[int | None]) -> SubjectVersion:
        """The version ``ref`` names; refused when it does not exist or is one of ``path``
        (the ids that lead to it: a cycle)."""
        try:
            sv = self.get_version(ref.subject, ref.version, include_deleted=True)
        except (SubjectNotFound, VersionNotFound) as exc:
            raise InvalidSchema(
                f"Reference {ref.name!r} points at subject {ref.subject!r} version "
                f"{ref.version}, which does not exist: register it first."
            ) from exc
        if sv.id in path:
            raise InvalidSchema(
                f"Reference {ref.name!r} (subject {ref.subject!r} version {ref.version}) "
                "leads back to a schema that references it: a cycle."
            )
        return sv

    def _resolve_references(
        self, refs: Sequence[Reference], root: int | None = None
    ) -> list[tuple[str, str]]:
        """Referenced schema texts in dependency order (references of references first).
        ``root``: the id of the schema holding ``refs``, which none of them may lead back to
        (a cycle, which only IMPORT mode or a forged ``_schemas`` record can make)."""
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, int]] = set()

        def visit(ref: Reference, path: tuple[int | None, ...]) -> None:
            if len(path) > 32:
                raise InvalidSchema("Schema references nest deeper than 32 levels.")
            sv = self._referenced(ref, path)
            if (ref.subject, ref.version) in seen:
                return
            seen.add((ref.subject, ref.version))
            for inner in sv.schema.references:
                visit(inner, (*path, sv.id))
            out.append((ref.name, sv.schema.text))

        for r in refs:
            visit(r, (root,))
        return out

    def _parse_new(
        self, text: str, schema_type: str, references: Sequence[Reference]
    ) -> ParsedSchema:
        if schema_type.upper() != "AVRO":
            raise InvalidSchema(
                f"Schema type {schema_type!r} is not supported by this registry: only AVRO is."
            )
        parsed = parse_schema(text, self._resolve_references(references))
        refuse_recursive(parsed)  # values of a recursive type can crash the decoder
        return parsed

    # -- config and mode --------------------------------------------------------------------
    @_fresh
    def compatibility(self, subject: str | None = None, default_to_global: bool = True) -> str:
        """The level in force for a subject (its own, else the global one, else the default)."""
        self.refresh()
        return self._compatibility_folded(subject, default_to_global)

    def _compatibility_folded(self, subject: str | None, default_to_global: bool = True) -> str:
        """``compatibility`` of the state folded so far (no catch-up); under the lock."""
        st = self._state
        if subject is not None and subject in st.config:
            return st.config[subject]
        if subject is not None and not default_to_global:
            raise SubjectNotFound(
                f"Subject {subject!r} has no compatibility level of its own; "
                "ask with defaultToGlobal=true for the global one.",
                code="subject_compatibility_not_configured",
            )
        return st.config.get(None, self._default.value)

    @_fresh
    def own_compatibility(self, subject: str | None = None) -> str | None:
        """The level set on a subject (``None``: the global one) itself; None when unset."""
        self.refresh()
        return self._state.config.get(subject)

    @staticmethod
    def check_compatibility_level(level: object) -> str:
        """The canonical name of a level (any case); raises ``InvalidCompatibilityLevel``."""
        try:
            return CompatibilityLevel(str(level).upper()).value
        except ValueError as exc:
            raise InvalidCompatibilityLevel(
                f"Compatibility level {level!r} is not one of "
                f"{', '.join(c.value for c in CompatibilityLevel)}."
            ) from exc

    @classmethod
    def config_record(cls, level: str | None, subject: str | None = None) -> Record:
        """The ``_schemas`` record that sets (or, with ``None``, removes) a level.

        Callers that append it themselves (``governance.configchanges``, inside a log
        transaction) call ``refresh()`` afterwards.
        """
        value = None
        if level is not None:
            value = json.dumps({"compatibilityLevel": cls.check_compatibility_level(level)})
        return Record(
            value=None if value is None else value.encode(), key=cls._key("CONFIG", subject)
        )

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        value = self.check_compatibility_level(level)
        with self._exclusive():
            self._write([self.config_record(value, subject)])
        return value

    def delete_compatibility(self, subject: str | None) -> str:
        """Remove a subject's own level (or reset the global one); returns the removed level.

        A subject without a level of its own raises ``SubjectNotFound`` (code
        ``subject_compatibility_not_configured``) rather than reporting the global level.
        """
        with self._exclusive():
            previous = self.compatibility(subject, default_to_global=False)
            self._write([self.config_record(None, subject)])
        return previous

    @_fresh
    def mode(self, subject: str | None = None) -> str:
        self.refresh()
        return self._mode_folded(subject)

    def _mode_folded(self, subject: str | None) -> str:
        """``mode`` of the state folded so far (no catch-up); under the lock.

        An internal subject (``registry.internal``) does not follow the global mode: the hub
        registers its own schemas there (the decision and audit topics, at each start), so a
        global READONLY set by one ``registry.config`` holder would otherwise make every later
        decision unstorable after a restart, the request that would undo it included."""
        st = self._state
        if subject is not None and subject in st.mode:
            return st.mode[subject]
        if subject is not None and is_internal_subject(subject):
            return "READWRITE"
        return st.mode.get(None, "READWRITE")

    @_fresh
    def own_mode(self, subject: str | None = None) -> str | None:
        """The mode set on a subject (``None``: the global one) itself; None when unset."""
        self.refresh()
        return self._state.mode.get(subject)

    @staticmethod
    def check_mode(mode: object) -> str:
        """The canonical name of a mode (any case); raises ``InvalidInput`` (``invalid_mode``)."""
        name = str(mode).upper()
        if name not in MODES:
            raise InvalidInput(
                f"Mode {mode!r} is not one of {', '.join(MODES)}.", code="invalid_mode"
            )
        return name

    @_fresh
    def check_mode_change(self, mode: str, subject: str | None = None, force: bool = False) -> str:
        """``mode`` if it may be set now, Confluent's rule: IMPORT on a subject that has
        versions (for the global mode: while any subject has) needs ``force``, since imported
        ids and versions could then collide with live ones; else ``OperationNotPermitted``."""
        mode = self.check_mode(mode)
        self.refresh()
        if mode != "IMPORT" or force or self._mode_folded(subject) == "IMPORT":
            return mode
        st = self._state
        # internal subjects do not follow the global mode (``_mode_folded``)
        scope = (
            [s for s in st.subjects if not is_internal_subject(s)] if subject is None else [subject]
        )
        found = [s for s in scope if any(not v.deleted for v in st.subjects.get(s, {}).values())]
        if found:
            raise OperationNotPermitted(
                f"Cannot import since found existing subjects ({', '.join(sorted(found)[:5])}): "
                "set IMPORT with force=true to import beside them, or delete them first."
            )
        return mode

    @classmethod
    def mode_record(cls, mode: str | None, subject: str | None = None) -> Record:
        """The ``_schemas`` record that sets (or, with ``None``, removes) a mode. Callers that
        append it themselves (``governance.configchanges``) call ``refresh()`` afterwards."""
        value = None if mode is None else json.dumps({"mode": cls.check_mode(mode)}).encode()
        return Record(value=value, key=cls._key("MODE", subject))

    def set_mode(self, mode: str, subject: str | None = None, force: bool = False) -> str:
        mode = self.check_mode_change(mode, subject, force)
        with self._exclusive():
            self._write([self.mode_record(mode, subject)])
        return mode

    def _require_writable(self, subject: str) -> None:
        self.refresh()
        self._refuse_read_only(subject)

    def _refuse_read_only(self, subject: str) -> None:
        """Raise ``ReadOnlyMode`` if the folded state says so; under the lock."""
        if self._mode_folded(subject) in ("READONLY", "READONLY_OVERRIDE"):
            raise ReadOnlyMode(
                f"Subject {subject!r} is in read-only mode: set its mode to READWRITE first."
            )

    # -- owners -----------------------------------------------------------------------------
    def owner(self, subject: str, refresh: bool = True) -> str | None:
        """The tenant that owns ``subject`` (the module's contract); None when no version of it
        is stored (it was never registered, or permanently deleted): its first registration
        makes the registering tenant its owner. ``refresh=False``: as folded so far (a caller
        that just read the subject, e.g. its latest version)."""
        if not refresh:
            with self._lock:
                return self._owner_folded(subject)
        with self._caught_up():  # the log read before the lock wait
            self.refresh()
            return self._owner_folded(subject)

    def _owner_folded(self, subject: str) -> str | None:
        """``owner`` of the state folded so far (no catch-up); under the lock."""
        st = self._state
        found = st.owners.get(subject)
        if found is not None:
            return found
        if subject in st.subjects:
            return HUB_TENANT  # its records name no tenant: registered before ownership
        if subject.endswith(SUFFIX) and subject[: -len(SUFFIX)] in st.subjects:
            return self._owner_folded(subject[: -len(SUFFIX)])  # a companion to be
        return None

    @_fresh
    def owners(self, include_deleted: bool = True) -> dict[str, str]:
        """Every stored subject's owner (``owner``), by subject."""
        self.refresh()
        return {
            s: self._owner_folded(s) or HUB_TENANT
            for s, versions in self._state.subjects.items()
            if include_deleted or any(not v.deleted for v in versions.values())
        }

    @_fresh
    def unowned(self) -> list[str]:
        """Subjects whose records name no tenant (registered before ownership existed)."""
        self.refresh()
        return sorted(s for s in self._state.subjects if s not in self._state.owners)

    def record_owners(self, owners: dict[str, str]) -> list[str]:
        """Write each unowned subject's owner (``registry.owners.adopt``): its version records
        again, the same id, version, schema and deleted flag, now naming the tenant. A subject
        that has an owner by now is left as it is. The subjects written."""
        with self._exclusive():
            self.refresh()
            st = self._state
            records: list[Record] = []
            done: list[str] = []
            for subject, tenant in sorted(owners.items()):
                if subject in st.owners or subject not in st.subjects:
                    continue
                done.append(subject)
                for sv in sorted(st.subjects[subject].values(), key=lambda v: v.version):
                    records.append(
                        self._schema_record(
                            SubjectVersion(
                                sv.subject, sv.version, sv.id, sv.schema, sv.deleted, tenant
                            )
                        )
                    )
            if records:
                self._write(records)
            return done

    def id_tenants(self, schema_id: int, refresh: bool = True) -> frozenset[str]:
        """The tenants that own, or owned, a subject holding ``schema_id``; empty when no
        record holding it names a tenant (registered before ownership: everyone's).
        ``SchemaNotFound`` for an unknown id, after a catch-up (``refresh=False``: without one,
        as folded so far)."""
        with self._lock:
            if refresh:
                self.get_by_id(schema_id)  # raises SchemaNotFound
            elif schema_id not in self._state.schemas:
                raise SchemaNotFound(f"Schema id {schema_id} not found.")
            return frozenset(self._state.id_tenants.get(schema_id, ()))

    # -- reading ----------------------------------------------------------------------------
    @_fresh
    def subjects(self, include_deleted: bool = False, prefix: str = "") -> list[str]:
        self.refresh()
        return sorted(
            s
            for s, versions in self._state.subjects.items()
            if s.startswith(prefix)
            and (include_deleted or any(not v.deleted for v in versions.values()))
        )

    @_fresh
    def versions(self, subject: str, include_deleted: bool = False) -> list[int]:
        self.refresh()
        return self._versions_folded(subject, include_deleted)

    def _versions_folded(self, subject: str, include_deleted: bool = False) -> list[int]:
        """``versions`` of the state folded so far (no catch-up); under the lock."""
        found = [
            v.version
            for v in self._state.subjects.get(subject, {}).values()
            if include_deleted or not v.deleted
        ]
        if not found:
            raise SubjectNotFound(f"Subject {subject!r} not found.")
        return sorted(found)

    @_fresh
    def get_version(
        self, subject: str, version: int | str, include_deleted: bool = False
    ) -> SubjectVersion:
        """A subject's version by number, ``latest`` or ``-1``; raises NotFound errors."""
        self.refresh()
        return self._version_folded(subject, version, include_deleted)

    def writer_version(self, subject: str) -> SubjectVersion:
        """``get_version(subject, "latest")`` for a write (``ingest.targets``): its catch-up
        is a watched one (the module's docstring: another process's registration is seen
        within ``tail_watch_s`` of its commit, this process's at once); raises NotFound
        errors. Nested in another registry call: that call's catch-up rules."""
        with self._arrived() as outermost:
            if outermost:
                self._fold.catch_up(self._arrival.ticket, recent=True)  # before the lock wait
            with self._lock:
                if not outermost:
                    self.refresh()
                return self._version_folded(subject, "latest")

    def _version_folded(
        self, subject: str, version: int | str, include_deleted: bool = False
    ) -> SubjectVersion:
        """``get_version`` of the state folded so far (no catch-up); under the lock."""
        numbers = self._versions_folded(subject, include_deleted)
        if version in ("latest", -1, "-1"):
            number = numbers[-1]
        else:
            try:
                number = int(version)
            except ValueError as exc:
                raise InvalidInput(
                    f"Version {version!r} is not a positive integer or 'latest'.",
                    code="invalid_version",
                ) from exc
            if number < 1:
                raise InvalidInput(
                    f"Version {number} is not valid: versions start at 1.", code="invalid_version"
                )
            if number not in numbers:
                raise VersionNotFound(f"Version {number} of subject {subject!r} not found.")
        return self._state.subjects[subject][number]

    def get_by_id(self, schema_id: int) -> StoredSchema:
        """The schema with this id. An id never changes its schema and the fold never forgets
        one (deletes remove subject versions, not ids), so a known id is answered from memory
        without reading the log; only an unknown id refreshes first."""
        found = self._state.schemas.get(schema_id)  # a dict read: atomic, no lock needed
        if found is not None:
            return found
        with self._lock:
            return self._get_by_id_refreshed(schema_id)

    def _get_by_id_refreshed(self, schema_id: int) -> StoredSchema:
        self.refresh()
        found = self._state.schemas.get(schema_id)
        if found is None:
            raise SchemaNotFound(f"Schema id {schema_id} not found.")
        return found

    @_locked
    def subject_versions_of(
        self, schema_id: int, include_deleted: bool = False
    ) -> list[SubjectVersion]:
        self.get_by_id(schema_id)
        return sorted(
            (
                v
                for versions in self._state.subjects.values()
                for v in versions.values()
                if v.id == schema_id and (include_deleted or not v.deleted)
            ),
            key=lambda v: (v.subject, v.version),
        )

    @_fresh
    def referenced_by(self, subject: str, version: int | str) -> list[int]:
        sv = self.get_version(subject, version)
        return sorted(
            {
                s.id
                for versions in self._state.subjects.values()
                for s in versions.values()
                if not s.deleted
                and any(
                    r.subject == subject and r.version == sv.version for r in s.schema.references
                )
            }
        )

    @_fresh
    def lookup(
        self,
        subject: str,
        text: str,
        schema_type: str = "AVRO",
        references: Sequence[Reference] = (),
        include_deleted: bool = False,
    ) -> SubjectVersion:
        """The subject's version holding this schema; raises SubjectNotFound / SchemaNotFound."""
        self.versions(subject, include_deleted)  # raises SubjectNotFound
        parsed = self._parse_new(text, schema_type, references)
        schema_id = self._state.ids_by_identity.get((parsed.canonical, tuple(references)))
        for sv in sorted(self._state.subjects[subject].values(), key=lambda v: -v.version):
            if sv.id == schema_id and (include_deleted or not sv.deleted):
                return sv
        if self._plain_of_live(subject, text, schema_type, references):
            companion = plain_subject(subject)
            if companion in self._state.subjects:
                return self.lookup(companion, text, schema_type, (), include_deleted)
            raise SchemaNotFound(
                f"This is the plain form of a schema of subject {subject!r}, whose PII is stored "
                f"encrypted; register it (POST /subjects/{subject}/versions) and the hub keeps "
                f"it under {companion!r} and encrypts values written with it at ingest."
            )
        raise SchemaNotFound(f"This schema is not registered under subject {subject!r}.")

    def _plain_of_live(
        self, subject: str, text: str, schema_type: str, references: Sequence[Reference]
    ) -> bool:
        """True when ``text`` is the plain form of one of ``subject``'s live log schemas."""
        if schema_type != "AVRO" or references or subject not in self._state.subjects:
            return False
        encrypted = log_form(text)
        if encrypted is None:
            return False
        schema_id = self._state.ids_by_identity.get((parse_schema(encrypted).canonical, ()))
        return any(
            sv.id == schema_id and not sv.deleted for sv in self._state.subjects[subject].values()
        )

    # -- compatibility ----------------------------------------------------------------------
    @_fresh
    def check(
        self,
        subject: str,
        text: str,
        schema_type: str = "AVRO",
        references: Sequence[Reference] = (),
        version: int | str | None = None,
        as_missing: bool = False,
    ) -> list[Incompatibility]:
        """Incompatibilities of a candidate schema.

        With ``version`` (a number or ``latest``) the candidate is checked against that one
        version under the subject's level, non-transitively; without, against the versions the
        subject's level names (the latest, or all for *_TRANSITIVE levels). ``as_missing``:
        answered as for a subject that does not exist (one the caller may not see).
        """
        parsed = self._parse_new(text, schema_type, references)
        self.refresh()  # once: level, versions and schemas below come from the same fold
        return self._check_folded(subject, parsed, version, as_missing)

    def _check_folded(
        self,
        subject: str,
        parsed: ParsedSchema,
        version: int | str | None = None,
        as_missing: bool = False,
    ) -> list[Incompatibility]:
        """``check`` of a parsed candidate against the state folded so far; under the lock."""
        level = CompatibilityLevel(self._compatibility_folded(subject))
        try:
            if as_missing:
                raise SubjectNotFound(f"Subject {subject!r} not found.")
            live = self._versions_folded(subject)
        except SubjectNotFound:
            if version not in (None, "latest", -1, "-1"):
                raise
            return []
        if version is not None:
            chosen = [self._version_folded(subject, version).id]
            level = CompatibilityLevel(level.value.replace("_TRANSITIVE", ""))
        else:
            chosen = [self._state.subjects[subject][v].id for v in live]
        previous = [self.parsed(i) for i in chosen]
        return check_level(parsed, previous, level, strict_logical_types=self.strict_logical_types)

    # -- writing ----------------------------------------------------------------------------
    @_again_after_lost_race
    def register(
        self,
        subject: str,
        text: str,
        schema_type: str = "AVRO",
        references: Sequence[Reference] = (),
        *,
        schema_id: int | None = None,
        version: int | None = None,
        append: Appender | None = None,
        seal: bool = True,
        tenant: str | None = None,
    ) -> SubjectVersion:
        """Register a schema under a subject; idempotent. ``schema_id``/``version`` in IMPORT mode.
        Registered again when its record lost its id to another process's
        (``_again_after_lost_race``).

        ``tenant``: the tenant registering (a new subject becomes its own); a subject another
        tenant owns is refused (``SubjectOwned``) before anything else is answered, the
        idempotent answer included (it would tell whether the subject holds a schema). None:
        the hub's own callers, which write under the subject's owner.

        A plain Avro schema with fields classified PII (``seal``, the default) is never a
        subject's version as given: its log form (``core.pii.encrypted_schema``) is registered
        under the subject and the plain form under ``<subject>-plain`` (see
        ``registry.plain``), whose version is returned, as for the hub's own domain schemas.

        Steps, 1-6 under the registry's lock: 1. wait until no other registration of this
        subject (and no other writer) is in flight, catching up with ``_schemas``; 2. parse and
        validate; 3. return the existing version if this schema is already live in the subject;
        4. check compatibility; 5. choose the id (the global id of an identical schema, folded
        or reserved, else one above every id folded or ever reserved here) and the next
        version; 6. reserve them. Then, with the lock released so that concurrent
        registrations share one transaction (the decision committer's batch): 7. append one
        record (through ``append`` when given, e.g. with the decision that allowed it, else the
        log's own append); 8. under the lock again, end the reservation and fold the record
        back (the topic, not this method, is the source of truth). A failed append ends the
        reservation; its id is not handed out again by this process (the append may still
        land, e.g. after a timeout), its version is (the subject's next registration waited).
        IMPORT mode and explicit ids wait for every reservation and keep the lock until the
        record is stored.
        """
        _validate_subject(subject)
        explicit = schema_id is not None or version is not None
        # Step 1's catch-up is shared like a reader's and read before the lock wait
        # (``_caught_up``): concurrent registrations no longer read the log one after another
        # under the lock.
        with self._caught_up():
            importing = self._await_turn(subject, explicit)  # 1
            owner = self._owner_folded(subject)
            if tenant is not None and owner is not None and owner != tenant:
                raise SubjectOwned(
                    f"Subject {subject!r} belongs to another tenant: register your schema "
                    "under a subject name of your own."
                )
            if tenant is not None and owner is None and subject.endswith(SUFFIX):
                # ``<base>-plain`` is the companion of ``<base>`` (``registry.plain``), owned by
                # whoever owns the base. A tenant registering one before its base exists would
                # own the companion of a subject another tenant registers later, and every PII
                # schema of that subject would be refused (s19 red team c).
                raise SubjectOwned(
                    f"Subject {subject!r}: names ending in {SUFFIX!r} hold the plain forms of "
                    f"the PII schemas of the subject without it, kept there by the hub: "
                    f"register your schema under {subject[: -len(SUFFIX)]!r} (the hub keeps "
                    "its plain form here) or under a subject name of your own."
                )
            if subject not in self._state.subjects:  # a new name: no look-alikes
                refuse_unsafe_new_subject(subject)
            writer = owner or tenant or HUB_TENANT
            parsed = self._parse_new(text, schema_type, references)  # 2
            self._refuse_falsely_sealed(subject, parsed, schema_type)
            redirect = self._plain_of_live(subject, text, schema_type, references)
            sealed = None
            if not (redirect or importing or explicit or not seal):
                sealed = self._sealed_form(subject, parsed, schema_type, references)
            elif importing and seal and not redirect:
                self._refuse_plain_import(subject, parsed, schema_type, references)
            if redirect or sealed is not None:
                self._refuse_read_only(subject)
            else:
                refs = tuple(references)
                identity = (parsed.canonical, refs)
                st = self._state
                existing_id = st.ids_by_identity.get(identity)
                versions = st.subjects.get(subject, {})
                for sv in versions.values():  # 3
                    if sv.id == existing_id and not sv.deleted:
                        return sv
                # Read-only refuses writes; the answer above writes nothing (as a lookup).
                self._refuse_read_only(subject)
                self._refuse_declassified(subject, parsed, refs, schema_type)
                if explicit and not importing:
                    raise InvalidInput(
                        "An explicit schema id or version is only accepted in IMPORT mode.",
                        code="not_import_mode",
                    )
                if not importing:
                    self._refuse_incompatible(subject, parsed)  # 4
                    self._refuse_over_caps(subject, tenant)
                new_version = version or max(versions, default=0) + 1  # 5
                if new_version in versions:
                    # IMPORT must not rewrite history: the version's readers (and every
                    # record written with it) keep the schema they were given.
                    raise Conflict(
                        f"Version {new_version} of subject {subject!r} already holds schema id "
                        f"{versions[new_version].id}: importing a different schema under it "
                        "is refused; import it as a new version.",
                        code="version_in_use",
                    )
                if importing:
                    new_id = self._import_id(schema_id, existing_id, identity)
                    stored = StoredSchema(new_id, text, schema_type.upper(), refs)
                    sv = SubjectVersion(subject, new_version, new_id, stored, tenant=writer)
                    self._write([self._schema_record(sv)], append)  # 7, 8 with the lock held
                    got = st.subjects.get(subject, {}).get(new_version)
                    if got is None or got.id != new_id:  # another process took the id first
                        raise Conflict(
                            f"Schema id {new_id} was taken by another registration while this "
                            "import was stored: nothing was imported; import it again.",
                            code="id_in_use",
                        )
                    return got
                new_id, took = self._reserve(subject, existing_id, identity)  # 6
                stored = StoredSchema(new_id, text, schema_type.upper(), refs)
                sv = SubjectVersion(subject, new_version, new_id, stored, tenant=writer)
        if sealed is not None:
            # The log form first, so that ingest never meets the plain one as the subject's
            # version; it is the version the caller's decision allowed, so it takes ``append``
            # (one commit per held decision) and the companion the log's own append. A failure
            # between them leaves the subject sealed; registering again adds the companion.
            self.register(
                subject, sealed, schema_type, references, append=append, seal=False, tenant=writer
            )
            return self.register(plain_subject(subject), text, seal=False, tenant=writer)
        if redirect:  # see hub.registry.plain
            return self.register(
                plain_subject(subject), text, append=append, seal=False, tenant=writer
            )
        return self._store_reserved(sv, parsed, identity if took else None, append)

    def _refuse_over_caps(self, subject: str, tenant: str | None) -> None:
        """Refuse a new version (``TenantQuotaExceeded``) that would pass its tenant's caps on
        subjects or versions (``max_subjects_per_tenant``, ``max_versions_per_tenant``; 0 is
        off). Counted from the folded state, so a restart keeps them. A ``-plain`` companion
        (one per subject, kept beside it) is not a subject of the count, but its versions are
        versions (a PII schema's version counts twice, its log form and its plain form): a
        tenant registering under ``<its subject>-plain`` directly adds versions too. The hub's
        own tenant is not capped. Registrations in flight are not counted: concurrent ones of
        several subjects may pass a cap by as many as run at once. Under the lock."""
        caps = self.max_subjects_per_tenant, self.max_versions_per_tenant
        if tenant is None or tenant == HUB_TENANT or not any(caps):
            return
        st = self._state
        owned = [s for s, owner in st.owners.items() if owner == tenant]
        mine = [s for s in owned if not s.endswith(SUFFIX)]
        new_subject = subject not in st.subjects and not subject.endswith(SUFFIX)
        if caps[0] and new_subject and len(mine) >= caps[0]:
            self._refused(tenant, "registry_subjects")
            raise TenantQuotaExceeded(
                f"Subject {subject!r} refused: tenant {tenant!r} owns {len(mine)} subjects, "
                f"its cap (HUB_REGISTRY_MAX_SUBJECTS_PER_TENANT={caps[0]}). Nothing was "
                "registered: add a version to a subject of your own, or ask the operator to "
                "raise the cap.",
                code="tenant_subjects_full",
            )
        versions = sum(len(st.subjects.get(s, {})) for s in owned)
        if caps[1] and versions >= caps[1]:
            self._refused(tenant, "registry_versions")
            raise TenantQuotaExceeded(
                f"Schema under subject {subject!r} refused: tenant {tenant!r}'s subjects hold "
                f"{versions} schema versions (deleted ones included), its cap "
                f"(HUB_REGISTRY_MAX_VERSIONS_PER_TENANT={caps[1]}). Nothing was registered: "
                "ask the operator to raise the cap.",
                code="tenant_versions_full",
            )

    def _refuse_falsely_sealed(self, subject: str, parsed: ParsedSchema, schema_type: str) -> None:
        """Refuse a schema marking a field ``hub.encrypted`` that is not ciphertext
        (``registry.plain.falsely_sealed``): registered as a log form, it told an auditor the
        field was crypto-shreddable (and passed IMPORT's plain-PII refusal) while it held the
        value in clear."""
        if schema_type.upper() != "AVRO":
            return
        bad = falsely_sealed(parsed.text)
        if bad:
            raise InvalidSchema(
                f"Schema being registered under subject {subject!r} marks field(s) "
                f"{', '.join(bad)} hub.encrypted but does not store them as ciphertext (type "
                'bytes or ["null", "bytes"], with hub.plaintype): register the plain schema '
                "(the registry derives the log form), or core.pii.encrypted_schema's output."
            )

    def _refuse_plain_import(
        self, subject: str, parsed: ParsedSchema, schema_type: str, refs: Sequence[Reference]
    ) -> None:
        """IMPORT stores a schema as given, under the id and version the source registry gave
        it, so it cannot swap in the log form as ``register`` does in READWRITE: a schema that
        classifies fields PII but stores them in clear is refused (``InvalidSchema``) naming
        them, rather than becoming the subject's version, whose records would then carry the
        PII in clear, out of erasure's reach. Under the lock."""
        if schema_type.upper() != "AVRO":
            return
        existing_id = self._state.ids_by_identity.get((parsed.canonical, tuple(refs)))
        if any(
            sv.id == existing_id and not sv.deleted
            for sv in self._state.subjects.get(subject, {}).values()
        ):
            return  # already this subject's version: answered as a lookup, nothing stored
        clear = unsealed(self._standalone(parsed, refs).text if refs else parsed.text)
        if clear:
            raise InvalidSchema(
                f"Subject {subject!r} is in IMPORT mode, which stores a schema as given, and "
                f"this one classifies field(s) {', '.join(clear)} as PII but stores them in "
                "clear: its records would carry that PII unencrypted, beyond erasure. Import "
                "the schema's log form instead (core.pii.encrypted_schema: PII fields as "
                "encrypted bytes), or register the plain form outside IMPORT mode (the "
                "registry then stores the log form and keeps the plain one under "
                f"{plain_subject(subject)!r})."
            )

    def _sealed_form(
        self, subject: str, parsed: ParsedSchema, schema_type: str, refs: Sequence[Reference]
    ) -> str | None:
        """The log form to register instead of ``parsed`` when it classifies fields PII but
        stores them in clear, else None. A schema registered in plain form through the
        Confluent API was stored as given: its PII went into the log in clear, erasure shredded
        nothing, while the schema told an auditor the field was crypto-shreddable. Under the
        lock."""
        if schema_type.upper() != "AVRO":
            return None
        existing_id = self._state.ids_by_identity.get((parsed.canonical, tuple(refs)))
        if any(
            sv.id == existing_id and not sv.deleted
            for sv in self._state.subjects.get(subject, {}).values()
        ):
            return None  # already this subject's version (before sealing existed): idempotent
        if refs:
            clear = unsealed(self._standalone(parsed, refs).text)
            if clear:
                raise InvalidSchema(
                    f"Schema being registered under subject {subject!r} classifies field(s) "
                    f"{', '.join(clear)} as PII but stores them in clear, and it has "
                    "references, so the registry cannot derive its log form: register its log "
                    "form (core.pii.encrypted_schema: PII fields as encrypted bytes), and "
                    "register each referenced schema with PII through "
                    "POST /subjects/{subject}/versions, which keeps its log form."
                )
            return None
        if not unsealed(parsed.text):
            return None
        from core.pii import encrypted_schema

        return encrypted_schema(parsed.text)  # raises InvalidSchema naming what to change

    def _await_turn(self, subject: str, alone: bool) -> bool:
        """Step 1 of ``register``, under the lock: wait until no registration of ``subject``
        (of any subject when ``alone`` or in IMPORT mode) is in flight and no other writer
        waits for them; catch up. Returns True when the subject is in IMPORT mode."""
        r = self._reserved
        while True:
            self.refresh()
            importing = self._mode_folded(subject) == "IMPORT"
            busy = bool(r.subjects) if alone or importing else subject in r.subjects
            if not busy and not r.writers_waiting:
                return importing
            self._settled.wait()

    def _refuse_declassified(
        self, subject: str, parsed: ParsedSchema, refs: Sequence[Reference], schema_type: str
    ) -> None:
        """Refuse a version that keeps a field some live version of ``subject`` classifies
        PII (or stores encrypted) without that protection. Shared subjects take every
        tenant's records, and the compatibility rules ignore the classification: one
        tenant's publisher registered ``hub.accounts.AccountOpened`` v2 with ``email`` a plain
        unclassified string, and every tenant's new accounts were stored in clear (no
        crypto-shredding) and shown unmasked to analysts. (A tenant's key may not change a
        shared subject at all now; the hub's own keys still meet this rule.)"""
        if schema_type.upper() != "AVRO":
            return
        from core.pii import declassified

        # Both sides standalone: a classification inside a referenced schema counts too.
        text = self._standalone(parsed, refs).text if refs else parsed.text
        for sv in self._state.subjects.get(subject, {}).values():
            if sv.deleted or sv.schema.schema_type != "AVRO":
                continue
            lost = declassified(self.parsed(sv.id).text, text)
            if lost:
                raise IncompatibleSchema(
                    f"Schema being registered under subject {subject!r} keeps field(s) "
                    f"{', '.join(lost)} that version {sv.version} classifies as PII (or stores "
                    "encrypted, or marks as the data subject) without that protection: keep "
                    '"classification": "pii" and "hub.data_subject" where they are, and register '
                    "the subject's log form (core.pii.encrypted_schema: PII fields as encrypted "
                    "bytes) where it stores them encrypted.",
                    [f"PII_DECLASSIFIED at {p}" for p in lost],
                )

    def _refuse_incompatible(self, subject: str, parsed: ParsedSchema) -> None:
        problems = self._check_folded(subject, parsed)
        if problems:
            level = self._compatibility_folded(subject)
            raise IncompatibleSchema(
                f"Schema being registered is incompatible with an earlier schema for "
                f"subject {subject!r} under {level}: "
                + "; ".join(f"{p.path}: {p.message} [{p.rule}]" for p in problems),
                [f"{p.rule} at {p.path}: {p.message}" for p in problems],
            )

    def _import_id(
        self,
        schema_id: int | None,
        existing_id: int | None,
        identity: tuple[str, tuple[Reference, ...]],
    ) -> int:
        st = self._state
        if schema_id is None:
            return existing_id or max(max(st.schemas, default=0), self._reserved.high_id) + 1
        clash = st.schemas.get(schema_id)
        if clash is not None and (self._canonical_of(clash), clash.references) != identity:
            raise Conflict(
                f"Schema id {schema_id} is already used by a different schema.",
                code="id_in_use",
            )
        return schema_id

    def _reserve(
        self, subject: str, existing_id: int | None, identity: tuple[str, tuple[Reference, ...]]
    ) -> tuple[int, bool]:
        """Step 6, under the lock: reserve the subject and an id; True when ``identity``'s
        reservation was taken (to be given back by ``_end_reservation``)."""
        r = self._reserved
        r.subjects.add(subject)
        if existing_id is not None:
            return existing_id, False
        held = r.ids.get(identity)
        if held is not None:
            held[1] += 1
            return held[0], True
        new_id = max(max(self._state.schemas, default=0), r.high_id) + 1
        r.high_id = new_id
        r.ids[identity] = [new_id, 1]
        return new_id, True

    def _end_reservation(
        self, subject: str, identity: tuple[str, tuple[Reference, ...]] | None
    ) -> None:
        r = self._reserved
        r.subjects.discard(subject)
        held = None if identity is None else r.ids.get(identity)
        if identity is not None and held is not None:
            held[1] -= 1
            if held[1] == 0:
                del r.ids[identity]
        self._settled.notify_all()

    def _store_reserved(
        self,
        sv: SubjectVersion,
        parsed: ParsedSchema,
        identity: tuple[str, tuple[Reference, ...]] | None,
        append: Appender | None,
    ) -> SubjectVersion:
        """Steps 7 and 8 of ``register``: append the reserved version without the lock, then
        end the reservation and fold the record back."""
        records = [self._schema_record(sv)]
        try:
            with self._caught_up(fresh=True):  # the log read before the lock wait
                # A mode set by another process (sharing the log) since step 1: this process's
                # mode changes wait for the reservation (``fenced``), another's cannot.
                self._require_writable(sv.subject)
            if append is None:  # 7
                self._log.append(SCHEMAS_TOPIC, records)
            else:
                append(SCHEMAS_TOPIC, records)
        except BaseException:
            with self._lock:
                self._end_reservation(sv.subject, identity)
            raise
        # 8. Not yet folded (the fold would parse it again); one with references is left to
        # ``parsed``, which makes it standalone. Offered for this id AND text only: if another
        # process's record took the id first, the fold parses that one (``_LostRace``).
        pending = (sv.id, sv.schema.text)
        if sv.id not in self._state.schemas and not sv.schema.references:
            self._pending_parsed[pending] = parsed
        ended = False
        try:
            # arrived after the append returned (its record readable): the read, before the
            # lock wait and shared with the registrations stored with it, finds the record
            with self._caught_up(fresh=True):
                try:
                    self.refresh()
                    got = self._state.subjects.get(sv.subject, {}).get(sv.version)
                    if got is None or got.id != sv.id:
                        raise _LostRace(
                            f"version {sv.version} of {sv.subject!r} with id {sv.id}: "
                            f"the log holds {'nothing' if got is None else f'id {got.id}'}"
                        )
                    return got
                finally:
                    ended = True
                    self._end_reservation(sv.subject, identity)
        finally:
            self._pending_parsed.pop(pending, None)
            if not ended:  # the read before the lock wait raised
                with self._lock:
                    self._end_reservation(sv.subject, identity)

    def fenced(self) -> contextlib.AbstractContextManager[None]:
        """``_exclusive`` for a writer of ``_schemas`` records outside the registry (a governed
        level or mode change): no registration is in flight while it writes, so none checked
        under the old setting is stored after the new one."""
        return self._exclusive()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the lock with no registration in flight: a delete, level or mode is written
        after every registration that started before it, and none starts meanwhile."""
        with self._lock:
            r = self._reserved
            r.writers_waiting += 1
            try:
                while r.subjects:
                    self._settled.wait()
            finally:
                r.writers_waiting -= 1
            try:
                yield
            finally:
                self._settled.notify_all()

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        with self._exclusive():
            self._require_writable(subject)
            # ``latest`` means the latest live version; a number may name a soft-deleted one.
            latest = version in ("latest", -1, "-1")
            sv = self.get_version(subject, version, include_deleted=not latest)
            if sv.deleted and not permanent:
                raise SoftDeleted(
                    f"Version {sv.version} of subject {subject!r} is already soft-deleted: "
                    "delete it with permanent=true to remove it for good.",
                    code="version_soft_deleted",
                )
            if self.referenced_by_any(subject, sv.version):
                raise ReferenceExists(
                    f"Version {sv.version} of subject {subject!r} is referenced by another "
                    "schema: delete the referencing schemas first."
                )
            if permanent:
                if not sv.deleted:
                    raise NotSoftDeleted(
                        f"Version {sv.version} of subject {subject!r} must be soft-deleted "
                        "before it can be permanently deleted.",
                        code="version_not_soft_deleted",
                    )
                self._write([Record(value=None, key=self._key("SCHEMA", subject, sv.version))])
            else:
                self._write([self._schema_record(_deleted(sv))])
            return sv.version

    def delete_subject(
        self,
        subject: str,
        permanent: bool = False,
        *,
        on_drop: SettingsDropped | None = None,
    ) -> list[int]:
        """Delete a subject's versions (soft, or permanently after a soft delete). A soft delete
        also drops the subject's own level and mode; ``on_drop`` (given by the governed callers)
        is called with them, under the registry's lock, and returns more records (the change
        events of their removal, ``governance.configchanges``) that are appended in the same log
        transaction as the delete, or raises to refuse the delete with nothing written."""
        with self._exclusive():
            self._require_writable(subject)
            all_versions = self.versions(subject, include_deleted=True)
            live = [v for v in all_versions if not self._state.subjects[subject][v].deleted]
            for v in all_versions:
                if self.referenced_by_any(subject, v):
                    raise ReferenceExists(
                        f"Version {v} of subject {subject!r} is referenced by another schema: "
                        "delete the referencing schemas first."
                    )
            if permanent:
                if live:
                    raise NotSoftDeleted(
                        f"Subject {subject!r} must be soft-deleted before it can be "
                        "permanently deleted.",
                        code="subject_not_soft_deleted",
                    )
                self._write(
                    [Record(value=None, key=self._key("SCHEMA", subject, v)) for v in all_versions]
                )
                return all_versions
            if not live:
                raise SoftDeleted(
                    f"Subject {subject!r} is already soft-deleted: delete it with "
                    "permanent=true to remove it for good.",
                    code="subject_soft_deleted",
                )
            # As Confluent does, a soft delete also drops the subject's own config and mode, in
            # the same atomic batch, so that a re-created subject starts from the global ones.
            records = [
                self._schema_record(_deleted(self._state.subjects[subject][v])) for v in live
            ]
            dropped: dict[str, str] = {}
            if subject in self._state.config:
                records.append(Record(value=None, key=self._key("CONFIG", subject)))
                dropped["CONFIG"] = self._state.config[subject]
            if subject in self._state.mode:
                records.append(Record(value=None, key=self._key("MODE", subject)))
                dropped["MODE"] = self._state.mode[subject]
            extra = on_drop(subject, dropped) if on_drop is not None and dropped else ()
            if not extra:
                self._write(records)
                return live
            # one transaction: the settings are never gone without their change events
            with self._log.transaction(f"registry:delete:{subject}") as txn:
                txn.append(SCHEMAS_TOPIC, records)
                for topic, batch in extra:
                    txn.append(topic, batch)
            self.refresh()
            return live

    @_locked
    def referenced_by_any(self, subject: str, version: int) -> bool:
        return any(
            not s.deleted
            and any(r.subject == subject and r.version == version for r in s.schema.references)
            for versions in self._state.subjects.values()
            for s in versions.values()
        )

    @_fresh
    def schema_ids(self) -> list[int]:
        self.refresh()
        return sorted(self._state.schemas)


def _deleted(sv: SubjectVersion) -> SubjectVersion:
    return SubjectVersion(sv.subject, sv.version, sv.id, sv.schema, True, sv.tenant)


def _validate_subject(subject: str) -> None:
    if not subject or len(subject) > 255 or any(ord(c) < 32 for c in subject):
        raise InvalidInput(
            f"Subject name {subject!r} is invalid: use 1-255 printable characters.",
            code="invalid_subject",
        )
