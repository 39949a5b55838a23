"""The ledger's errors, in the hub's tree (``HubError``).

HubError
├── NotFound
│   ├── EntryNotFound        no leaf with that index (yet)
│   └── CheckpointNotFound   no signed checkpoint of that size / none covering an entry
├── InvalidInput
│   └── InvalidRange         a proof or query range that cannot exist (size1 > size2 ...)
└── LedgerIntegrityError     the store disagrees with the log or with itself (tampering)
"""

from __future__ import annotations

from core.errors import HubError, InvalidInput, NotFound


class EntryNotFound(NotFound):
    code = "ledger_entry_not_found"


class CheckpointNotFound(NotFound):
    code = "checkpoint_not_found"


class InvalidRange(InvalidInput):
    code = "invalid_range"


class LedgerIntegrityError(HubError):
    code = "ledger_integrity"
    http_status = 500
