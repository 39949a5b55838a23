"""An alert webhook's URL MUST NOT reach a log line whole: its path and query are credentials.

The usual receivers take their secret in the URL itself, not in user information: Slack
(``https://hooks.slack.com/services/T.../B.../SECRET``), Microsoft Teams, Discord
(``/api/webhooks/ID/TOKEN``), or a ``?token=`` query. Anyone holding such a URL posts into the
alert channel. ``hub.console.alerts.deliver`` logged ``hook.url`` on each failed attempt, and
``hub.logs.redact`` only removes the password of user information, so the whole secret reached
every log line (and the log pipeline: Filebeat, Elasticsearch and its readers). Session 17's
live-surface review.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from hub.console.alerts import Webhook, deliver
from hub.logs import EcsFormatter, PlainFormatter
from tests.adversarial._api import serve_local

PATH_SECRET = "XyZ0sEcReTpAtHtOkEn1234"
QUERY_SECRET = "QuErYsEcReT98765"


class Refuses(BaseHTTPRequestHandler):
    status = 400

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


class Busy(Refuses):
    status = 503


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    assert caplog.records, "the failed delivery is logged"
    return [f.format(r) for f in (EcsFormatter(), PlainFormatter()) for r in caplog.records]


@pytest.mark.parametrize("handler", [Refuses, Busy], ids=["refused", "retried"])
def test_a_webhook_url_path_and_query_are_not_logged(
    handler: type[BaseHTTPRequestHandler], caplog: pytest.LogCaptureFixture
) -> None:
    for port in serve_local(handler):
        url = f"http://127.0.0.1:{port}/services/T01/B02/{PATH_SECRET}?token={QUERY_SECRET}"
        hook = Webhook(url, b"k", attempts=2, backoff_s=0.0)
        with caplog.at_level(logging.WARNING, logger="hub.console.alerts"):
            assert not deliver(hook, {"event_id": "e1"})
        lines = _lines(caplog)
        assert not any(PATH_SECRET in line or QUERY_SECRET in line for line in lines), lines
        # the operator still learns which receiver failed (its origin) and why
        assert all(f"http://127.0.0.1:{port}" in line for line in lines), lines


def test_a_transport_error_does_not_name_the_url_either(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection failure: httpx's exception may carry the request (and so the URL)."""

    def post(url: str, **_: object) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url}", request=httpx.Request("POST", url))

    url = f"https://hooks.example.test/api/webhooks/42/{PATH_SECRET}"
    hook = Webhook(url, b"k", attempts=1)
    with caplog.at_level(logging.WARNING, logger="hub.console.alerts"):
        assert not deliver(hook, {"event_id": "e1"}, post=post)
    lines = _lines(caplog)
    assert not any(PATH_SECRET in line for line in lines), lines
    assert all("https://hooks.example.test" in line for line in lines), lines
