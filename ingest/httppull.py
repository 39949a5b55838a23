"""HTTP API source: a pull connector for paginated JSON endpoints (httpx).

Pagination (``pagination``):
- ``cursor``: ``GET url?<cursor_param>=<cursor>``; the response's ``next_path`` (dotted) gives
  the next cursor, absent/null at the end.
- ``page``: ``GET url?<page_param>=<n>`` from ``first_page``; an empty page is the end.
Records are the list at ``records_path`` (dotted; empty = the body is the list). Each record's
original bytes are its JSON text.

Retries: a 5xx, a 429 or a transport error (timeout, refused connection) is retried up to
``max_retries`` times with exponential backoff (``backoff_s * 2**attempt``); a 4xx fails the run
with ``ConnectorFailed``. Resumable: after each page the position (the next cursor or page) is
stored with the page's records in one log transaction; a restart fetches the next page, so no
record is skipped or repeated even when the run stopped midway. The source is
``http:<name>``.

Lineage: each ``run()`` is one run of ``ingest.http.<name>`` reading ``hub://sources/<url>``
(without user, password, query or fragment) and writing the topic (plus ``hub.quarantine`` once a
record was quarantined); a failed pull ends with FAIL. ``params`` and ``headers``, where API keys
live, are never recorded: error messages name the configured params without their values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import httpx

from core import lineage
from core.errors import HubError, Retryable
from ingest.pipeline import IngestPipeline, IngestResult, RawRecord, tracked_pull


class ConnectorFailed(HubError):
    code = "connector_failed"
    http_status = 502


@dataclass(frozen=True)
class HttpPullConfig:
    name: str
    url: str
    topic: str
    pagination: Literal["cursor", "page"] = "cursor"
    records_path: str = "data"
    next_path: str = "next_cursor"
    cursor_param: str = "cursor"
    page_param: str = "page"
    first_page: int = 1
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    event_type: str | None = None
    max_retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 10.0
    max_pages: int | None = None


def _dig(body: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


class HttpPullConnector:
    def __init__(
        self,
        pipeline: IngestPipeline,
        config: HttpPullConfig,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.source = f"http:{config.name}"
        self._sleep = sleep

    def _get(self, client: httpx.Client, params: dict[str, Any]) -> Any:
        c = self.config
        last: str = ""
        for attempt in range(c.max_retries + 1):
            if attempt:
                self._sleep(c.backoff_s * 2 ** (attempt - 1))
            try:
                resp = client.get(c.url, params=params)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                # Configured parameters may be API keys: the message names them, not their values.
                shown = {k: "***" if k in c.params else v for k, v in params.items()}
                raise ConnectorFailed(
                    f"Connector {c.name!r}: {c.url} answered HTTP {resp.status_code} for "
                    f"{shown}: {resp.text[:200]}. Fix the URL, parameters or credentials."
                )
            try:
                return json.loads(resp.content, parse_float=Decimal)
            except ValueError as exc:
                raise ConnectorFailed(
                    f"Connector {c.name!r}: {c.url} did not answer JSON ({exc})."
                ) from exc
        raise Retryable(
            f"Connector {c.name!r}: {c.url} failed {c.max_retries + 1} times (last: {last}); "
            "the position is kept, run the connector again to resume."
        )

    def run(self) -> IngestResult:
        """Fetch pages until the end or ``max_pages`` (one lineage run); returns the totals."""
        c = self.config
        return tracked_pull(
            self.pipeline,
            f"ingest.http.{c.name}",
            lineage.source_dataset(c.url),
            c.topic,
            self._pull,
            redact={c.url: lineage.redact_url(c.url)},
        )

    def _pull(self, total: IngestResult) -> None:
        c = self.config
        last = self.pipeline.positions.get(self.source)
        if last is not None and last.done:
            return
        pos: dict[str, Any] = (
            dict(last.position)
            if last
            else ({"page": c.first_page} if c.pagination == "page" else {"cursor": None})
        )
        consumed = 0 if last is None else last.records
        pages = 0
        with httpx.Client(timeout=c.timeout_s, headers=c.headers) as client:
            while c.max_pages is None or pages < c.max_pages:
                params: dict[str, Any] = dict(c.params)
                if c.pagination == "page":
                    params[c.page_param] = pos["page"]
                elif pos.get("cursor") is not None:
                    params[c.cursor_param] = pos["cursor"]
                body = self._get(client, params)
                items = _dig(body, c.records_path) if c.records_path else body
                if not isinstance(items, list):
                    raise ConnectorFailed(
                        f"Connector {c.name!r}: no list at {c.records_path!r} in the response."
                    )
                if c.pagination == "page":
                    nxt: dict[str, Any] = {"page": pos["page"] + 1}
                    end = not items
                else:
                    cursor = _dig(body, c.next_path)
                    nxt = {"cursor": cursor}
                    end = cursor is None
                records = []
                for item in items:
                    original = json.dumps(item, default=str).encode()
                    if isinstance(item, dict):
                        records.append(
                            RawRecord(original, value=item, event_type=c.event_type, position=pos)
                        )
                    else:
                        records.append(
                            RawRecord(
                                original,
                                error=f"The API returned a non-object record: {item!r}.",
                                position=pos,
                            )
                        )
                consumed += len(records)
                # Position and page commit together; a finished cursor stream is "done".
                total.add(
                    self.pipeline.ingest(
                        c.topic,
                        records,
                        source=self.source,
                        position=pos if (end and c.pagination == "page") else nxt,
                        consumed=consumed,
                        done=end and c.pagination == "cursor",
                    )
                )
                pages += 1
                if end:
                    break
                pos = nxt
