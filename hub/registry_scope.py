"""What one principal sees and changes in the schema registry: subjects are tenants' own.

A subject belongs to the tenant whose key first registered it (``registry.service``'s
contract). Before this, subjects were hub-wide: globex's publisher added a compatible version
to a subject acme registered (changing what acme's consumers decode and validate against),
read its versions, and probed it (compatibility checks, lookups, ids).

Rules, for the registry API, its fast path and the CLI alike:
- a subject of the principal's own tenant: as any allowed request;
- a subject of the hub's own tenant (``HUB_TENANT``: the hub's business types, and every
  subject registered before ownership unless the ledger names one other tenant,
  ``registry.owners``): every tenant reads it; changing it is decided as the hub's own
  tenant's, so only the hub's own keys and ``tenant.all`` holders may;
- a subject of another tenant, and a subject that does not exist, alike: every read and
  change is decided again with ``context.tenant`` ``OTHER_TENANTS`` ("*", no tenant in
  particular: only ``tenant.all`` opens it; a grant names one tenant, and asking for the
  owner's would name it in the recorded decision). A read so refused answers as for a missing
  subject (``SubjectNotFound``), and the missing one asks the same recorded question, so that
  neither the answer nor the decision log (which the tenant's officer reads in its access
  review) tells another tenant's subject from a missing one;
- a topic's subjects (TopicNameStrategy: ``<topic>-value``, ``<topic>-key``, and their
  ``-plain`` companions) are created only as the topic's owner's (``core.events.OWNER_CONFIG``,
  set when the topic is created; a topic without one is the hub's own): the principal must
  be of that tenant or allowed to act as it, else ``SubjectOwned`` naming the topic, decided
  from the topic alone (visible to every tenant), so the same whether the subject exists. A
  topic subject whose topic does not exist is the hub's own until the topic is created (no
  tenant squats the subjects of a topic it is about to be given). A subject the principal's
  tenant already owns keeps being its own;
- a topic's record subjects (TopicRecordNameStrategy: ``<topic>-<record full name>``, e.g.
  ``acme.trades-com.acme.Trade``, and their ``-plain`` companions) likewise, when that topic
  exists: the topic is everything before the LAST dash (an Avro full name has none, while a
  topic name may have dots and dashes: ``acme-fx-com.acme.Trade`` is topic ``acme-fx``'s,
  never topic ``acme``'s). Unlike ``-value``, a name that was taken before its topic existed
  does not stay its taker's to change: once the topic exists, every change is decided as the
  topic owner's too (the taker's versions are frozen; only ``tenant.all`` removes them). A name
  whose prefix names no topic could be any name (``orders-v2``): first come, first served;
- other names (RecordNameStrategy: ``com.acme.Trade``, no topic in them) are first come,
  first served: registering one that is taken answers ``SubjectOwned`` (the one answer a
  shared namespace cannot make alike; a tenant that wants its names unseen names its records
  after its own topics);
- a schema id is readable when some tenant that owns (or owned) a subject holding it is
  readable; an id no record attributes (registered before ownership) is everyone's. An unknown
  id asks the same recorded question as another tenant's (``OTHER_TENANTS``) before its 404,
  so that neither the answer nor the decision log tells them apart.
Each extra decision is asked once per (action, tenant) and request, and recorded as any.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from core.errors import SchemaNotFound, SubjectNotFound, TopicNotFound
from core.events import OWNER_CONFIG
from core.ports.eventlog import EventLog
from core.ports.eventlog_checks import TOPIC_NAME
from core.ports.policy import HUB_TENANT, Principal
from registry.plain import SUFFIX
from registry.service import SchemaRegistry, SubjectOwned

READ = "schema.read"
WRITE = "schema.write"
# the tenant a decision on another tenant's (or a missing) subject names: none in particular
OTHER_TENANTS = "*"
TOPIC_SUBJECT_SUFFIXES = ("-value", "-key")
# an Avro full name (the record part of a TopicRecordNameStrategy subject): no dash in it
_FULL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# (action, tenant) -> whether the principal may do ``action`` as that tenant's (recorded)
Decide = Callable[[str, str], bool]


def topic_of(subject: str) -> str | None:
    """The topic a TopicNameStrategy subject (or its ``-plain`` companion) names, else None."""
    base = subject[: -len(SUFFIX)] if subject.endswith(SUFFIX) else subject
    for suffix in TOPIC_SUBJECT_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return None


def record_topic_of(subject: str) -> str | None:
    """The topic a TopicRecordNameStrategy subject ``<topic>-<record full name>`` (or its
    ``-plain`` companion) would name: everything before the last dash when the rest is an Avro
    full name; None for a topic subject (``topic_of``) and a name with no such split. Whether
    it is that topic's depends on whether the topic exists (``RegistryScope.claim``)."""
    if topic_of(subject) is not None:
        return None
    base = subject[: -len(SUFFIX)] if subject.endswith(SUFFIX) else subject
    head, dash, tail = base.rpartition("-")
    if not dash or not TOPIC_NAME.fullmatch(head) or not _FULL_NAME.fullmatch(tail):
        return None  # (a head no topic can have is not looked up: "my schemas-Trade")
    return head


