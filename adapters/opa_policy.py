"""OpaPolicyEngine: the same policies evaluated by an Open Policy Agent server over HTTP.

The distributed footprint's PolicyEngine adapter, through ``opa-python-client`` (3.0, which
speaks OPA's v1 REST API: ``POST /v1/data/hub/authz/decision`` with ``{"input": ...}``). The
server is started by ``infra/opa.sh`` with the files of ``governance/policies``; ``load(bundle)``
pushes another bundle (modules to ``/v1/policies``, data to ``/v1/data``) when a policy change
activates one.

The client's retries are off (``retries=0``) and every request has a short timeout: a policy
check sits on the hot path, and a server that does not answer MUST deny at once (fail closed)
rather than hold the request. Any transport error, HTTP error, timeout, undefined or malformed
answer is a deny whose reason says what failed, never an exception. An optional
``DecisionCache`` answers repeated inputs without a round trip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from core.decisioncache import DecisionCache
from core.errors import ConfigError
from core.policybundle import (
    EvaluationTimeout,
    InputDocumentEngine,
    PolicyBundle,
    PolicyError,
    decide_cached,
)
from core.ports.policy import Decision

try:
    import requests
    from opa_client import OpaClient
except ImportError as exc:  # pragma: no cover - the lock file installs it
    raise ImportError(
        "The OPA policy engine needs opa-python-client: pip install opa-python-client==3.0.0"
    ) from exc

ENGINE = "OPA"
log = logging.getLogger(__name__)
PACKAGE = "hub/authz"
RULE = "decision"


class OpaPolicyEngine(InputDocumentEngine):
    """Asks an OPA server for ``data.hub.authz.decision``. Thread-safe."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:18181",
        bundle: PolicyBundle | None = None,
        *,
        timeout_s: float = 0.5,
        cache: DecisionCache | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"HUB_OPA_URL={url!r} is not an http(s) URL such as http://127.0.0.1:18181."
            )
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.cache = cache
        self._clock_ns = clock_ns
        self._on_timeout = on_timeout
        self.timeouts = 0  # decisions denied for a server past the timeout, since start
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = parts.scheme == "https"
        self._local = threading.local()
        # The bundle the server is expected to run (infra/opa.sh serves governance/policies).
        self._bundle = bundle or PolicyBundle.from_dir()

    @property
    def version(self) -> str:
        return self._bundle.version

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    def client(self) -> OpaClient:
        """This thread's client (requests sessions are not documented as thread-safe)."""
        client: OpaClient | None = getattr(self._local, "client", None)
        if client is None:
            client = OpaClient(
                host=self._host,
                port=self._port,
                ssl=self._ssl,
                retries=0,
                timeout=self.timeout_s,
            )
            self._local.client = client
        return client

    def evaluate(self, doc: Mapping[str, Any]) -> Any:
        """The raw ``result`` of the decision rule (None when undefined); raises on transport,
        ``EvaluationTimeout`` (``policy_eval_timeout``) when the server did not answer in time
        (the request is dropped; OPA stops an evaluation whose request was cancelled)."""
        try:
            body = self.client().query_rule(doc, PACKAGE, RULE)
        except requests.Timeout as exc:
            self.timeouts += 1
            message = (
                f"policy_eval_timeout: {self.url} did not decide {doc.get('action')!r} on "
                f"{doc.get('resource')!r} within {self.timeout_s * 1000:.0f} ms "
                "(HUB_OPA_TIMEOUT_MS): denied."
            )
            log.warning(
                message,
                extra={"event": "policy_eval_timeout", "engine": ENGINE, "url": self.url},
            )
            if self._on_timeout is not None:
                self._on_timeout()
            raise EvaluationTimeout(message) from exc
        return body.get("result") if isinstance(body, dict) else None

    def decide_input(self, doc: Mapping[str, Any], *, key: str | None = None) -> Decision:
        return decide_cached(
            ENGINE, doc, self._bundle, self.cache, self.evaluate, self._explain, key
        )

    def _explain(self, exc: Exception) -> str:
        """Why a query failed, for the fail-closed denial."""
        if isinstance(exc, requests.Timeout):
            return f"{self.url} did not answer within {self.timeout_s} s."
        if isinstance(exc, requests.ConnectionError):
            return (
                f"{self.url} is unreachable ({type(exc).__name__}); start it with "
                "`infra/opa.sh start`."
            )
        if isinstance(exc, requests.HTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            text = exc.response.text[:200] if exc.response is not None else ""
            return f"{self.url} answered HTTP {status}: {text}"
        return repr(exc)

    # -- bundle management ---------------------------------------------------------------------
    def _server_policies(self) -> dict[str, str]:
        """Module id -> raw text of every policy the server holds."""
        try:
            client = self.client()
            return {
                i: client.get_policy(i).get("result", {}).get("raw", "")
                for i in client.get_policies_list()
            }
        except Exception as exc:
            raise PolicyError(f"Cannot list the policies of OPA at {self.url}: {exc!r}") from exc

    @staticmethod
    def _match(ids: list[str], path: str) -> str | None:
        for i in ids:
            if i == path or i.endswith("/" + path):
                return i
        return None

    def loaded_version(self) -> str | None:
        """The version of our bundle if the server's modules are exactly its modules, else None.

        (Modules are compared text for text; OPA does not list data, which is trusted.)
        """
        server = self._server_policies()
        ids = list(server)
        rego = {p: t for p, t in self._bundle.files.items() if p.endswith(".rego")}
        matched = {p: self._match(ids, p) for p in rego}
        if any(i is None or server[i] != rego[p] for p, i in matched.items()):
            return None
        return self._bundle.version if len(matched) == len(server) else None

    def load(self, bundle: PolicyBundle) -> None:
        """Make the server run ``bundle``: replace its modules and ``data`` documents.

        Not atomic on the server: while it runs, decisions may fail and deny (fail closed).
        """
        client = self.client()
        ids = list(self._server_policies())
        wanted = {p: t for p, t in bundle.files.items() if p.endswith(".rego")}
        keep = {self._match(ids, p) for p in wanted}
        try:
            for old in ids:
                if old not in keep:
                    client.delete_policy(old)
            for root, doc in bundle.data.items():
                if isinstance(doc, Mapping):
                    client.update_or_create_data(dict(doc), root)
            for path, text in sorted(wanted.items()):
                client.update_policy_from_string(
                    text, self._match(ids, path) or path, rego_compat=False
                )
        except Exception as exc:
            raise PolicyError(f"OPA at {self.url} did not take the bundle: {exc!r}") from exc
        self._bundle = bundle
        if self.cache is not None:
            self.cache.clear()
