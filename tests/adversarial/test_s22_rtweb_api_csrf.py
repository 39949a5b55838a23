"""A web page on another origin cannot make a browser change state through the API (s22, high).

The API authenticates by HTTP Basic, and a 401 answers ``WWW-Authenticate: Basic``: a browser
that opened an API path (``hub serve`` prints "API docs {url}/docs (log in with the admin key)")
keeps the key in its HTTP authentication cache and sends it with later requests to that origin,
including a form that another site's page submits. The API reads any body as JSON whatever its
``Content-Type``, so ``<form method=post enctype=text/plain>`` with one input named
``{"name":"x","partitions":1,"pad":"`` and the value ``"}`` posts valid JSON: the victim's key
created topics, published records, approved policy changes and enrolments (a second person's
approval taken from them), revoked keys. The console's gate refused such requests (Origin and a
CSRF token); the API checked neither.

Now a state-changing API request (anything but GET, HEAD, OPTIONS) that a browser marks as coming
from another site (``Sec-Fetch-Site: cross-site`` / ``same-site``) or whose ``Origin`` is not this
host (``null`` included) is refused 403 ``csrf`` before authentication; clients that send neither
header (curl, SDKs, Kafka Connect, Confluent serializers) and same-origin pages are unchanged.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial._api import Api, basic, issue_key

FORGED = {"content-type": "text/plain"}  # what enctype=text/plain sends
QUOTE = {
    "instrument": "AAPL",
    "venue": "XNAS",
    "bid": "1",
    "ask": "2",
    "bid_size": "1",
    "ask_size": "1",
    "currency": "USD",
    "quoted_at": "2026-12-05T21:00:00Z",
}
# the shape a text/plain form gives: <input name='{"events":[...],"pad":"' value='"}'>
BODY = json.dumps({"events": [QUOTE], "pad": "="}).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},  # a sandboxed frame or a data: page
        {"origin": "http://testserver.evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://other.testserver"},
    ],
    ids=["other-origin", "null-origin", "lookalike-origin", "fetch-cross-site", "same-site"],
)
def test_a_forged_publish_is_refused_and_stores_nothing(api: Api, headers: dict[str, str]) -> None:
    """Records in the victim's name (producer, source, tenant): accepted and ledger-covered."""
    token = basic(issue_key(api.hub, "publisher", "pat"))
    before = api.hub.log.end_offsets("quotes")
    r = api.client.post("/v1/ingest/quotes", content=BODY, headers={**token, **FORGED, **headers})
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "csrf", r.json()
    assert api.hub.log.end_offsets("quotes") == before
    # the same body from a client that is not a browser is accepted: the origin is refused
    r = api.client.post("/v1/ingest/quotes", content=BODY, headers={**token, **FORGED})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


@pytest.mark.parametrize(
    "path", ["/v1/retention/run", "/v1/projections/positions/rebuild", "/v1/ledger/verify"]
)
def test_a_forged_bodiless_action_is_refused(api: Api, path: str) -> None:
    """Routes without a body need no forged JSON at all: any form posts them."""
    headers = {**api.admin, "content-type": "application/x-www-form-urlencoded"}
    r = api.client.post(path, content=b"", headers={**headers, "origin": "https://evil.example"})
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "csrf", r.json()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, SDKs, serializers: no Origin, no Sec-Fetch-Site
        {"origin": "http://testserver"},  # a page of this hub (the docs page)
        {"sec-fetch-site": "same-origin", "origin": "http://testserver"},
        {"sec-fetch-site": "none"},  # typed by the user
    ],
    ids=["no-browser", "same-origin", "fetch-same-origin", "fetch-none"],
)
def test_clients_and_same_origin_pages_still_post(api: Api, headers: dict[str, str]) -> None:
    name = "t" + str(abs(hash(json.dumps(headers))) % 10_000)
    r = api.client.post(
        "/v1/topics",
        json={"name": name, "partitions": 1},
        headers={**api.admin, **headers},
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("mode", "dest"),
    [("no-cors", "image"), ("no-cors", "script"), ("cors", "empty"), ("navigate", "iframe")],
)
def test_a_cross_site_subresource_read_is_refused_and_not_recorded(
    api: Api, mode: str, dest: str
) -> None:
    """``<img src=.../v1/topics/payments/events>`` on another site's page: the browser sends the
    Basic credentials it holds, so the victim's key read the records, the ledger recorded the
    read as theirs (an audit trail of reads the person never made) and their query limits were
    spent. Refused before authentication: no decision is recorded."""
    before = api.hub.log.end_offsets("hub.decisions")
    headers = {"sec-fetch-site": "cross-site", "sec-fetch-mode": mode, "sec-fetch-dest": dest}
    r = api.client.get("/v1/topics/payments/events", headers={**api.admin, **headers})
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "csrf", r.json()
    assert api.hub.log.end_offsets("hub.decisions") == before


@pytest.mark.parametrize(
    "headers",
    [
        {
            "sec-fetch-site": "cross-site",
            "sec-fetch-mode": "navigate",
            "sec-fetch-dest": "document",
        },
        {"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
        {"sec-fetch-site": "none", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
        {"origin": "http://evil.example"},  # a GET with an Origin and no fetch metadata
    ],
    ids=["link-followed", "docs-page-fetch", "typed", "origin-only"],
)
def test_reads_a_person_opens_are_not_refused(api: Api, headers: dict[str, str]) -> None:
    """A link followed from another site (a top-level page the person sees), the docs page's
    own calls and a typed address keep working."""
    r = api.client.get("/v1/topics", headers={**api.admin, **headers})
    assert r.status_code == 200, r.text


def test_a_cross_site_schema_by_id_read_is_refused_on_the_fast_path_too(api: Api) -> None:
    """The registry's schema-by-id reads are answered by a layer in front of the API's
    authentication (hub.api.registry_fast): a cross-site ``<img src=.../schemas/ids/1>`` took
    that layer past the check above, and the victim's read was decided and recorded. Now it
    falls through to the full stack, which refuses it before any key is checked."""
    r = api.client.get("/schemas/ids/1", headers=api.admin)
    assert r.status_code == 200, r.text  # the read itself is served
    before = api.hub.log.end_offsets("hub.decisions")
    headers = {
        "sec-fetch-site": "cross-site",
        "sec-fetch-mode": "no-cors",
        "sec-fetch-dest": "image",
    }
    for path in ("/schemas/ids/1", "/schemas/ids/1/schema"):
        r = api.client.get(path, headers={**api.admin, **headers})
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == "csrf", r.json()
    assert api.hub.log.end_offsets("hub.decisions") == before
