"""Configuration changes are commands that become events: propose, approve, roll back.

Resources (``resource_of``)::

    rules:<subject>            the data-quality rule set of a subject (``ingest.rules``)
    registry.config            the registry's global compatibility level
    registry.config:<subject>  a subject's own compatibility level
    registry.mode              the registry's global mode (READWRITE, READONLY, IMPORT...)
    registry.mode:<subject>    a subject's own mode
    retention:<scope>          the retention policy of ``topic:<name>`` or ``projection:<name>``
                               (``governance.retention``), e.g. ``{"max_age_ms": 86400000}``
    alerts.rules               the console's alert rules (``governance.alertrules``)
    legalhold:<hold_id>        an active legal hold (``"held"``); the only change is its release
                               (``None``), always under the two-person rule
    migration:<name>           the digest of a one-off migration's plan (``hub migrate``), always
                               under the two-person rule

A value is JSON-ready; ``None`` means "no value of its own" (the shipped rules, the global or
default level, no retention policy). ``propose`` (who, why, the new value) 1. validates the value
(rules must parse and compile; a level must be one of Confluent's seven; a retention policy what
``Governance.check_policy`` accepts, and one with neither limit is ``None``); 2. reads the current
value; 3. computes the diff; 4. decides whether the two-person rule applies: the resource matches
an entry of the ACTIVE policy bundle's ``data.hub.two_person`` (an exact name, or a prefix ending
in ``*``, where ``registry.config:*`` also matches ``registry.config`` itself, and ``retention:*``
covers every scope); 5. appends, in ONE log transaction, ``ConfigChangeProposed`` and, when no
approval is needed, ``ConfigChangeApplied`` with the records that carry the effect
(``ConfigChanged`` on ``hub.config``; for the registry, its ``CONFIG`` record on ``_schemas``;
for retention, ``RetentionPolicySet`` on ``hub.governance``, the event the retention fold reads);
6. records the action on the audit ledger.

``approve`` by a principal other than the proposer appends ``ConfigChangeApproved``,
``ConfigChangeApplied`` and the effect in one transaction; it is refused when the current value
is no longer the one the change was proposed against (its diff would be stale: propose again).

An apply is a compare-and-set against the log, so that another process can't slip a change in
between the check and the append: before the check, the end offsets of the topics the value is
read from (``hub.config-changes`` and the resource's ``topics()``) are read; the transaction
that appends reads them again first and, when any moved, writes nothing, folds what was
appended and checks again (at most ``_ATTEMPTS`` times). So an approval whose value changed
meanwhile is refused (``StaleChange``, 409) with nothing of its effect written, and a proposal
applied at once records the value it really replaced. On the embedded log the transaction holds
the write lock, so the second read is atomic with the append; on Kafka, which has no such lock,
it only narrows the window.
``rollback`` is a new proposal whose value is that of an earlier change, under the same rules.
``withdraw_revoked`` (told by the keyring after each revocation) appends ``ConfigChangeWithdrawn``
for each pending change whose proposer may no longer propose it; a withdrawn change is never
approved (409 ``change_withdrawn``; an approval checked before the withdrawal was appended finds
``hub.config-changes`` moved, checks again and is refused).
``set_direct`` is what the direct paths (``PUT /config``, ``hub rules set``, ``PUT /v1/rules``,
``hub retention set``, ``POST /v1/retention/policies``) call: it refuses a resource under the
two-person rule, and otherwise applies at once.

Placing a legal hold is a direct operational act (``LegalHoldPlaced``, ``legalhold.write``), so
that a hold can be placed at once when a matter opens. Releasing one is a change of
``legalhold:<hold_id>`` to ``None`` that ALWAYS needs a second person, whatever the policy bundle
says (``requires_two_person``): a compliance officer also holds ``subject.erase`` and
``retention.write``, so one person alone could otherwise lift a hold and then erase the subject
or let retention cut what the hold kept. Its effect is the ``LegalHoldReleased`` event; the
approval also records ``legalhold.release`` on the ledger.

Callers ask the policy decision point first: ``config.propose`` and the resource's own write
action (``write_action``) to propose or roll back, ``config.approve`` to approve, ``config.read``
to read. The governed path never grants more than the direct one.
"""

from __future__ import annotations

import abc
import difflib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core import clock
from core.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TopicNotFound,
)
from core.ports.policy import HUB_TENANT, Principal
from governance.changes import (
    Identities,
    Need,
    NotAsShown,
    check_two_person,
    lost_right,
    refused_for_proposer,
    two_person_applies,
    two_person_entries,
    withdrawn_error,
)
from governance.configstore import (
    APPLIED,
    APPROVED,
    CONFIG_CHANGES_TOPIC,
    PROPOSED,
    WITHDRAWN,
    ConfigChange,
    ConfigChangeStore,
)
from governance.decisions import new_decision_id
from ingest.rules import RULES_RESOURCE_PREFIX

if TYPE_CHECKING:
    from core.events import OutgoingEvent
    from core.policybundle import PolicyBundle
    from core.ports.eventlog import EventLog, Record
    from governance.retention import Governance, RetentionPolicy
    from ingest.publish import Publisher
    from ingest.rules import RulesStore
    from registry.service import SchemaRegistry, SettingsDropped

CONFIG_TOPIC = "hub.config"
RULES_PREFIX = RULES_RESOURCE_PREFIX
REGISTRY_CONFIG = "registry.config"
REGISTRY_MODE = "registry.mode"
RETENTION_PREFIX = "retention:"
RETENTION_FIELDS = ("max_age_ms", "max_records", "time_column")
LEGALHOLD_PREFIX = "legalhold:"
MIGRATION_PREFIX = "migration:"
HELD = "held"  # the value of an active hold's resource (its details stay on hub.governance)