def topic_owner(log: EventLog, topic: str) -> str | None:
    """The tenant that owns ``topic`` (``OWNER_CONFIG``; the hub's own when the topic names
    none, as topics created before owners do); None when there is no such topic."""
    try:
        info = log.topic(topic)
    except TopicNotFound:
        return None
    return info.config.get(OWNER_CONFIG) or HUB_TENANT


def open_id(registry: SchemaRegistry, schema_id: int, tenant: str) -> bool:
    """Whether ``schema_id`` is known and readable by ``tenant`` without a further decision
    (its own, the hub's, or attributed to nobody): the fast paths' test before they ask
    ``RegistryScope.require_readable_id`` in the thread pool. As folded so far: an id not
    folded yet goes there too, where ``id_tenants`` catches up once (not twice)."""
    try:
        tenants = registry.id_tenants(schema_id, refresh=False)
    except SchemaNotFound:
        return False
    return not tenants or tenant in tenants or HUB_TENANT in tenants


class RegistryScope:
    """One principal's view of the registry for one request or command (see the module)."""

    def __init__(
        self, registry: SchemaRegistry, principal: Principal, decide: Decide, log: EventLog
    ) -> None:
        self.registry = registry
        self.principal = principal
        self._decide = decide
        self._log = log
        self._asked: dict[tuple[str, str], bool] = {}

    def may(self, action: str, owner: str | None) -> bool:
        """Whether ``action`` on something ``owner`` owns is allowed (None: a subject nobody
        owns, i.e. that does not exist, decided as another tenant's)."""
        if owner == self.principal.tenant:
            return True
        if owner == HUB_TENANT:
            if action == READ:
                return True
            tenant = HUB_TENANT  # the hub's own subjects are everyone's to see: named
        else:
            tenant = OTHER_TENANTS  # the owner (or that there is none) is not named
        key = (action, tenant)
        if key not in self._asked:
            try:
                self._asked[key] = bool(self._decide(action, tenant))
            except SubjectOwned:
                raise
            except Exception:  # an engine that fails: closed
                self._asked[key] = False
        return self._asked[key]

    # -- reads ---------------------------------------------------------------------------------
    def readable(self, subject: str) -> bool:
        return self.may(READ, self.registry.owner(subject))

    def require_readable(self, subject: str) -> None:
        """Raise ``SubjectNotFound`` for another tenant's subject the principal may not read,
        the same answer as for a subject that does not exist."""
        if not self.readable(subject):
            raise SubjectNotFound(f"Subject {subject!r} not found.")

    def readable_subjects(self, subjects: Iterable[str]) -> list[str]:
        owners = self.registry.owners()
        return [s for s in subjects if self.may(READ, owners.get(s))]

    def readable_id(self, schema_id: int) -> bool:
        """Whether ``schema_id`` is known and readable; an unknown one asks the question a
        foreign one asks (the decision log must not tell them apart) and is not."""
        try:
            tenants = self.registry.id_tenants(schema_id)
        except SchemaNotFound:
            self.may(READ, None)
            return False
        return not tenants or any(self.may(READ, t) for t in sorted(tenants))

    def require_readable_id(self, schema_id: int) -> None:
        """Raise ``SchemaNotFound`` when ``schema_id`` is unknown or no subject the principal
        may read holds or held it: the same answer, after the same recorded question. Call it
        BEFORE anything that raises for an unknown id."""
        if not self.readable_id(schema_id):
            raise SchemaNotFound(f"Schema id {schema_id} not found.")

    # -- changes -------------------------------------------------------------------------------
    def claim(self, subject: str, action: str = WRITE) -> str:
        """The tenant a change of ``subject`` is made as (see the module): a new topic subject
        (or record subject of an existing topic) as its topic's owner, another new subject as
        the principal's own tenant, an existing
        one as its owner when the principal may act as the owner's; else ``SubjectOwned`` for
        a topic subject of a topic not the principal's and a registration under a taken name,
        ``SubjectNotFound`` (as for a missing subject) for another change of a subject the
        principal may not read."""
        owner = self.registry.owner(subject)
        topic = topic_of(subject) if action == WRITE else None
        if topic is not None and owner != self.principal.tenant:
            holder = topic_owner(self._log, topic)
            if not self.may(action, holder or HUB_TENANT):
                raise SubjectOwned(self._not_your_topic(subject, topic, holder is None))
            if owner is None:
                return holder or HUB_TENANT
        record_topic = record_topic_of(subject) if action == WRITE else None
        keeper = topic_owner(self._log, record_topic) if record_topic is not None else None
        if record_topic is not None and keeper is not None:  # the topic exists: its owner's
            if not self.may(action, keeper):
                raise SubjectOwned(self._not_your_topic(subject, record_topic, False))
            if owner is None:
                return keeper
        if owner is None and action == WRITE:
            return self.principal.tenant
        if owner is not None and self.may(action, owner):
            return owner
        if action != WRITE:
            if owner is None:  # missing: the same recorded questions as a foreign subject's
                self.may(action, None)
            if not self.readable(subject):
                raise SubjectNotFound(f"Subject {subject!r} not found.")
            if owner is None:
                return self.principal.tenant  # (an administrator's) the registry answers it
        if owner == HUB_TENANT:
            raise SubjectOwned(
                f"Subject {subject!r} is one of the hub's shared subjects: only the hub's own "
                "keys or an administrator (tenant.all) may change it; register your schema "
                "under a subject name of your own."
            )
        raise SubjectOwned(
            f"Subject {subject!r} belongs to another tenant: register your schema under a "
            "subject name of your own."
        )

    @staticmethod
    def _not_your_topic(subject: str, topic: str, missing: bool) -> str:
        if missing:
            return (
                f"Subject {subject!r} is a subject of topic {topic!r}, which does not exist: "
                "a topic's subjects are registered by its owner, so create the topic first "
                "(POST /v1/topics), then register its subjects."
            )
        return (
            f"Subject {subject!r} is a subject of topic {topic!r}, which is not one of your "
            "tenant's topics: only the topic's owner registers its subjects; publish your "
            "records to a topic of your own."
        )


