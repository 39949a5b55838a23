"""Property tests of the whole HTTP API with schemathesis, driven by the served OpenAPI document.

Each operation gets a few generated requests (valid and invalid parameters and bodies), sent in
process to the ASGI app of a hub on a temporary data folder, authenticated as an admin; each
answer must not be a 5xx and must conform to the document (status codes, content types and
response schemas). Bounded: ``MAX_EXAMPLES`` per operation, no deadline.
"""

from __future__ import annotations

import atexit
import base64
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ._api import start_api

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

_DIR = Path(tempfile.mkdtemp(prefix="hub-schemathesis-"))
HUB, _CLIENT = start_api(_DIR / "data")
ADMIN = {
    "Authorization": "Basic "
    + base64.b64encode(HUB.keys.create(["admin"], principal="fuzz").token.encode()).decode()
}


_CLOSED: list[bool] = []


def _close() -> None:
    if not _CLOSED:
        _CLOSED.append(True)
        _CLIENT.close()
        HUB.close()
        shutil.rmtree(_DIR, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _close_the_hub_after_the_module() -> Iterator[None]:
    """At the module's end, not the session's: a hub left open keeps its chDB session, and
    chDB allows one per process."""
    yield
    _close()


atexit.register(_close)  # when collected but not run
schema = schemathesis.openapi.from_asgi("/openapi.json", _CLIENT.app, headers=ADMIN)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api(case: schemathesis.Case) -> None:
    logging.getLogger("hub").setLevel(logging.CRITICAL)  # refused requests log on purpose
    case.call_and_validate(headers=ADMIN, checks=CHECKS)
