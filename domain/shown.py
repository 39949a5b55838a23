"""How a refusal echoes the value it refuses: whole when short, else a bounded prefix.

A message names the bad value so that its sender can find it; echoed whole, a value of
thousands of characters (a decimal of 5,000 digits, a long text sent for an enum, a list of
thousands of items for a number) made the message as large as the record, and the HTTP answer,
the quarantine reason and the log line with it. ``shown`` keeps the first ``LIMIT`` characters
and says how long the whole is; the message's path (``/leg/px``) is written by the caller, whole.
"""

from __future__ import annotations

from typing import Any

LIMIT = 80  # characters of a value a message shows


def shown(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)``, or its first ``limit`` characters then ``... (N characters)``, N the
    length of the value's text (a string's own length, without quotes)."""
    return _bounded(_text(value, repr), value, limit)


def shown_str(value: Any, limit: int = LIMIT) -> str:
    """``str(value)`` (a number as written, without quotes), bounded as ``shown``."""
    return _bounded(_text(value, str), value, limit)


def _text(value: Any, form: Any) -> str:
    try:
        return str(form(value))
    except ValueError:  # an int past Python's digit limit for text (4300 digits)
        return f"<an integer of {value.bit_length()} bits>"


def _bounded(text: str, value: Any, limit: int) -> str:
    if len(text) <= limit:
        return text
    length = len(value) if isinstance(value, str) else len(text)
    return f"{text[:limit]}... ({length} characters)"
