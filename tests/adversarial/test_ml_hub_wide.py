"""A model's champion decides for every tenant (session 16 review, attacker view).

Models have no tenant: ``payment_risk``'s champion scores every tenant's payments. Promoting
or approving a champion (and a retrain, which makes a challenger) was decided in the caller's
own tenant, so acme's ml_engineer proposed a version and acme's compliance officer approved it
(two persons: the two-person rule held) and acme's model then decided globex's payments. They
are decided as the hub's own tenant's now: another tenant's key needs ``tenant.all``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.ml_setup import ml_of
from hub.settings import load_settings
from tests.adversarial._api import basic, register_payment_model


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """payment_risk v1 registered."""
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        register_payment_model(h, 0)
        yield h
    finally:
        h.close()


def _cli(hub: Hub, token: str, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["--data-dir", str(hub.settings.data_dir), "--key", token, *args])
    return r.exit_code, r.output + str(r.stderr)


def test_a_tenants_engineer_and_officer_cannot_make_a_champion(hub: Hub) -> None:
    mal = hub.keys.create(["ml_engineer"], principal="mal", tenant="acme").token
    ann = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    own = hub.keys.create(["ml_engineer"], principal="mel").token
    olga = hub.keys.create(["compliance_officer"], principal="olga").token
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]  # the CLI opens the folder itself
    code, out = _cli(hub, mal, "ml", "promote", "payment_risk", "1", "--reason", "x")
    assert code == 1 and "tenant isolation" in out, out
    code, out = _cli(
        hub, mal, "ml", "promote", "payment_risk", "1", "--challenger", "--reason", "x"
    )
    assert code == 1 and "tenant isolation" in out, out
    # the hub's own engineer proposes; acme's officer may not approve it, the hub's may
    code, out = _cli(hub, own, "ml", "promote", "payment_risk", "1", "--reason", "x")
    assert code == 0, out
    change = out.split('"change_id": "')[1].split('"')[0]
    code, out = _cli(hub, ann, "ml", "approve", change, "--reason", "x")
    assert code == 1 and "tenant isolation" in out, out
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=hub.settings.data_dir)
    )
    try:
        assert ml_of(h).models.champion_of("payment_risk") is None
    finally:
        h.close()
    code, out = _cli(hub, olga, "ml", "approve", change, "--reason", "x")
    assert code == 0, out


def test_a_tenants_retrain_over_http_is_refused(hub: Hub) -> None:
    mal = basic(hub.keys.create(["ml_engineer"], principal="mal", tenant="acme").token)
    with TestClient(create_app(hub), raise_server_exceptions=False) as client:
        r = client.post("/v1/models/payment_risk/retrain", json={"share": 0.1}, headers=mal)
    assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