# Changes of one process are serialised (stale checks read, then append); across processes the
# end offsets checked in the appending transaction are (module docstring).
_LOCK = threading.RLock()
NOT_GIVEN: Any = object()  # ``approve``'s expected value when the approver named none


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_value_as_shown(change: ConfigChange, expected: Any) -> None:
    """Raise ``NotAsShown`` unless ``change`` sets the value the approver was shown."""
    now = None if change.new_value is None else json.loads(change.new_value)
    if _canonical(now) != _canonical(expected):
        raise NotAsShown(
            f"Configuration change {change.change_id} now sets {change.resource} to "
            f"{_canonical(now)[:200]}, not the value you were shown: it changed since. Nothing "
            "was approved; read it again (hub config show, GET /v1/config/changes/ID)."
        )


_ATTEMPTS = 5  # checks of one apply whose topics kept moving before it answers 409


class _Moved(Exception):
    """The guarded topics moved between the check and the appending transaction."""


class TwoPersonRequired(Forbidden):
    """A direct change of a resource under the two-person rule."""

    code = "two_person_required"


class StaleChange(Conflict):
    """The value changed since the change was proposed: its diff no longer holds."""

    code = "stale_config_change"


class UnknownResource(InvalidInput):
    code = "unknown_config_resource"


class ConfigBusy(Conflict):
    """The value's topics kept changing while an apply was checked: retry."""

    code = "config_busy"


class BundleSource(Protocol):
    """Where the active policy bundle comes from (``governance.store.PolicyStore``)."""

    def refresh(self) -> bool: ...

    def active_bundle(self) -> PolicyBundle: ...


class Auditor(Protocol):
    """The audit ledger (``ledger.service.Ledger``)."""

    def record_action(
        self,
        actor: str,
        action: str,
        resource: str,
        *,
        outcome: str = ...,
        details: Any = None,
        tenant: str = ...,
    ) -> Any: ...


Prepare = Callable[[str, Sequence["OutgoingEvent"]], list["Record"]]
Effect = list[tuple[str, list["Record"]]]


def registry_resource(subject: str | None) -> str:
    return REGISTRY_CONFIG if subject is None else f"{REGISTRY_CONFIG}:{subject}"


def registry_mode_resource(subject: str | None) -> str:
    return REGISTRY_MODE if subject is None else f"{REGISTRY_MODE}:{subject}"


def retention_resource(scope: str) -> str:
    return RETENTION_PREFIX + scope


def legalhold_resource(hold_id: str) -> str:
    return LEGALHOLD_PREFIX + hold_id


def write_action(resource: str) -> str:
    """The action the resource's direct path needs (also needed to propose a change of it)."""
    if resource.startswith(RULES_PREFIX):
        return "rules.write"
    if resource == REGISTRY_CONFIG or resource.startswith(REGISTRY_CONFIG + ":"):
        return "registry.config"
    if resource == REGISTRY_MODE or resource.startswith(REGISTRY_MODE + ":"):
        return "registry.config"  # the action PUT /mode needs
    if resource.startswith(RETENTION_PREFIX):
        return "retention.write"
    if resource == "alerts.rules":  # governance.alertrules
        return "rules.write"
    if resource.startswith(LEGALHOLD_PREFIX):
        return "legalhold.write"
    if resource.startswith(MIGRATION_PREFIX):
        return "backup.restore"  # it changes what a restore trusts (``hub migrate``)
    raise _unknown(resource)


def hub_wide(resource: str) -> bool:
    """Whether writing ``resource`` is decided as the hub's own tenant's
    (``core.ports.policy.HUB_TENANT``): a retention policy deletes the records of every tenant
    in its topic or projection (topics are shared; a record's tenant is a header), so a key of
    another tenant MUST NOT set one without ``tenant.all``. The same holds for a subject's
    quality rules (``rules:<subject>``: they decide which of every tenant's records on the
    subject's topic are quarantined), the console's alert rules (``alerts.rules``: one set
    for the whole hub) and the registry's compatibility levels and modes (``registry.config``,
    ``registry.mode``, global or a subject's: subjects are shared, and a READONLY mode or a
    level of NONE holds for every tenant's producers)."""
    return (
        resource.startswith((RETENTION_PREFIX, RULES_PREFIX, MIGRATION_PREFIX))
        or resource == "alerts.rules"
        or resource in (REGISTRY_CONFIG, REGISTRY_MODE)
        or resource.startswith((REGISTRY_CONFIG + ":", REGISTRY_MODE + ":"))
    )


def to_text(value: Any) -> str | None:
    """The canonical JSON text of a value (``None`` stays ``None``: no value of its own)."""
    return None if value is None else json.dumps(value, sort_keys=True)


