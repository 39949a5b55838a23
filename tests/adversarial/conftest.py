"""Fixtures of the adversarial suites (hub and API keys per role: ``_api``)."""

from __future__ import annotations

from ._api import api, client, shared_api  # noqa: F401  (fixtures)
from ._kafka_hub import kafka, kafka_hub  # noqa: F401  (fixtures)
