"""HTTP API source: a pull connector for paginated JSON endpoints (httpx).

Pagination (``pagination``):
- ``cursor``: ``GET url?<cursor_param>=<cursor>``; the response's ``next_path`` (dotted) gives
  the next cursor, absent/null at the end.
- ``page``: ``GET url?<page_param>=<n>`` from ``first_page``; an empty page is the end.
Records are the list at ``records_path`` (dotted; empty = the body is the list). Each record's
original bytes are its JSON text (numbers as sent). A record that names a member twice, or holds
``NaN`` or an integer Python will not read, is quarantined alone (``duplicate_key``,
``malformed_json``; ``core.jsonkeys.Lenient``); such a value outside the records fails the run.

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

Where it may fetch from (SSRF rule, ``check_address``): only ``http``/``https`` URLs with a host;
every address the host resolves to, and the address the connection actually reached (so a DNS
answer that changes between the check and the connection is caught before the body is used), must
be globally routable. ``allow_private_network: true`` in the connector config also admits loopback
and private ranges (a source on the hub's own network); link-local (the cloud metadata service at
169.254.169.254), unspecified, multicast and reserved addresses are refused always. Redirects are
not followed: a 3xx fails the run with ``UnsafeSource`` naming the target. Who may run a connector
is the policy's ``ingest.connector`` decision; the config file is the operator's.

Response size: a body is read in pieces and the run fails with ``ConnectorFailed`` as soon as it
passes ``max_response_bytes`` (default 64 MiB), counted after decompression, so a compressed
answer cannot hold more than that in memory (plus one decoded step of 64 KiB). The connector
reads the raw body and undoes ``Content-Encoding`` itself (``decoded``: ``gzip``, ``deflate``,
``identity``, applied in the header's order), in steps of at most ``DECODE_STEP`` output bytes;
httpx decoded each raw piece (up to 64 KB) whole, and one piece of a gzip bomb grew about 1,000x
before it was counted. It asks for ``gzip, deflate`` only (what httpx asks for here too, with no
brotli or zstandard installed); an answer in another encoding fails the run naming it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from core import jsonkeys, lineage
from core.errors import HubError, Retryable
from ingest.pipeline import IngestPipeline, IngestResult, RawRecord, tracked_pull

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DECODE_STEP = 64 * 1024  # most bytes one decompression step gives (``decoded``)
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class ConnectorFailed(HubError):
    code = "connector_failed"
    http_status = 502


class UnsafeSource(ConnectorFailed):
    """A pull URL, or the address it reached, that the SSRF rule refuses."""

    code = "unsafe_source"
    http_status = 400


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_address(name: str, host: str, ip: _Address, allow_private: bool) -> None:
    """Raise ``UnsafeSource`` unless a connector may fetch from ``ip`` (``host``'s address)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    never = ip.is_link_local or ip.is_unspecified or ip.is_multicast
    if never or (ip.is_reserved and not ip.is_loopback):
        raise UnsafeSource(
            f"Connector {name!r}: {host} is {ip}, a link-local, unspecified, multicast or "
            "reserved address (the cloud metadata service lives there); a pull source never "
            "may be one. Point the connector at the API's own address."
        )
    if ip.is_global or (allow_private and (ip.is_loopback or ip.is_private)):
        return
    raise UnsafeSource(
        f"Connector {name!r}: {host} is {ip}, an internal address. Set "
        "allow_private_network: true in the connector config if the source is meant to be on "
        "this host or network."
    )


def check_url(
    name: str, url: str, allow_private: bool, resolve: Callable[..., Any] | None = None
) -> None:
    """Raise ``UnsafeSource`` unless ``url`` is http(s) and every address of its host passes
    ``check_address``. ``resolve`` is ``socket.getaddrinfo`` (read at call time)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = urlsplit(""), None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeSource(
            f"Connector {name!r}: {lineage.redact_url(url)} is not an http or https URL with "
            "a host; a pull source must be one."
        )
    host = parts.hostname
    try:
        infos = (resolve or socket.getaddrinfo)(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConnectorFailed(f"Connector {name!r}: cannot resolve {host!r} ({exc}).") from exc
    for info in infos:
        address = str(info[4][0]).split("%")[0]  # an IPv6 scope id is not part of the address
        check_address(name, host, ipaddress.ip_address(address), allow_private)


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
    allow_private_network: bool = False
    max_response_bytes: int = MAX_RESPONSE_BYTES


def decoded(pieces: Iterable[bytes], coding: str) -> Iterator[bytes]:
    """``pieces`` with one content coding (``gzip``, ``deflate`` or ``identity``) undone, each
    piece given out in steps of at most ``DECODE_STEP`` bytes (``decompress(max_length)``), so
    a small piece that expands a thousandfold is never held whole. ``deflate`` is the zlib
    format, or raw deflate when the first bytes are not zlib's (as httpx reads it). Raises
    ``zlib.error`` for a body that is not in the coding."""
    if coding == "identity":
        yield from pieces
        return
    d = zlib.decompressobj(_WBITS[coding])
    first = True
    for piece in pieces:
        data = piece
        while True:
            if d.eof and data:
                # Bytes after the end of the stream were dropped without a word: a second gzip
                # member (RFC 1952 allows several; ``gzip.decompress`` reads them all) lost its
                # records, trailing garbage was ignored. Further members are read; anything
                # else is not in the coding.
                if coding not in ("gzip", "x-gzip"):
                    raise zlib.error("data after the end of the compressed stream")
                d = zlib.decompressobj(_WBITS[coding])
            try:
                out = d.decompress(data, DECODE_STEP)
            except zlib.error:
                if not (first and coding == "deflate"):
                    raise
                d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = d.decompress(data, DECODE_STEP)
            first = first and not data
            if out:
                yield out
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
            # a full step may leave output to give even when all input was taken
            if not data and len(out) < DECODE_STEP:
                break
    if not d.eof and not first:
        raise zlib.error("the compressed stream ends early (the body is cut)")
    tail = d.flush()
    if tail:
        yield tail


def _marked_outside(page: Any, items: Any) -> jsonkeys.Marked | None:
    """The first marked value (``core.jsonkeys.Lenient``) of ``page`` outside its record list."""
    stack = [page]
    while stack:
        node = stack.pop()
        if node is items:
            continue
        if isinstance(node, jsonkeys.Marked):
            return node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


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
        *,
        producer: str | None = None,
        tenant: str = "default",
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.source = f"http:{config.name}"
        # who runs the connector: its records are stamped with that key's id and tenant
        self.producer, self.tenant = producer, tenant
        self._sleep = sleep

    def _get(self, client: httpx.Client, params: dict[str, Any]) -> tuple[Any, jsonkeys.Lenient]:
        c = self.config
        last: str = ""
        for attempt in range(c.max_retries + 1):
            if attempt:
                self._sleep(c.backoff_s * 2 ** (attempt - 1))
            check_url(c.name, c.url, c.allow_private_network)  # before every request
            try:
                with client.stream("GET", c.url, params=params) as resp:
                    self._check_peer(resp)  # while the connection is open, before the body
                    body = self._read(resp)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.is_redirect:
                raise UnsafeSource(
                    f"Connector {c.name!r}: {lineage.redact_url(c.url)} answered HTTP "
                    f"{resp.status_code}, a redirect to "
                    f"{lineage.redact_url(resp.headers.get('location', '?'))}; redirects are not "
                    "followed. Configure the final URL."
                )
            if resp.status_code >= 500 or resp.status_code == 429:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                # Configured parameters may be API keys: the message names them, not their values.
                shown = {k: "***" if k in c.params else v for k, v in params.items()}
                raise ConnectorFailed(
                    f"Connector {c.name!r}: {c.url} answered HTTP {resp.status_code} for "
                    f"{shown}: {body[:200].decode('utf-8', 'replace')}. Fix the URL, parameters "
                    "or credentials."
                )
            return self._page(body)
        raise Retryable(
            f"Connector {c.name!r}: {c.url} failed {c.max_retries + 1} times (last: {last}); "
            "the position is kept, run the connector again to resume."
        )

    def _page(self, body: bytes) -> tuple[Any, jsonkeys.Lenient]:
        """The page as JSON, an object with a repeated member name marked (``core.jsonkeys``):
        a record holding one is quarantined, the envelope holding one fails the run."""
        c = self.config
        reader = jsonkeys.Lenient()
        try:
            page = reader.loads(body, parse_float=Decimal)
        except RecursionError:
            raise ConnectorFailed(
                f"Connector {c.name!r}: {lineage.redact_url(c.url)} answered JSON nested too "
                "deeply to read."
            ) from None
        except ValueError as exc:
            raise ConnectorFailed(
                f"Connector {c.name!r}: {lineage.redact_url(c.url)} did not answer JSON ({exc})."
            ) from exc
        return page, reader

    def _read(self, resp: httpx.Response) -> bytes:
        """The decoded body, refused as soon as it passes ``max_response_bytes``."""
        limit = self.config.max_response_bytes
        pieces: list[bytes] = []
        size = 0
        for piece in self._decoded(resp):
            size += len(piece)
            if size > limit:
                raise ConnectorFailed(
                    f"Connector {self.config.name!r}: {lineage.redact_url(self.config.url)} "
                    f"answered more than {limit} bytes (max_response_bytes, counted after "
                    "decompression); ask for smaller pages or raise the limit."
                )
            pieces.append(piece)
        return b"".join(pieces)

    def _decoded(self, resp: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives, its ``Content-Encoding`` undone in bounded steps."""
        pieces: Iterable[bytes] = resp.iter_raw()
        header = resp.headers.get("content-encoding", "")
        for coding in [c.strip().lower() for c in header.split(",") if c.strip()]:
            if coding != "identity" and coding not in _WBITS:
                raise ConnectorFailed(
                    f"Connector {self.config.name!r}: {lineage.redact_url(self.config.url)} "
                    f"answered with Content-Encoding {coding!r}, which the connector does not "
                    f"decode (it asks for {ACCEPT_ENCODING}); configure the source to answer "
                    "gzip, deflate or plain."
                )
            pieces = decoded(pieces, coding)  # the last coding applied is undone first
        try:
            yield from pieces
        except zlib.error as exc:
            raise ConnectorFailed(
                f"Connector {self.config.name!r}: {lineage.redact_url(self.config.url)} "
                f"answered a body that does not decode as its Content-Encoding {header!r} "
                f"({exc})."
            ) from exc

    def _check_peer(self, resp: httpx.Response) -> None:
        """The address the connection reached passes the rule too (DNS rebinding)."""
        stream = resp.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if not peer:
            raise UnsafeSource(
                f"Connector {self.config.name!r}: cannot tell which address "
                f"{lineage.redact_url(self.config.url)} connected to, so it cannot be checked."
            )
        ip = ipaddress.ip_address(str(peer[0]).split("%")[0])
        try:
            check_address(self.config.name, str(peer[0]), ip, self.config.allow_private_network)
        except UnsafeSource as exc:
            url = lineage.redact_url(self.config.url)
            raise UnsafeSource(
                f"Connector {self.config.name!r}: {url} connected to {ip}, which the check "
                f"before it did not resolve to (DNS rebinding?): {exc}"
            ) from None

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
        headers = {"Accept-Encoding": ACCEPT_ENCODING, **c.headers}
        with httpx.Client(timeout=c.timeout_s, headers=headers) as client:
            while c.max_pages is None or pages < c.max_pages:
                params: dict[str, Any] = dict(c.params)
                if c.pagination == "page":
                    params[c.page_param] = pos["page"]
                elif pos.get("cursor") is not None:
                    params[c.cursor_param] = pos["cursor"]
                body, reader = self._get(client, params)
                items = _dig(body, c.records_path) if c.records_path else body
                outside = _marked_outside(body, items) if reader.found else None
                if outside is not None:
                    raise ConnectorFailed(
                        f"Connector {c.name!r}: {lineage.redact_url(c.url)} answered a page "
                        f"that is not acceptable JSON outside its records ({outside.problem()}); "
                        f"nothing of it was ingested ({outside.code})."
                    )
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
                    repeated = jsonkeys.marked_in(item) if reader.found else None
                    if repeated is not None:
                        records.append(
                            RawRecord(
                                jsonkeys.dumps_kept(item).encode(),
                                error=f"The API returned a record that is not acceptable "
                                f"JSON: {repeated.problem()}.",
                                error_code=repeated.code,
                                position=pos,
                            )
                        )
                        continue
                    original = jsonkeys.dumps_kept(item).encode()  # numbers stay numbers
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
                        producer=self.producer,
                        tenant=self.tenant,
                        position=pos if (end and c.pagination == "page") else nxt,
                        consumed=consumed,
                        done=end and c.pagination == "cursor",
                    )
                )
                pages += 1
                if end:
                    break
                pos = nxt
