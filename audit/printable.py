"""Text from outside (a pack's file names, a key's name, a record's strings) made safe to show
on one line of a terminal or a log.

A control character in such text can forge what a reader sees: a newline starts a false line
(``OK ...`` after a refusal), a carriage return or an ANSI escape (``ESC [2K``, ``ESC [8m``)
overwrites or hides the real text, and Unicode's bidirectional overrides reorder it ("Trojan
Source"). ``printable`` writes each of them as a visible escape (``\\x1b``, ``\\u202e``); every
other character is kept.
"""

from __future__ import annotations

_UNSAFE = [
    *range(0x00, 0x20),  # C0 controls, newline and tab included
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls (0x9B is a one-byte CSI to some terminals)
    0x2028,  # line separator
    0x2029,  # paragraph separator
    *range(0x202A, 0x202F),  # bidirectional embeddings and overrides
    *range(0x2066, 0x206A),  # bidirectional isolates
]
_TABLE: dict[int, str] = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}


def printable(text: str) -> str:
    """``text`` with every control, line-separator and bidi-override character escaped."""
    return text.translate(_TABLE)


def printable_lines(text: str) -> str:
    """``text`` (lines ending in ``\\n``, such as a diff) with every line made ``printable``:
    its line breaks kept, every other control escaped (a ``\\r`` too, so a line cannot be
    rewritten over)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def first_unsafe(text: str) -> tuple[int, int, str] | None:
    """The first character ``printable`` would escape other than a line break or a tab (a
    ``\\r`` only before ``\\n``), as (line, column, escaped), both from 1; None if none."""
    line, start = 1, 0
    for i, c in enumerate(text):
        if c == "\n":
            line, start = line + 1, i + 1
        elif ord(c) in _TABLE and c != "\t" and not (c == "\r" and text[i + 1 : i + 2] == "\n"):
            return line, i - start + 1, _TABLE[ord(c)]
    return None