def rules_visible(
    registry: SchemaRegistry,
    log: EventLog,
    principal: Principal,
    shipped: frozenset[str],
    decide: Decide,
) -> Callable[[str], bool]:
    """Whether ``principal`` may see the quality rules of a subject (``GET /v1/rules``, ``hub
    rules list/show``): those of a subject the registry shows it (its tenant's, the hub's), and
    every shipped rule set's (the hub's own business types). A rule set names its subject and
    its fields, patterns and bounds, so another tenant's (one the hub's administrators set on
    that tenant's subject) is shown only where the registry would show the subject (``decide``
    for any tenant, ``tenant.all``); its absence and a missing subject's look alike."""
    scope = RegistryScope(registry, principal, decide, log)
    return lambda subject: subject in shipped or scope.readable(subject)


# Configuration resources named after a registry subject: its quality rules and its
# compatibility level.
SUBJECT_RESOURCES = ("rules:", "registry.config:")


def config_visible(
    registry: SchemaRegistry,
    log: EventLog,
    principal: Principal,
    shipped: frozenset[str],
    decide: Decide,
) -> Callable[[str], bool]:
    """Whether ``principal`` may see a configuration resource's value and changes (``GET
    /v1/config/...``, ``hub config list/show``): one named after a subject (``rules:<subject>``,
    ``registry.config:<subject>``) where ``rules_visible`` shows the subject's rules; every
    other resource (its own checks apply: a legal hold's tenant)."""
    subject_shown = rules_visible(registry, log, principal, shipped, decide)

    def visible(resource: str) -> bool:
        for prefix in SUBJECT_RESOURCES:
            if resource.startswith(prefix) and resource[len(prefix) :]:
                return subject_shown(resource[len(prefix) :])
        return True

    return visible