def from_text(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def value_diff(resource: str, old: str | None, new: str | None) -> str:
    """A unified diff of two values, pretty-printed as JSON (``null``: no value of its own)."""

    def lines(text: str | None) -> list[str]:
        pretty = json.dumps(from_text(text), indent=2, sort_keys=True)
        return [line + "\n" for line in pretty.splitlines()]

    return "".join(
        difflib.unified_diff(
            lines(old), lines(new), fromfile=f"a/{resource}", tofile=f"b/{resource}"
        )
    )


def _now() -> str:
    return clock.now().isoformat()


def _event(
    value: dict[str, Any], event_type: str | None, key: str, change_id: str
) -> OutgoingEvent:
    from core.events import OutgoingEvent

    return OutgoingEvent(value=value, event_type=event_type, key=key, correlation_id=change_id)


def _config_changed(
    key: str, old: str | None, new: str | None, by: str, reason: str, subject: str, change_id: str
) -> OutgoingEvent:
    """A ``ConfigChanged`` event (on ``hub.config``): what changed from what to what, by whom
    and why, correlated with the change that applied it; ``subject`` is the record key."""
    return _event(
        {
            "key": key,
            "old_value": old,
            "new_value": new,
            "changed_by": by,
            "reason": reason,
            "changed_at": _now(),
        },
        None,
        subject,
        change_id,
    )


def _unknown(resource: str) -> UnknownResource:
    return UnknownResource(
        f"Configuration resource {resource!r} is unknown: use rules:<subject>, "
        f"{REGISTRY_CONFIG}, {REGISTRY_CONFIG}:<subject>, {REGISTRY_MODE}, "
        f"{REGISTRY_MODE}:<subject>, retention:topic:<name> "
        "(retention:projection:<name>), alerts.rules or legalhold:<hold_id>."
    )


def _retention_value(
    max_age_ms: int | None, max_records: int | None, time_column: str | None
) -> dict[str, Any] | None:
    """The canonical value of a retention policy: its set fields; ``None`` without a limit."""
    if max_age_ms is None and max_records is None:
        return None
    fields = {"max_age_ms": max_age_ms, "max_records": max_records, "time_column": time_column}
    return {k: v for k, v in fields.items() if v is not None}


# -- resources ------------------------------------------------------------------------------------
class ConfigResource(abc.ABC):
    """One configurable item. Values are JSON-ready; ``None`` is "no value of its own"."""

    name: str

    @abc.abstractmethod
    def current(self) -> Any:
        """The value in force now (``None`` when the default applies)."""

    @abc.abstractmethod
    def validate(self, value: Any) -> Any:
        """The canonical form of a proposed value; raises ``InvalidInput`` naming the problem."""

    @abc.abstractmethod
    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        """The records, per topic, that make ``value`` the one in force once appended."""

    @abc.abstractmethod
    def refresh(self) -> None:
        """Fold the records ``effect`` produced (after they were appended)."""

    @abc.abstractmethod
    def topics(self) -> tuple[str, ...]:
        """The topics ``current`` is folded from (besides ``hub.config-changes``)."""

    def fold(self) -> None:
        """Fold what any process appended, before a check reads ``current`` (``refresh``
        unless that does more than fold)."""
        self.refresh()


@dataclass
class RulesResource(ConfigResource):
    name: str
    subject: str
    rules: RulesStore

    def current(self) -> Any:
        rule_set = self.rules.override(self.subject)
        return None if rule_set is None else rule_set.as_dict()

    def validate(self, value: Any) -> Any:
        rule_set = self.rules.parse(self.subject, value)
        return None if rule_set is None else rule_set.as_dict()

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        new = self.rules.parse(self.subject, value)
        event = self.rules.change_event(self.subject, new, by, reason, change_id)
        return [(CONFIG_TOPIC, prepare(CONFIG_TOPIC, [event]))]

    def refresh(self) -> None:
        self.rules.refresh()

    def topics(self) -> tuple[str, ...]:
        return (CONFIG_TOPIC,)


@dataclass
class _RegistrySetting(ConfigResource):
    """A registry setting of a subject (or the global one) itself; ``None`` when none is set.
    Its effect is its record on ``_schemas`` and ``ConfigChanged`` (old, new, who, why) on
    ``hub.config``. Subclasses name the setting and the registry's calls for it."""

    name: str
    subject: str | None
    registry: SchemaRegistry

    key: ClassVar[str]  # the ConfigChanged key, ".<subject>" added for a subject's own
    what: ClassVar[str]  # with ``such_as`` and ``invalid_code``: the error for a non-string
    such_as: ClassVar[str]
    invalid_code: ClassVar[str]

    @abc.abstractmethod
    def _check(self, value: str) -> Any:
        """The registry's canonical form of ``value`` (raises naming the problem)."""

    @abc.abstractmethod
    def _record(self, value: Any) -> Any:
        """The ``_schemas`` record that sets ``value`` on ``self.subject``."""

    def validate(self, value: Any) -> Any:
        if value is None:
            return None  # the default: also how an internal subject's stray setting is undone
        from registry.internal import is_internal_subject

        if self.subject is not None and is_internal_subject(self.subject):
            # As PUT /config/{subject} and PUT /mode/{subject} refuse it: a READONLY or IMPORT
            # internal subject would stop the hub's own release from registering its schemas.
            raise Forbidden(
                f"Subject {self.subject!r} belongs to an internal topic of the hub: setting its "
                f"{self.what} is refused for every role.",
                code="internal_subject",
            )
        if not isinstance(value, str):
            raise InvalidInput(
                f"A {self.what} is a string such as '{self.such_as}', not {value!r}.",
                code=self.invalid_code,
            )
        return self._check(value)

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        changed = self.changed(self.current(), value, by, reason, change_id)
        return [
            ("_schemas", [self._record(value)]),
            (CONFIG_TOPIC, prepare(CONFIG_TOPIC, [changed])),
        ]

    def changed(self, old: Any, new: Any, by: str, reason: str, change_id: str) -> OutgoingEvent:
        """The ``ConfigChanged`` event of a change from ``old`` to ``new``."""
        key = self.key + ("" if self.subject is None else f".{self.subject}")
        return _config_changed(key, to_text(old), to_text(new), by, reason, key, change_id)

    def refresh(self) -> None:
        self.registry.refresh()

    def topics(self) -> tuple[str, ...]:
        return ("_schemas",)


@dataclass
class RegistryConfigResource(_RegistrySetting):
    """``registry.compatibility[:<subject>]``: the compatibility level set on the subject (or
    globally) itself."""

    key: ClassVar[str] = "registry.compatibility"
    what: ClassVar[str] = "compatibility level"
    such_as: ClassVar[str] = "BACKWARD"
    invalid_code: ClassVar[str] = "invalid_compatibility_level"

    def current(self) -> Any:
        return self.registry.own_compatibility(self.subject)

    def _check(self, value: str) -> Any:
        return self.registry.check_compatibility_level(value)

    def _record(self, value: Any) -> Any:
        return self.registry.config_record(value, self.subject)


@dataclass
class RegistryModeResource(_RegistrySetting):
    """``registry.mode[:<subject>]``: the mode set on the subject (or globally) itself; ``None``
    when none is (READWRITE, or the global mode, applies)."""

    key: ClassVar[str] = "registry.mode"
    what: ClassVar[str] = "registry mode"
    such_as: ClassVar[str] = "READONLY"
    invalid_code: ClassVar[str] = "invalid_mode"

    def current(self) -> Any:
        return self.registry.own_mode(self.subject)

    def _check(self, value: str) -> Any:
        return self.registry.check_mode(value)

    def _record(self, value: Any) -> Any:
        return self.registry.mode_record(value, self.subject)


@dataclass
class RetentionResource(ConfigResource):
    """``retention:<scope>``: the policy in force, as its set fields (``max_age_ms``,
    ``max_records``, ``time_column``); ``None`` when the scope has none."""

    name: str
    scope: str
    governance: Governance

    def current(self) -> Any:
        policy = self.governance.policies().get(self.scope)
        if policy is None:
            return None
        return _retention_value(policy.max_age_ms, policy.max_records, policy.time_column)

    def validate(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict) or not set(value) <= set(RETENTION_FIELDS):
            raise InvalidInput(
                f"A retention policy is an object of {', '.join(RETENTION_FIELDS)} (e.g. "
                f'{{"max_age_ms": 86400000}}; null clears it), not {value!r}.',
                code="invalid_retention_policy",
            )
        max_age_ms, max_records, time_column = (value.get(k) for k in RETENTION_FIELDS)
        self.governance.check_policy(
            self.scope, max_age_ms=max_age_ms, max_records=max_records, time_column=time_column
        )
        return _retention_value(max_age_ms, max_records, time_column)

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        from governance.retention import GOVERNANCE_TOPIC, POLICY_SET, RetentionPolicy

        fields = value or {}
        policy = RetentionPolicy(
            self.scope,
            max_age_ms=fields.get("max_age_ms"),
            max_records=fields.get("max_records"),
            time_column=fields.get("time_column"),
            set_by=by,
            reason=reason,
            set_at=_now(),
        )
        event = _event(policy.as_dict(), POLICY_SET, self.scope, change_id)
        return [(GOVERNANCE_TOPIC, prepare(GOVERNANCE_TOPIC, [event]))]

    def refresh(self) -> None:
        self.governance.state()

    def topics(self) -> tuple[str, ...]:
        from governance.retention import GOVERNANCE_TOPIC

        return (GOVERNANCE_TOPIC,)


@dataclass
class AlertRulesResource(ConfigResource):
    """``alerts.rules``: the console's alert rules (``governance.alertrules``); ``None`` means
    the shipped rules."""

    name: str
    store: ConfigChangeStore

    def current(self) -> Any:
        from governance.alertrules import current_value

        return current_value(self.store)

    def validate(self, value: Any) -> Any:
        from governance.alertrules import parse_rules, rule_dict

        rules = parse_rules(value)
        return None if rules is None else [rule_dict(r) for r in rules]

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        old, new = json.dumps(self.current()), json.dumps(value)
        changed = _config_changed(self.name, old, new, by, reason, self.name, change_id)
        return [(CONFIG_TOPIC, prepare(CONFIG_TOPIC, [changed]))]

    def refresh(self) -> None:
        self.store.refresh()

    def topics(self) -> tuple[str, ...]:
        return ()


@dataclass
class MigrationResource(ConfigResource):
    """``migration:<name>``: the plan of a one-off data migration a second person approved (its
    digest, ``hub migrate``); ``None`` before any. Always under the two-person rule, like a
    legal hold's release: the migration signs or rewrites what the hub trusts on restore, so
    one admin must not approve their own plan. Its effect is ``ConfigChanged`` on ``hub.config``
    (on the ledger); the migration itself is applied by its command once the plan it computes
    again has the approved digest."""

    name: str
    store: ConfigChangeStore

    def current(self) -> Any:
        self.store.refresh()
        applied = [c for c in self.store.changes(self.name) if c.status == "applied"]
        return None if not applied else from_text(applied[-1].new_value)

    def validate(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
            raise InvalidInput(
                f"A migration plan is the SHA-256 digest `hub migrate` prints (64 hex digits), "
                f"not {value!r}.",
                code="invalid_migration_plan",
            )
        return value

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        old, new = to_text(self.current()), to_text(value)
        key = self.name.replace(":", ".")
        changed = _config_changed(key, old, new, by, reason, self.name, change_id)
        return [(CONFIG_TOPIC, prepare(CONFIG_TOPIC, [changed]))]

    def refresh(self) -> None:
        self.store.refresh()

    def topics(self) -> tuple[str, ...]:
        return ()


@dataclass
class LegalHoldResource(ConfigResource):
    """``legalhold:<hold_id>``: ``"held"`` while the hold is active, ``None`` once released. Only
    a release (``None``) can be proposed: a hold is placed directly (``Governance.place_hold``)
    and a released one is never revived by a rollback (place a new hold instead)."""

    name: str
    hold_id: str
    governance: Governance

    def hold(self) -> Any:
        return self.governance.state().holds.get(self.hold_id)

    def current(self) -> Any:
        return None if self.hold() is None else HELD

    def validate(self, value: Any) -> Any:
        if value is not None:
            raise InvalidInput(
                f"{self.name} can only be released (value null): place a hold with "
                "`hub legal-hold place` (POST /v1/legal-holds), not through a change.",
                code="invalid_legalhold_change",
            )
        if self.hold() is None:
            raise NotFound(
                f"There is no active legal hold {self.hold_id!r}; list them with "
                "`hub legal-hold list`.",
                code="hold_not_found",
            )
        return None

    def effect(self, value: Any, by: str, reason: str, change_id: str, prepare: Prepare) -> Effect:
        from governance.retention import GOVERNANCE_TOPIC, HOLD_RELEASED

        hold = self.hold()
        if hold is None:  # the stale check (current() != old_value) refuses this first
            raise Conflict(f"Legal hold {self.hold_id!r} is no longer active.")
        released = {
            "scope": hold.scope,
            "hold_id": self.hold_id,
            "released_by": by,
            "reason": reason,
            "released_at": _now(),
        }
        event = _event(released, HOLD_RELEASED, hold.scope, change_id)
        return [(GOVERNANCE_TOPIC, prepare(GOVERNANCE_TOPIC, [event]))]

    def refresh(self) -> None:
        self.governance.state()

    def topics(self) -> tuple[str, ...]:
        from governance.retention import GOVERNANCE_TOPIC

        return (GOVERNANCE_TOPIC,)


# -- the commands ---------------------------------------------------------------------------------
class ConfigChanges:
    """The configuration change commands (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        registry: SchemaRegistry,
        publisher: Publisher,
        policies: BundleSource,
        store: ConfigChangeStore,
        *,
        rules: RulesStore | None = None,
        governance: Governance | None = None,
        ledger: Auditor | None = None,
        identities: Identities | None = None,
    ) -> None:
        self._identities = identities
        self._log = log
        self._registry = registry
        self._publisher = publisher
        self._policies = policies
        self.store = store
        self._rules = rules
        self._governance = governance
        self._ledger = ledger

    # -- reading -------------------------------------------------------------------------------
    def resource(self, name: str) -> ConfigResource:
        """The resource a name stands for; raises ``UnknownResource``."""
        if name.startswith(RULES_PREFIX) and len(name) > len(RULES_PREFIX):
            if self._rules is None:
                raise ConfigError("This hub was built without quality rules: rules can't change.")
            return RulesResource(name, name[len(RULES_PREFIX) :], self._rules)
        if name == REGISTRY_CONFIG:
            return RegistryConfigResource(name, None, self._registry)
        if name.startswith(REGISTRY_CONFIG + ":") and len(name) > len(REGISTRY_CONFIG) + 1:
            return RegistryConfigResource(name, name[len(REGISTRY_CONFIG) + 1 :], self._registry)
        if name == REGISTRY_MODE:
            return RegistryModeResource(name, None, self._registry)
        if name.startswith(REGISTRY_MODE + ":") and len(name) > len(REGISTRY_MODE) + 1:
            return RegistryModeResource(name, name[len(REGISTRY_MODE) + 1 :], self._registry)
        if name.startswith(RETENTION_PREFIX) and len(name) > len(RETENTION_PREFIX):
            from governance.retention import parse_scope

            if self._governance is None:
                raise ConfigError(
                    "This hub was built without governance: retention policies can't change."
                )
            scope = name[len(RETENTION_PREFIX) :]
            parse_scope(scope, allow=("topic", "projection"))  # raises InvalidInput
            return RetentionResource(name, scope, self._governance)
        if name == "alerts.rules":
            return AlertRulesResource(name, self.store)
        if name.startswith(MIGRATION_PREFIX) and len(name) > len(MIGRATION_PREFIX):
            return MigrationResource(name, self.store)
        if name.startswith(LEGALHOLD_PREFIX) and len(name) > len(LEGALHOLD_PREFIX):
            if self._governance is None:
                raise ConfigError("This hub was built without governance: it has no legal holds.")
            return LegalHoldResource(name, name[len(LEGALHOLD_PREFIX) :], self._governance)
        raise _unknown(name)

    @staticmethod
    def visible(change: ConfigChange, tenant_scope: str | None) -> bool:
        """Whether a reader limited to ``tenant_scope`` (None: every tenant) sees ``change``: a
        legal hold's release names an investigation's hold, so only its tenant's readers do (the
        change is recorded as the hold's tenant's: ``_tenant_of``)."""
        if tenant_scope is None or not change.resource.startswith(LEGALHOLD_PREFIX):
            return True
        return change.tenant == tenant_scope

    def check_hold_scope(self, resource: str, tenant_scope: str | None) -> None:
        """For ``legalhold:<id>``: ``NotFound``, as for a missing hold, when the hold is another
        tenant's than ``tenant_scope`` (None: every tenant's), so a releaser or approver
        limited to its tenant may neither lift another tenant's hold nor learn it exists."""
        res = self.resource(resource)
        if not isinstance(res, LegalHoldResource) or tenant_scope is None:
            return
        hold = res.hold()
        if hold is not None and hold.tenant != tenant_scope:
            raise NotFound(
                f"There is no active legal hold {res.hold_id!r}; list them with "
                "`hub legal-hold list`.",
                code="hold_not_found",
            )

    def proposer_needs(self, resource: str) -> list[Need]:
        """What proposing a change of ``resource`` took (``hub config propose``, ``POST
        /v1/config/changes``: ``config.propose`` and the resource's own write action; a legal
        hold's release: ``legalhold.write``), decided again when it is approved. A resource
        this class does not know (a subclass's) needs nothing here: roles are compared."""
        try:
            action = write_action(resource)
        except UnknownResource:
            return []
        own: Need = (action, resource, {"tenant": HUB_TENANT} if hub_wide(resource) else None)
        if resource.startswith(LEGALHOLD_PREFIX):
            return [own]
        return [("config.propose", resource, None), own]

    def approver_needs(self, resource: str) -> list[Need]:
        """What approving a change of ``resource`` takes (``config.approve``; a hub-wide
        resource's as the hub's own tenant's; a legal hold's release also ``legalhold.write``),
        decided against the policy in force when the change is applied."""
        needs: list[Need] = [("config.approve", "config", None)]
        if hub_wide(resource):
            needs.append(("config.approve", resource, {"tenant": HUB_TENANT}))
        if resource.startswith(LEGALHOLD_PREFIX):
            needs.append(("legalhold.write", resource, None))
        return needs

    def requires_two_person(self, resource: str) -> bool:
        if resource.startswith((LEGALHOLD_PREFIX, MIGRATION_PREFIX)):
            return True  # a release, a migration: never one person's alone (module docstring)
        self._policies.refresh()
        listed = two_person_entries(self._policies.active_bundle().hub_data)
        return two_person_applies(listed, resource)

    def refuse_ungoverned_import(self, subject: str | None) -> None:
        """IMPORT skips compatibility checks, so it changes what a compatibility level guards:
        ``TwoPersonRequired`` when the subject's level (for the global mode: the global level or
        any subject's) is under the two-person rule. Without it one ``registry.config`` holder
        would lift a two-person level by a mode change, proposed or direct. (A mode change that
        is itself under the rule has its second person, and is not refused.)"""
        scope = [subject] if subject is not None else [None, *self._registry.subjects()]
        for one in scope:
            resource = registry_resource(one)
            if self.requires_two_person(resource):
                raise TwoPersonRequired(
                    f"IMPORT mode skips the compatibility checks of {resource!r}, which is under "
                    "the two-person rule: propose the level change (POST /v1/config/changes) and "
                    "have a second person approve it instead.",
                )

    def value(self, resource: str) -> dict[str, Any]:
        """A resource's value in force, and whether changing it needs a second approver."""
        res = self.resource(resource)
        return {
            "resource": res.name,
            "value": res.current(),
            "requires_two_person": self.requires_two_person(res.name),
        }

    def subject_delete(self, principal: Principal, reason: str) -> SettingsDropped:
        """The ``on_drop`` of ``SchemaRegistry.delete_subject`` for ``principal``'s soft delete:
        the removal of the subject's own level and mode (which Confluent's soft delete drops) is
        a direct change of each, recorded as any other (``ConfigChangeProposed`` and
        ``ConfigChangeApplied`` with the actor, the old value and ``None``; ``ConfigChanged`` on
        ``hub.config``) in the delete's own transaction; ``TwoPersonRequired`` when a dropped
        setting is under the two-person rule, so one ``schema.delete`` holder cannot lift it."""

        def prepare(topic: str, batch: Sequence[OutgoingEvent]) -> list[Record]:
            return self._publisher.prepare(topic, batch, principal.id, principal.tenant)

        def drop(subject: str, dropped: dict[str, str]) -> list[tuple[str, Sequence[Record]]]:
            changes: list[OutgoingEvent] = []
            changed: list[OutgoingEvent] = []
            for keytype, old in sorted(dropped.items()):
                name = (registry_resource if keytype == "CONFIG" else registry_mode_resource)(
                    subject
                )
                if self.requires_two_person(name):
                    raise TwoPersonRequired(
                        f"Deleting subject {subject!r} drops {name!r} ({old}), which is under the "
                        "two-person rule: propose its removal (POST /v1/config/changes "
                        f'{{"resource": "{name}", "value": null, "reason": ...}}), have a '
                        "second person approve it, then delete the subject."
                    )
                res = self.resource(name)
                assert isinstance(res, _RegistrySetting)
                change_id, at, old_text = new_decision_id(), _now(), to_text(old)
                fields = {"change_id": change_id, "resource": name}
                changes.append(
                    _event(
                        {
                            **fields,
                            "kind": "direct",
                            "old_value": old_text,
                            "new_value": None,
                            "diff": value_diff(name, old_text, None),
                            "proposed_by": principal.id,
                            "proposed_by_key": str(principal.attributes.get("key_id", "")),
                            "reason": reason,
                            "requires_approval": False,
                            "rollback_of": "",
                            "proposed_at": at,
                        },
                        PROPOSED,
                        change_id,
                        change_id,
                    )
                )
                changes.append(
                    _event(
                        {**fields, "applied_by": principal.id, "applied_at": at},
                        APPLIED,
                        change_id,
                        change_id,
                    )
                )
                changed.append(res.changed(old, None, principal.id, reason, change_id))
            return [
                (CONFIG_CHANGES_TOPIC, prepare(CONFIG_CHANGES_TOPIC, changes)),
                (CONFIG_TOPIC, prepare(CONFIG_TOPIC, changed)),
            ]

        return drop

    # -- commands ------------------------------------------------------------------------------
    def propose(
        self, principal: Principal, resource: str, new_value: Any, reason: str
    ) -> ConfigChange:
        """Propose a new value; applied at once unless the two-person rule applies."""
        change = self._propose(principal, resource, new_value, reason, kind="change")
        assert change is not None
        return change

    def set_direct(
        self,
        principal: Principal,
        resource: str,
        new_value: Any,
        reason: str = "",
        *,
        audit: bool = True,
    ) -> ConfigChange | None:
        """A direct change (``PUT /config``...): applied and recorded at once; None when the
        value is already in force; ``TwoPersonRequired`` under the two-person rule. Without
        ``audit`` no ``config.propose`` action goes on the ledger (the change events remain)."""
        return self._propose(principal, resource, new_value, reason, kind="direct", audit=audit)

    def set_retention(
        self,
        principal: Principal,
        scope: str,
        *,
        max_age_ms: int | None = None,
        max_records: int | None = None,
        time_column: str | None = None,
        reason: str = "",
    ) -> RetentionPolicy:
        """The direct path of ``retention:<scope>`` (``hub retention set``, ``POST
        /v1/retention/policies``): ``set_direct``, then the policy in force (one without limits
        when there is none)."""
        from governance.retention import RetentionPolicy

        value = {"max_age_ms": max_age_ms, "max_records": max_records, "time_column": time_column}
        res = self.resource(retention_resource(scope))
        change = self.set_direct(principal, res.name, value, reason)
        assert isinstance(res, RetentionResource)
        policy = res.governance.policies().get(scope)
        if policy is not None:
            return policy
        set_at = "" if change is None else change.applied_at or ""
        return RetentionPolicy(scope, set_by=principal.id, reason=reason, set_at=set_at)

    def rollback(
        self,
        principal: Principal,
        resource: str,
        to_change_id: str,
        reason: str,
        *,
        undo: bool = False,
    ) -> ConfigChange:
        """Propose again the value an earlier change applied (with ``undo``: the value it
        replaced). A new change under the same rules, never an erasure of history."""
        target = self.store.change(to_change_id)
        if target.resource != resource:
            raise InvalidInput(
                f"Change {to_change_id} changed {target.resource!r}, not {resource!r}: "
                "roll back to a change of the same resource (`hub config list --resource`)."
            )
        if target.applied_at is None:
            raise Conflict(
                f"Change {to_change_id} was never applied: there is no value of it to restore."
            )
        value = from_text(target.old_value if undo else target.new_value)
        change = self._propose(
            principal, resource, value, reason, kind="rollback", rollback_of=to_change_id
        )
        assert change is not None
        return change

    def approve(
        self,
        principal: Principal,
        change_id: str,
        reason: str = "",
        *,
        expected_new_value: Any = NOT_GIVEN,
    ) -> ConfigChange:
        """Approve ``change_id`` as the second person. ``expected_new_value``: the new value
        the approver was shown (``GET /v1/config/changes/{id}``); refused (409
        ``change_not_as_shown``) unless the pending change still sets exactly that value."""
        with _LOCK:
            self.store.refresh()
            res = self.resource(self.store.change(change_id).resource)
            for _attempt in range(_ATTEMPTS):
                if self._approve_once(principal, res, change_id, reason, expected_new_value):
                    self._audit(principal, "config.approve", change_id)
                    if isinstance(res, LegalHoldResource):
                        self._audit(principal, "legalhold.release", change_id)
                    return self.store.change(change_id)
            raise self._busy(res)

    def withdraw_not_permitted(self, by: str, why: str) -> list[str]:
        """Withdraw each pending change whose proposer may no longer propose it under the policy
        in force (``PolicyChanges.on_activated``: a policy just took the permission away)."""
        return self.withdraw_revoked((), None, by, why)

    def withdraw_revoked(
        self, key_ids: Sequence[str], owners: frozenset[str] | None, by: str, why: str
    ) -> list[str]:
        """Withdraw each pending change proposed by one of ``owners`` (casefolded; None: by
        anyone) who may no longer propose it now that ``key_ids`` were revoked
        (``ApiKeys.on_revoked``) or a policy was activated: one append of
        ``ConfigChangeWithdrawn``, with the reason, in each change's tenant (a legal hold's
        release stays its tenant's). The ids withdrawn."""
        with _LOCK:
            self.store.refresh()
            by_tenant: dict[str, list[OutgoingEvent]] = {}
            for change in self.store.changes():
                if (
                    change.applied_at is not None
                    or change.withdrawn_at is not None
                    or not change.requires_approval
                    or (owners is not None and change.proposed_by.strip().casefold() not in owners)
                ):
                    continue
                what = f"configuration change {change.change_id}"
                lost = lost_right(
                    self._identities,
                    change.proposed_by,
                    change.proposed_by_key,
                    what,
                    self.proposer_needs(change.resource),
                )
                if lost is None:
                    continue
                by_tenant.setdefault(change.tenant, []).append(
                    _event(
                        {
                            "change_id": change.change_id,
                            "withdrawn_by": by,
                            "reason": f"{why}: {lost}",
                            "revoked_key": ",".join(key_ids),
                            "withdrawn_at": _now(),
                        },
                        WITHDRAWN,
                        change.change_id,
                        change.change_id,
                    )
                )
            for tenant, events in sorted(by_tenant.items()):
                self._publisher.publish(CONFIG_CHANGES_TOPIC, events, producer=by, tenant=tenant)
            self.store.refresh()
            return [str(e.value["change_id"]) for es in by_tenant.values() for e in es]

    def _approve_once(
        self,
        principal: Principal,
        res: ConfigResource,
        change_id: str,
        reason: str,
        expected_new_value: Any = NOT_GIVEN,
    ) -> bool:
        """One check and guarded append of an approval; False when the guard moved."""
        guard = self._ends(res)
        self.store.refresh()
        res.fold()
        change = self.store.change(change_id)
        if expected_new_value is not NOT_GIVEN:
            _check_value_as_shown(change, expected_new_value)
        if change.applied_at is not None:
            raise Conflict(f"Configuration change {change_id} is already applied.")
        if change.withdrawn_at is not None:
            raise withdrawn_error(
                f"configuration change {change_id}", change.withdrawn_by, change.withdrawn_reason
            )
        try:
            check_two_person(
                self._identities,
                change.proposed_by,
                principal,
                change.proposed_at,
                f"configuration change {change_id}",
                proposed_key=change.proposed_by_key,
                proposer_needs=self.proposer_needs(change.resource),
                approver_needs=self.approver_needs(change.resource),
            )
        except (Conflict, Forbidden) as exc:
            refused_for_proposer(
                self._ledger,
                principal,
                "config.approve_refused",
                change.resource,
                change_id,
                exc,
                # the change's tenant (a release: the hold's, even one recorded before s23)
                tenant=self._tenant_of(res, principal)
                if isinstance(res, LegalHoldResource)
                else change.tenant,
            )
            raise
        current = to_text(res.current())
        if current != change.old_value:
            raise StaleChange(
                f"Configuration change {change_id} was proposed against {change.resource}"
                f" = {change.old_value}, but it is {current} now: propose it again."
            )
        new = res.validate(from_text(change.new_value))  # the validators may have grown
        approved = _event(
            {
                "change_id": change_id,
                "approved_by": principal.id,
                "reason": reason,
                "approved_at": _now(),
            },
            APPROVED,
            change_id,
            change_id,
        )
        return self._append(principal, res, change, [approved], value=new, guard=guard)

    # -- internals -----------------------------------------------------------------------------
    def _propose(
        self,
        principal: Principal,
        resource: str,
        value: Any,
        reason: str,
        *,
        kind: str,
        rollback_of: str = "",
        audit: bool = True,
    ) -> ConfigChange | None:
        if kind != "direct" and not reason.strip():
            raise InvalidInput(
                "A configuration change needs a reason (--reason).", code="reason_required"
            )
        res = self.resource(resource)
        with _LOCK:
            for _attempt in range(_ATTEMPTS):
                done, change = self._propose_once(
                    principal, res, value, reason, kind=kind, rollback_of=rollback_of
                )
                if done:
                    if change is not None and audit:
                        self._audit(principal, "config.propose", change.change_id)  # 6.
                    return change
            raise self._busy(res)

    def _propose_once(
        self,
        principal: Principal,
        res: ConfigResource,
        value: Any,
        reason: str,
        *,
        kind: str,
        rollback_of: str,
    ) -> tuple[bool, ConfigChange | None]:
        """One check and append of a proposal: (False, None) when the guard of an apply moved;
        (True, None) for a direct change to the value in force."""
        guard = self._ends(res)
        self.store.refresh()
        res.fold()
        new = res.validate(value)  # 1.
        old = res.current()  # 2.
        old_text, new_text = to_text(old), to_text(new)
        if old_text == new_text:
            if kind == "direct":
                return True, None  # idempotent, as Confluent's PUT /config is
            raise Conflict(f"{res.name} is already {new_text}: nothing to change.")
        diff = value_diff(res.name, old_text, new_text)  # 3.
        requires = self.requires_two_person(res.name)  # 4.
        if isinstance(res, RegistryModeResource) and new == "IMPORT" and not requires:
            self.refuse_ungoverned_import(res.subject)
        if requires and kind == "direct":
            raise TwoPersonRequired(
                f"{res.name} is under the two-person rule (data.hub.two_person): propose "
                f"the change with `hub config propose {res.name} VALUE --reason WHY` (or POST "
                "/v1/config/changes) and have another principal approve it."
            )
        change = ConfigChange(
            change_id=new_decision_id(),
            resource=res.name,
            kind=kind,
            old_value=old_text,
            new_value=new_text,
            diff=diff,
            proposed_by=principal.id,
            reason=reason,
            requires_approval=requires,
            rollback_of=rollback_of,
            proposed_at=_now(),
        )
        proposed = _event(
            {
                "change_id": change.change_id,
                "resource": change.resource,
                "kind": kind,
                "old_value": old_text,
                "new_value": new_text,
                "diff": diff,
                "proposed_by": principal.id,
                "proposed_by_key": str(principal.attributes.get("key_id", "")),
                "reason": reason,
                "requires_approval": requires,
                "rollback_of": rollback_of,
                "proposed_at": change.proposed_at,
            },
            PROPOSED,
            change.change_id,
            change.change_id,
        )
        if not requires:  # 5.
            if not self._append(principal, res, change, [proposed], value=new, guard=guard):
                return False, None
        else:
            self._append(principal, res, change, [proposed], guard=None)
        return True, self.store.change(change.change_id)

    def _append(
        self,
        principal: Principal,
        res: ConfigResource,
        change: ConfigChange,
        events: list[OutgoingEvent],
        *,
        guard: dict[str, dict[int, int]] | None,
        value: Any = None,
    ) -> bool:
        """Step 5: the change's events and, with a ``guard`` (the end offsets read before the
        check), the apply and its effect (``value`` in force; ``None`` restores the default), in
        ONE log transaction. False, with nothing written, when a guarded topic moved."""

        if guard is not None and isinstance(res, _RegistrySetting):
            # wait for registrations in flight, and hold new ones, until the setting is stored
            with res.registry.fenced():
                return self._append_now(principal, res, change, events, guard=guard, value=value)
        return self._append_now(principal, res, change, events, guard=guard, value=value)

    def _append_now(
        self,
        principal: Principal,
        res: ConfigResource,
        change: ConfigChange,
        events: list[OutgoingEvent],
        *,
        guard: dict[str, dict[int, int]] | None,
        value: Any = None,
    ) -> bool:
        tenant = self._tenant_of(res, principal)

        def prepare(topic: str, batch: Sequence[OutgoingEvent]) -> list[Record]:
            return self._publisher.prepare(topic, batch, principal.id, tenant)

        effect: Effect = []
        if guard is not None:
            events = [
                *events,
                _event(
                    {
                        "change_id": change.change_id,
                        "resource": change.resource,
                        "applied_by": principal.id,
                        "applied_at": _now(),
                    },
                    APPLIED,
                    change.change_id,
                    change.change_id,
                ),
            ]
            effect = res.effect(value, change.proposed_by, change.reason, change.change_id, prepare)
        records = prepare(CONFIG_CHANGES_TOPIC, events)
        try:
            with self._log.transaction(f"config:{res.name}") as txn:
                if guard is not None and self._ends(res) != guard:
                    raise _Moved  # another process appended since the check: check again
                txn.append(CONFIG_CHANGES_TOPIC, records)  # 5a. proposed / approved (+ applied)
                for topic, batch in effect:  # 5b. the effect: hub.config, _schemas
                    txn.append(topic, batch)
        except _Moved:
            return False
        if guard is not None:
            res.refresh()
        self.store.refresh()
        return True

    @staticmethod
    def _tenant_of(res: ConfigResource, principal: Principal) -> str:
        """The tenant whose business a change's records are (their ``ce_tenant``): a legal
        hold's release (its proposal, approval and ``LegalHoldReleased``) is the hold's
        tenant's, whoever proposes or approves it (an admin of the hub's own tenant lifting
        acme's hold: acme's readers see it, the hub tenant's do not; ``visible``); any other
        change is its proposer's or approver's."""
        if isinstance(res, LegalHoldResource):
            hold = res.hold()
            if hold is not None:
                return str(hold.tenant)
        return principal.tenant

    def _ends(self, res: ConfigResource) -> dict[str, dict[int, int]]:
        """The end offsets of the topics ``res``'s value and its changes are folded from."""
        ends: dict[str, dict[int, int]] = {}
        for topic in (CONFIG_CHANGES_TOPIC, *res.topics()):
            try:
                ends[topic] = self._log.end_offsets(topic)
            except TopicNotFound:  # created by the first append
                ends[topic] = {}
        return ends

    def _busy(self, res: ConfigResource) -> ConfigBusy:
        return ConfigBusy(
            f"{res.name} and its changes kept changing in another process while this change "
            f"was checked ({_ATTEMPTS} times): retry."
        )

    def _audit(self, principal: Principal, action: str, change_id: str) -> None:
        if self._ledger is None:
            return
        change = self.store.change(change_id)
        self._ledger.record_action(
            principal.id,
            action,
            change.resource,
            details={
                "change_id": change.change_id,
                "kind": change.kind,
                "status": change.status,
                "old_value": change.old_value,
                "new_value": change.new_value,
                "reason": change.reason,
            },
            # a hold's release is on its tenant's ledger, as its change (``_tenant_of``)
            tenant=change.tenant
            if change.resource.startswith(LEGALHOLD_PREFIX)
            else principal.tenant,
        )
