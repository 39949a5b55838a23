"""The keyring's anchor: its last known state, kept outside the keyring, checked on every open.

The local keyring MACs its rows as a set (``adapters.keyring_set``), so an edit of some rows is
refused; but the whole file put back to an older copy of itself (summary and rows agree) would
open, and every key made since would be gone with no record: their data reads as "no key". The
summary carries a generation (one more per committed change, never less), and the hub writes
the keyring's state here after each change it commits:

    <data>/keyring.anchor = MAC "\\n" JSON {"v": 1, "g": generation, "counts": {table: rows},
                                            "digest": the summary's digest, "ms": written at}
    MAC = HMAC-SHA256(key derived from the hub's MAC key, "hub keyring anchor v1\\0" + JSON)

``KeyringAnchor.hold`` (every open, in ``bootstrap``):

1. reads the keyring's state (one row, its MAC checked under the master key);
2. reads the anchor and refuses, naming what is missing: a keyring at a lower generation than
   the anchor (put back to an older copy), one at the same generation with another digest
   (another keyring), an anchor that fails its MAC, or no anchor beside a keyring that has
   committed a change under this release (generation > 0: the anchor was deleted);
3. writes the anchor when the keyring is newer (a change committed by a process that stopped
   before writing it) or when there was none (a folder from before the anchor);
4. asks the keyring to call ``record`` after each change it commits and when it closes (at
   most one write per ``WRITE_INTERVAL_S``, the last one at the close or by a timer).

The file sorts before ``keys/`` in a backup (``storage.backup.data_files`` takes files in
name order), so a backup taken while keys are made holds an anchor no newer than its keyring.
Not covered: the anchor put back together with the keyring (both from one older copy of the
folder; the ledger's erasure check still covers erasures undone that way), and the keys a
process made in the last ``WRITE_INTERVAL_S`` before it was killed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Any

from core.ports.keystore import KeyStore, KeyStoreError, KeyStoreState
from governance import maced_file

log = logging.getLogger("hub.governance.keyring_anchor")

_LABEL = b"hub keyring anchor v1\x00"
_VERSION = 1
WRITE_INTERVAL_S = 0.5  # the most often a process writes the anchor (``record``)
_MEANING = {"data_keys": "data key(s)", "erased": "erasure tombstone(s)"}


class KeyringAnchor:
    """The anchor file at ``path``, MAC'd under ``mac_key`` (see the module docstring)."""

    def __init__(self, path: Path, mac_key: bytes, keyring: Path) -> None:
        self.path = path
        self._key = mac_key
        self._keyring = keyring
        self._written = -1  # the generation this process last wrote (or found newer)
        self._mutex = threading.Lock()
        self._pending: KeyStoreState | None = None  # a state to write at the interval's end
        self._timer: threading.Timer | None = None
        self._last = -WRITE_INTERVAL_S  # monotonic time of the last write

    def hold(self, keystore: KeyStore) -> None:
        """Steps 1-4 of the module docstring; a no-op for a store without a state (Vault)."""
        state = keystore.state()  # 1
        if state is None:
            return
        anchored = self.check(state)  # 2
        if anchored is None or state.generation > anchored:
            self.record(state, final=True)  # 3
        else:
            self._written = anchored
        keystore.watch_state(self.record)  # 4

    def check(self, state: KeyStoreState) -> int | None:
        """Refuse a keyring older than the anchor (step 2); the anchored generation, None when
        there is no anchor yet."""
        fields, problem = maced_file.read(self.path, self._key, _LABEL)
        if fields is None and problem is None:
            if state.generation > 0:
                problem = (
                    f"is missing, but the keyring has committed {state.generation} change(s) "
                    "under this release (each one writes the anchor): it was deleted"
                )
            else:
                log.info("keyring anchor %s written for the first time", self.path)
                return None
        elif fields is not None and not _is_anchor(fields):
            problem = "is not a keyring anchor this release reads"
        if problem is not None:
            raise self._refused(f"its anchor {self.path} {problem}")
        assert fields is not None
        anchored = int(fields["g"])
        if state.generation < anchored:
            raise self._refused(self._missing(state, fields))
        if state.generation == anchored and state.digest != fields["digest"]:
            raise self._refused(
                f"it is not the keyring its anchor recorded: both are at generation {anchored}, "
                "with different rows (another folder's keyring, or the file was forged)"
            )
        return anchored

    def record(self, state: KeyStoreState, final: bool = False) -> None:
        """Anchor ``state`` (the keyring's callback after each commit; ``final`` at its close).

        At most one write per ``WRITE_INTERVAL_S``: a write (fsync and rename) costs more than
        making a key, and ingest makes one per new subject. A state inside the interval is
        written by a timer at its end, or at the close, whichever comes first; a process
        killed in between leaves the anchor up to ``WRITE_INTERVAL_S`` behind. A write that
        found the file newer (another process's) keeps it."""
        with self._mutex:
            if state.generation <= self._written:
                return
            self._pending = state
            wait = self._last + WRITE_INTERVAL_S - time.monotonic()
            if not final and wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Write the pending state, if any."""
        with self._mutex:
            state, self._pending = self._pending, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if state is None or state.generation <= self._written:
                return
            self._last = time.monotonic()
            self._write(state)

    def _write(self, state: KeyStoreState) -> None:
        fields, _problem = maced_file.read(self.path, self._key, _LABEL)
        if fields is not None and _is_anchor(fields) and int(fields["g"]) >= state.generation:
            self._written = int(fields["g"])
            return
        body = {
            "v": _VERSION,
            "g": state.generation,
            "counts": state.counts,
            "digest": state.digest,
            "ms": time.time_ns() // 1_000_000,
        }
        try:
            maced_file.write(self.path, self._key, _LABEL, body)
        except OSError as exc:
            log.warning("keyring anchor %s not written (%s)", self.path, exc.strerror)
            return
        self._written = state.generation

    def _missing(self, state: KeyStoreState, fields: dict[str, Any]) -> str:
        anchored = int(fields["g"])
        when = dt.datetime.fromtimestamp(int(fields["ms"]) / 1000, dt.UTC).isoformat(
            timespec="seconds"
        )
        lost = [
            f"at least {fields['counts'].get(t, 0) - state.counts.get(t, 0)} {meaning}"
            for t, meaning in _MEANING.items()
            if fields["counts"].get(t, 0) > state.counts.get(t, 0)
        ]
        return (
            f"it is older than its anchor {self.path}: it is at generation {state.generation} "
            f"({_counts(state.counts)}), the anchor recorded generation {anchored} "
            f"({_counts(fields['counts'])}) at {when}. {anchored - state.generation} committed "
            "change(s) are missing"
            + (f", among them {' and '.join(lost)} made since" if lost else "")
            + ": the keyring was put back to an older copy of itself, and the data sealed "
            "under the keys made since could not be read"
        )

    def _refused(self, why: str) -> KeyStoreError:
        return KeyStoreError(
            f"Refusing to open the keyring {self._keyring}: {why}. Put the current keyring "
            "back (or restore the newest backup, which holds its anchor); do not delete the "
            "anchor to get past this, that would accept the loss."
        )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(t, 0)} {m}" for t, m in _MEANING.items())


def _is_anchor(fields: Any) -> bool:
    return (
        isinstance(fields, dict)
        and fields.get("v") == _VERSION
        and isinstance(fields.get("g"), int)
        and isinstance(fields.get("counts"), dict)
        and all(isinstance(v, int) for v in fields["counts"].values())
        and isinstance(fields.get("digest"), str)
        and isinstance(fields.get("ms"), int)
    )
