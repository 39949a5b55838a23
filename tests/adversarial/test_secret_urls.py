"""A password in a configured URL MUST NOT reach a log line.

Settings hold URLs with user information (``HUB_ALERT_WEBHOOK_URL=https://alerts:TOKEN@...``,
``HUB_OPA_URL``, ``HUB_VAULT_URL``, the PostgreSQL URLs). The alert webhook logged its URL on each
failed delivery, and ``GET /ready`` (answered without a key) names the OPA or Vault URL in a
failed check's reason; ``hub.logs.redact``, which both pass through, let the password by."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.console.alerts import Webhook, deliver
from hub.logs import EcsFormatter, PlainFormatter
from hub.observability import readiness
from hub.settings import load_settings
from tests.adversarial._api import serve_local

TOKEN = "S3cret-webhook-T0ken"


class Refuses(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(400)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_a_webhook_password_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    for port in serve_local(Refuses):
        hook = Webhook(f"http://alerts:{TOKEN}@127.0.0.1:{port}/hook", b"k", attempts=1)
        with caplog.at_level(logging.WARNING, logger="hub.console.alerts"):
            assert not deliver(hook, {"event_id": "e1"})
    assert caplog.records, "the refused delivery is logged"
    for formatter in (EcsFormatter(), PlainFormatter()):
        lines = [formatter.format(r) for r in caplog.records]
        assert not any(TOKEN in line for line in lines), lines
        assert any("alerts:[redacted]@127.0.0.1" in line for line in lines), lines


def test_the_readiness_reason_names_no_url_password(tmp_path: Path) -> None:
    """``readiness`` of a hub whose OPA URL carries a password and does not answer (the
    settings are read when the check runs: a copy names OPA, the hub itself is the real one)."""
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        url = f"http://hub:{TOKEN}@127.0.0.1:9/"
        h.settings = h.settings.model_copy(update={"policy_engine": "opa", "opa_url": url})
        report = readiness(h)
    finally:
        h.close()
    policy = next(c for c in report["components"] if c["component"] == "policy")
    assert not policy["ok"]
    assert TOKEN not in policy["reason"], policy
    assert "hub:[redacted]@127.0.0.1:9" in policy["reason"], policy


@pytest.mark.parametrize(
    "url",
    [
        "hub:S3cretPw@pg.internal/views",  # no scheme: SQLAlchemy cannot parse it
        "postgresql+psycopg://hub:S3cretPw@pg.internal:5o32/views",  # a port that is no number
        "postgresql+psycopg://hub:S3cr tPw@pg.internal:5o32/views",  # a space in the password
    ],
)
def test_an_unparsable_views_url_is_named_without_its_password(url: str, tmp_path: Path) -> None:
    """``hub projections run --engine flink`` printed HUB_VIEWS_SQL_URL whole when SQLAlchemy
    could not parse it (and let a ValueError through for a bad port); the view store's own
    error named the URL whole too."""
    from types import SimpleNamespace

    from adapters.sqlalchemy_views import SqlAlchemyViewStore
    from core.errors import ConfigError
    from hub.flink import flink_projections

    settings = load_settings(
        environ={}, data_dir=tmp_path / "d", event_log="kafka", views_sql_url=url
    )
    with pytest.raises(ConfigError) as info:
        flink_projections(SimpleNamespace(settings=settings), "t")
    assert "HUB_VIEWS_SQL_URL" in info.value.message and "pg.internal" in info.value.message
    assert "S3cr" not in info.value.message and "tPw" not in info.value.message
    if "://" in url:
        with pytest.raises(ConfigError) as info:
            SqlAlchemyViewStore(url)
        assert "pg.internal" in info.value.message and "S3cr" not in info.value.message


def test_a_password_holding_at_or_slash_is_redacted_whole_in_logs() -> None:
    from hub.logs import redact

    for password in ("Se@cret", "Se/cret", "S@e/c@ret"):
        line = f"connect failed: postgresql://hub:{password}@pg.internal:5432/views refused"
        shown = redact(line)
        assert "cret" not in shown and "pg.internal:5432/views refused" in shown, shown
