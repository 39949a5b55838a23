"""The erasure index: the ledger's erasure entries, kept in a small MAC'd file, so that every
open of the hub can check for erasures undone by a key store put back (``Eraser.undone``).

Reading the erasure entries from the ledger decodes every side-index batch holding one (about
0.6 ms each: 6 s at 10,000 erasures), so session 20 only checked at ``hub serve`` and
``hub ledger verify``, and one-shot commands read an erased subject's PII from a keyring put
back. The index holds what that scan finds up to a ledger size (its cursor):

    file = MAC (64 hex digits) "\\n" body
    body = JSON {"v": 1, "size": S, "root": hex(root of the ledger at S),
                 "entries": [[ledger index, tenant, subject id], ...]}
    MAC  = HMAC-SHA256(key, "hub erasure index v1\\0" + body), key held outside the file

``entries`` is exactly the ``subject.erase`` entries of ledger leaves ``[0, S)`` (first entry of
each (tenant, subject), index order). ``ErasureIndex.entries`` (every open, and each erasure):

1. reads the file and checks its MAC and shape;
2. checks it against the ledger: ``S`` is at most the ledger's size and the ledger's root at
   ``S`` is the stored root (one read of O(log n) tree nodes), so the index describes this
   ledger's own first ``S`` leaves, not another's or a rolled-back one's;
3. on any failure in 1-2, or no file (a folder from before the index), logs a warning naming
   the reason (for no file: once built, when the ledger holds erasures; a new folder holds
   none) and starts again from an empty index (the whole ledger is read once: the s20 cost);
4. reads only the ledger's erasure entries from leaf ``S`` on (side-index batches before ``S``
   are not decoded), up to the ledger's size when it started;
5. writes the file again when 4 found erasures, when it was rebuilt, or when ``S`` lags the
   ledger by ``REWRITE_LAG`` leaves or more (a temporary file, fsync, rename: a reader sees the
   old or the new one, never a torn one; a failed write is a warning, the check went on). Not
   on every open: each command's own ledger entries move the size, and re-reading a few
   batches without an erasure (their string dictionaries skip them) costs less than
   rewriting and syncing the file.

The entries hold subject ids, not digests: each key store names keys by its own digest
(``KeyStore.live_among`` takes ids). The ledger's side index holds the same ids (``resource``
``subject:<id>``) in the same folder, so the file reveals nothing the ledger does not.
Someone holding the MAC key can forge the file; ``hub ledger verify`` reads the whole ledger and
compares (``ErasureIndex.reconcile``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance import maced_file

if TYPE_CHECKING:
    from ledger.service import Ledger

log = logging.getLogger("hub.governance.erasure_index")

ACTION = "subject.erase"
_LABEL = b"hub erasure index v1\x00"
_VERSION = 1

Entry = tuple[int, str, str]  # (ledger index, tenant, subject id)
REWRITE_LAG = 50_000  # ledger leaves past the cursor without an erasure before a rewrite


def erasure_entries(ledger: Ledger, start: int = 0, end: int | None = None) -> Iterator[Entry]:
    """The ``subject.erase`` entries of ledger leaves ``[start, end)`` (``end`` None: to the
    end), in index order, as (index, tenant, subject); an entry naming no subject or no tenant
    is skipped. A thousand entries per ledger query."""
    after = start - 1
    while page := ledger.entries(action=ACTION, after=after, limit=1000):
        for e in page:
            index = int(e["index"])
            if end is not None and index >= end:
                return
            resource, tenant = str(e.get("resource") or ""), str(e.get("tenant") or "")
            subject = resource.removeprefix("subject:")
            if resource != subject and tenant:
                yield index, tenant, subject
        after = int(page[-1]["index"])


def first_of_each(entries: Iterator[Entry], seen: set[tuple[str, str]]) -> list[Entry]:
    """The entries whose (tenant, subject) is not in ``seen`` yet (added as they come): a
    subject erased again in a tenant keeps its first entry."""
    out = []
    for index, tenant, subject in entries:
        if (tenant, subject) not in seen:
            seen.add((tenant, subject))
            out.append((index, tenant, subject))
    return out


class ErasureIndex:
    """The MAC'd file of the ledger's erasure entries at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, mac_key: bytes, ledger: Ledger) -> None:
        self.path = path
        self._key = mac_key
        self._ledger = ledger

    def entries(self) -> list[Entry]:
        """Every erasure entry of the ledger (first of each (tenant, subject)), in index
        order: the file's, checked against the ledger, plus the ledger's entries after it."""
        store = self._ledger.store
        size = store.tree_size()
        fields, problem = self._read()  # 1
        if fields is not None:
            problem = self._against_ledger(fields, size)  # 2
        missing = fields is None and not self.path.exists()
        if problem is not None and not missing:  # 3
            log.warning(
                "erasure index %s %s: rebuilding it from the audit ledger's erasure entries "
                "(reads the whole ledger once)",
                self.path,
                problem,
            )
            fields = None
        have: list[Entry] = [] if fields is None else [(i, t, s) for i, t, s in fields["entries"]]
        start = 0 if fields is None else int(fields["size"])
        if fields is not None and start == size:
            return have
        seen = {(t, s) for _i, t, s in have}
        found = first_of_each(erasure_entries(self._ledger, start, size), seen)  # 4
        have += found
        if missing and have:  # a folder from before the index (a new one has no erasures)
            log.warning(
                "erasure index %s %s: built from the audit ledger's %d erasure entries (the "
                "whole ledger read once)",
                self.path,
                problem,
                len(have),
            )
        if fields is None or found or size - start >= REWRITE_LAG:  # 5
            self._save(size, have)
        return have

    def reconcile(self, entries: list[Entry]) -> bool:
        """Compare the index with ``entries``, the whole ledger's (``hub ledger verify`` reads
        them all); write them when the index differs (a warning naming the difference). True
        when the index already held exactly them."""
        held = self.entries()
        if held == entries:
            return True
        log.warning(
            "erasure index %s does not match the audit ledger (%d entries held, %d in the "
            "ledger; %d missing): rewritten from the ledger",
            self.path,
            len(held),
            len(entries),
            len(set(entries) - set(held)),
        )
        self._save(self._ledger.store.tree_size(), entries)
        return False

    # -- the file ----------------------------------------------------------------------------
    def _read(self) -> tuple[dict[str, Any] | None, str | None]:
        fields, problem = maced_file.read(self.path, self._key, _LABEL)
        if fields is None:
            return None, problem or "is missing (a data folder from before the index)"
        try:
            ok = (
                fields["v"] == _VERSION
                and isinstance(fields["size"], int)
                and isinstance(fields["root"], str)
                and all(_is_entry(e) for e in fields["entries"])
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            return None, "is not an erasure index this release reads"
        return fields, None

    def _against_ledger(self, fields: dict[str, Any], size: int) -> str | None:
        at = int(fields["size"])
        if at > size:
            return f"covers {at} ledger entries but the ledger holds {size}"
        if self._root(at) != fields["root"]:
            return f"was built from another ledger (its root at size {at} differs)"
        return None

    def _root(self, size: int) -> str:
        return self._ledger.store.root(size).hex() if size else ""

    def _save(self, size: int, entries: list[Entry]) -> None:
        fields = {"v": _VERSION, "size": size, "root": self._root(size), "entries": entries}
        try:
            self.write(self.path, self._key, fields)
        except OSError as exc:
            log.warning(
                "erasure index %s not written (%s): the next open reads the ledger again",
                self.path,
                exc.strerror,
            )

    @staticmethod
    def write(path: Path, key: bytes, fields: dict[str, Any]) -> None:
        """Write ``fields`` with their MAC under ``key``: a temporary file, fsync, rename."""
        maced_file.write(path, key, _LABEL, fields)


def _is_entry(e: Any) -> bool:
    return (
        isinstance(e, list)
        and len(e) == 3
        and isinstance(e[0], int)
        and isinstance(e[1], str)
        and isinstance(e[2], str)
    )
