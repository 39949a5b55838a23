"""Moving an unreadable view store aside (``core.ports.views.SetAside``).

Views are derived state: the log is the truth. A view store whose files cannot be opened at
start (chDB's metadata file left empty by a write on a full disk, a truncated SQLite views
file) would otherwise stop the hub from starting until someone moves it by hand. Its files go,
renamed, never copied or deleted, into a dated folder beside them
(``<name>.broken-<UTC stamp>``) with ``set-aside.json`` saying which files were broken and why;
the store then opens empty and the projections fold it again from the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from core.ports.views import SetAside

NOTE = "set-aside.json"


THEN = "the store opened empty; its projections are folded again from the log"


def set_aside(
    paths: Sequence[Path],
    broken: Sequence[str],
    reason: str,
    beside: Path | None = None,
    then: str = THEN,
) -> SetAside:
    """Move ``paths`` (those that exist) into a new dated folder beside ``beside`` (default:
    the first path) and write the note (``then``: what the store does next). Raises
    ``ConfigError`` naming the paths when they cannot move: the hub then does not start on
    them, as before."""
    first = paths[0]
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    base = beside or first
    folder = base.parent / f"{base.name}.broken-{stamp}"
    try:
        folder.mkdir(mode=0o700)
        for p in paths:
            if os.path.lexists(p):
                os.rename(p, folder / p.name)
        moved = SetAside(str(folder), tuple(broken), reason, now.isoformat(timespec="seconds"))
        note = {
            "folder": moved.folder,
            "files": list(moved.files),
            "reason": moved.reason,
            "at": moved.at,
            "moved": [p.name for p in paths],
            "then": then,
        }
        (folder / NOTE).write_text(json.dumps(note, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(
            f"The view store {first} cannot be opened ({reason}) and could not be moved aside "
            f"to {folder}: {exc}. Free space or fix the permissions, or move it aside by hand "
            "(the views are folded again from the log)."
        ) from exc
    return moved


def set_asides(views: Path) -> list[dict[str, object]]:
    """The notes of every store set aside under ``views`` (a data folder's ``views``), oldest
    first; a note that cannot be read is shown by its folder alone."""
    out: list[dict[str, object]] = []
    for folder in sorted(views.glob("*.broken-*"), key=lambda p: p.name.rsplit("-", 1)[-1]):
        try:
            out.append(json.loads((folder / NOTE).read_text()))
        except (OSError, ValueError):
            out.append({"folder": str(folder)})
    return out
