"""A quiet embedded hub (no projection runner) with the given topics registered: the hostile-file
tests' common set-up."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings


@contextmanager
def hub_with_topics(data: Path, schemas: Mapping[str, Mapping[str, Any]]) -> Iterator[Hub]:
    """A hub on ``data`` with one single-partition topic per entry, its ``-value`` schema given."""
    h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        for topic, schema in schemas.items():
            h.log.create_topic(topic, 1)
            h.registry.register(f"{topic}-value", json.dumps(schema))
        yield h
    finally:
        h.close()
