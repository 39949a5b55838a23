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
- a subject of another tenant: every read and change is decided again with ``context.tenant``
  that tenant (the policy's tenant isolation: ``tenant.all`` or a grant opens it); a read so
  refused answers as if the subject did not exist (``SubjectNotFound``), a change
  ``SubjectOwned`` (403, naming no tenant);
- a schema id is readable when some tenant that owns (or owned) a subject holding it is
  readable; an id no record attributes (registered before ownership) is everyone's.
Each extra decision is asked once per (action, tenant) and request, and recorded as any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.errors import SchemaNotFound, SubjectNotFound
from core.ports.policy import HUB_TENANT, Principal
from registry.service import SchemaRegistry, SubjectOwned

READ = "schema.read"
# (action, tenant) -> whether the principal may do ``action`` as that tenant's (recorded)
Decide = Callable[[str, str], bool]


class RegistryScope:
    """One principal's view of the registry for one request or command (see the module)."""

    def __init__(self, registry: SchemaRegistry, principal: Principal, decide: Decide) -> None:
        self.registry = registry
        self.principal = principal
        self._decide = decide
        self._asked: dict[tuple[str, str], bool] = {}

    def may(self, action: str, owner: str | None) -> bool:
        """Whether ``action`` on something ``owner`` owns is allowed (None: nobody yet)."""
        if owner is None or owner == self.principal.tenant:
            return True
        if action == READ and owner == HUB_TENANT:
            return True
        key = (action, owner)
        if key not in self._asked:
            try:
                self._asked[key] = bool(self._decide(action, owner))
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
        tenants = self.registry.id_tenants(schema_id)
        return not tenants or any(self.may(READ, t) for t in sorted(tenants))

    def require_readable_id(self, schema_id: int) -> None:
        """Raise ``SchemaNotFound`` (as for an unknown id) when no subject the principal may
        read holds or held ``schema_id``."""
        if not self.readable_id(schema_id):
            raise SchemaNotFound(f"Schema id {schema_id} not found.")

    # -- changes -------------------------------------------------------------------------------
    def claim(self, subject: str, action: str = "schema.write") -> str:
        """The tenant a change of ``subject`` is made as: its owner when the principal may act
        as the owner's (its own tenant, or an allowed cross-tenant decision), the principal's
        own tenant for a new subject; else ``SubjectNotFound`` for a subject it may not even
        read, ``SubjectOwned`` for one it reads (the hub's own)."""
        owner = self.registry.owner(subject)
        if owner is None:
            return self.principal.tenant
        if self.may(action, owner):
            return owner
        if action != "schema.write" and not self.readable(subject):
            raise SubjectNotFound(f"Subject {subject!r} not found.")
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
