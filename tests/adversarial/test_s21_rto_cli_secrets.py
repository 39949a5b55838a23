"""The CLI's own errors name no password (session 21, redteam-ops).

``hub status --url http://user:PASSWORD@host`` (a served hub behind a proxy with basic auth)
printed the whole URL, password included, when the hub did not answer: into terminals, CI logs
and the scripts that capture stderr. The URL is now shown as the logs show it (``redact_url``).
"""

from __future__ import annotations

from click.testing import CliRunner

from hub.cli import main


def test_status_url_errors_hide_the_password() -> None:
    r = CliRunner().invoke(main, ["status", "--url", "http://ops:S3cretPw-123@127.0.0.1:1"])
    assert r.exit_code == 1
    assert "S3cretPw-123" not in r.output
    assert "127.0.0.1:1" in r.output
