"""Quality rule sets per subject: shipped defaults, changed at runtime through ``hub.config``.

The shipped rule sets live in ``domain/rules/<subject>.yaml``. A change is a config change, never
a row updated in place: ``set`` publishes a ``hub.ConfigChanged`` event (key
``quality.rules.<subject>``, old and new rule set as JSON text, who and why) on ``hub.config``, and
every process folds the rules from there (the latest event per subject wins over the shipped
file; a null ``new_value`` restores the shipped rules).

Changing rules is a governed configuration change (``governance.configchanges``, resource
``rules:<subject>``): ``set`` goes through it, so the two-person rule applies to every caller and
each change is also a ``ConfigChangeProposed``/``ConfigChangeApplied`` pair on
``hub.config-changes``, appended in the same log transaction as the ``ConfigChanged`` event.
"""

from __future__ import annotations

import functools
import json
import threading
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from core.avro import serde
from core.errors import ConfigError, InvalidInput
from core.events import OutgoingEvent
from core.fold import TopicFold
from core.ports.eventlog import EventLog, StoredRecord
from domain.envelope import H_ID
from domain.quality import (
    RuleError,
    RuleSet,
    backtracking_problem,
    compile_rules,
    parse_rule_set,
)
from ingest.publish import Publisher
from registry.service import SchemaRegistry

if TYPE_CHECKING:
    from core.ports.policy import Principal


class GovernedChanges(Protocol):
    """How a rule change is applied: governance's config changes (two-person rule, ledger)."""

    def set_direct(
        self, principal: Principal, resource: str, new_value: Any, reason: str = ""
    ) -> object: ...


RULES_RESOURCE_PREFIX = "rules:"  # the config-change resource of a subject's rule set


def rules_resource(subject: str) -> str:
    return RULES_RESOURCE_PREFIX + subject


CONFIG_TOPIC = "hub.config"
PREFIX = "quality.rules."


def shipped_rule_sets() -> dict[str, RuleSet]:
    """Every rule set shipped in ``domain/rules/*.yaml``, by subject (a new dict each call)."""
    return dict(_parse_shipped_rule_sets())


@functools.cache
def _parse_shipped_rule_sets() -> tuple[tuple[str, RuleSet], ...]:
    # Parsed once per process: the files ship with the package and a RuleSet is immutable. Every
    # hub built (bootstrap) reads them; pure-Python YAML parsing took ~0.1 s of CPU per hub.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it
    out: dict[str, RuleSet] = {}
    folder = resources.files("domain").joinpath("rules")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            data = yaml.load(entry.read_text("utf-8"), Loader=loader)  # a safe loader either way
            rs = parse_rule_set(data)
            out[rs.subject] = rs
    return tuple(out.items())


def _refuse_backtracking(rule_set: RuleSet) -> None:
    """A new regex rule must not backtrack without bound: Python's ``re`` holds the interpreter
    while it matches, so one short hostile value would stall the whole hub. Checked on change
    only; rule sets already on ``hub.config`` still fold."""
    for rule in rule_set.rules:
        problem = None if rule.pattern is None else backtracking_problem(rule.pattern)
        if problem:
            raise RuleError(
                f"Rule {rule.id!r}: pattern {rule.pattern!r} may backtrack without bound on a "
                f"hostile value ({problem}); use one character class per repeat, a possessive "
                "repeat (a++), or a bounded count, so each character is tried one way."
            )


class RulesStore:
    """The current rule set of each subject; changes are ``ConfigChanged`` events."""

    def __init__(self, log: EventLog, registry: SchemaRegistry, publisher: Publisher) -> None:
        self._log = log
        self._registry = registry
        self._publisher = publisher
        self._shipped = shipped_rule_sets()
        self._changed: dict[str, RuleSet | None] = {}
        self._versions: dict[str, str] = {}
        self._lock = threading.RLock()
        self._fold = TopicFold(log, CONFIG_TOPIC, self._apply, lock=self._lock, once_by=H_ID)
        # Wired by the composition root to governance's config changes; None: read-only rules.
        self.governed: GovernedChanges | None = None

    def refresh(self) -> None:
        """Fold the ``hub.config`` records appended since the last call."""
        self._fold.catch_up()

    def _apply(self, rec: StoredRecord) -> None:
        if rec.value is None:
            return
        schema_id, _ = serde.split_wire(rec.value)
        v = serde.decode(rec.value, self._registry.parsed(schema_id))
        key = v["key"]
        if not key.startswith(PREFIX):
            return
        subject = key[len(PREFIX) :]
        new = v["new_value"]
        self._changed[subject] = None if new is None else parse_rule_set(json.loads(new), subject)
        self._versions[subject] = f"hub.config@{rec.offset}"

    def get(self, subject: str) -> RuleSet:
        """The subject's rules (an empty set when it has none)."""
        self.refresh()
        changed = self._changed.get(subject)
        if changed is not None:
            return changed
        return self._shipped.get(subject, RuleSet(subject))

    def version(self, subject: str) -> str:
        self.refresh()
        if self._changed.get(subject) is not None:
            return self._versions[subject]
        return "shipped" if subject in self._shipped else "none"

    def shipped(self) -> frozenset[str]:
        """The subjects the hub ships rule sets for (its own business types)."""
        return frozenset(self._shipped)

    def subjects(self) -> list[str]:
        self.refresh()
        return sorted(set(self._shipped) | {s for s, r in self._changed.items() if r is not None})

    def override(self, subject: str) -> RuleSet | None:
        """The rule set changed at runtime for a subject; None when the shipped one applies."""
        self.refresh()
        return self._changed.get(subject)

    def parse(self, subject: str, data: Any) -> RuleSet | None:
        """Validate a rule set for a subject (None: restore the shipped one).

        Raises ``InvalidInput`` (code ``invalid_rules``) when it does not parse or compile.
        """
        if data is None:
            return None
        try:
            rule_set = parse_rule_set(data, subject)
            compile_rules(rule_set)
            _refuse_backtracking(rule_set)
        except RuleError as exc:
            raise InvalidInput(str(exc), code="invalid_rules") from exc
        return rule_set

    def change_event(
        self, subject: str, new: RuleSet | None, changed_by: str, reason: str, change_id: str = ""
    ) -> OutgoingEvent:
        """The ``ConfigChanged`` event that makes ``new`` the subject's rules when appended."""
        old = self.get(subject)
        return OutgoingEvent(
            value={
                "key": PREFIX + subject,
                "old_value": json.dumps(old.as_dict(), sort_keys=True),
                "new_value": None if new is None else json.dumps(new.as_dict(), sort_keys=True),
                "changed_by": changed_by,
                "reason": reason,
                "changed_at": datetime.now(UTC).isoformat(),
            },
            key=PREFIX + subject,
            correlation_id=change_id,
        )

    def set(
        self, subject: str, data: Any, changed_by: str, reason: str = ""
    ) -> tuple[RuleSet, str]:
        """Validate and apply a new rule set as a governed change; returns it and its version.

        Raises ``TwoPersonRequired`` when ``rules:<subject>`` is under the two-person rule:
        propose the change (``hub config propose``) and have another principal approve it.
        """
        from core.ports.policy import Principal

        if self.governed is None:
            raise ConfigError(
                "Rule sets are changed through governed config changes, and this rules store "
                "was built without them; build the hub with bootstrap() or set ``governed``."
            )
        principal = Principal(changed_by, frozenset())
        self.governed.set_direct(principal, rules_resource(subject), data, reason)
        return self.get(subject), self.version(subject)
