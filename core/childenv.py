"""The environment of a helper process that runs hostile input (a decoder, a policy, a query).

The hub's helpers (``ingest.parquet_pool``'s decoders, ``adapters.rego_deadline``'s timing
child, ``adapters.chdb_views``' readers) take their arguments from the parent, never from the
environment; the environment is where a deployment keeps its secrets (``HUB_VAULT_TOKEN``,
``HUB_MASTER_KEY``, a database password). A child that a hostile file or bundle subverts should
find none of them: it gets the environment minus the hub's settings (``HUB_*``) and any name
that looks like a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRET_NAME = re.compile(
    r"^HUB_|TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|(^|_)KEY($|_)|ACCESS_KEY|API_KEY|_AUTH",
    re.IGNORECASE,
)


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without the hub's settings and secret-like names."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not _SECRET_NAME.search(k)}
