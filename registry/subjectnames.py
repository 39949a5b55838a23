"""Which names a NEW subject may take: ASCII letters, digits and ``.``, ``_``, ``-``.

A subject name may be any printable text in Confluent's registry, so one tenant could register
a look-alike of another's subject (``mоves-value`` with a Cyrillic ``о`` beside
``moves-value``, or a fullwidth ``ｍoves-value``): a hub-wide reader, an auditor or a
client's configuration then cannot tell the two apart. Every name the Confluent-compatible
clients derive fits the safe set: Kafka topic names are ``[a-zA-Z0-9._-]``, so the
TopicNameStrategy's ``<topic>-key`` / ``<topic>-value`` are, and Avro and Protobuf full names
(RecordNameStrategy ``com.acme.Trade``, TopicRecordNameStrategy ``<topic>-com.acme.Trade``) are
letters, digits, ``_`` and ``.``.

Only a subject that holds no record yet is checked (``SchemaRegistry.register``): a subject
stored before this rule stays readable and takes new versions. A name that is not in NFKC form
is named as such (with its NFKC form): NFKC folds the compatibility look-alikes (fullwidth
letters, ligatures, superscripts) onto ASCII; other scripts' look-alikes (Cyrillic, Greek) are
outside the set.
"""

from __future__ import annotations

import string
import unicodedata

from core.errors import InvalidInput

SAFE = frozenset(string.ascii_letters + string.digits + "._-")
SAFE_DESCRIPTION = "ASCII letters, digits, '.', '_' and '-'"


def refuse_unsafe_new_subject(subject: str) -> None:
    """Raise ``InvalidInput`` (``invalid_subject``) naming the first character of ``subject``
    outside the safe set and its position (counted from 1), or the name's NFKC form."""
    normal = unicodedata.normalize("NFKC", subject)
    for position, char in enumerate(subject, 1):
        if char in SAFE:
            continue
        what = f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"
        nfkc = (
            f" (it is not in NFKC form, which is {normal!r})"
            if normal != subject and normal.isascii()
            else ""
        )
        raise InvalidInput(
            f"Subject name {subject!r} holds {char!r} ({what}) at position {position}{nfkc}: "
            f"a new subject name may hold only {SAFE_DESCRIPTION}, so that no name can pass "
            "for another. Name the subject with those characters (for instance "
            "'<topic>-value').",
            code="invalid_subject",
        )
