"""Which fields name a projection's data subjects: shared by erasure (which rows to scrub) and
retention (which rows a legal hold keeps), in a module of its own so that neither imports the
other."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.projection import Projection


def subject_fields(proj: Projection) -> frozenset[str]:
    """The ``hub.data_subject`` fields of the event schemas on the projection's topics."""
    from core.pii import data_subject_field
    from domain.catalog import TOPICS, schema_text

    names = (
        data_subject_field(schema_text(t))
        for spec in TOPICS
        if spec.name in proj.topics
        for t in spec.event_types
    )
    return frozenset(n for n in names if n is not None)
