"""One tenant's key and ``POST /v1/ledger/verify``: the whole hub's ledger sync (session 20).

A verification holds the ledger's sync lock while it runs (``Ledger.syncs_paused``), and every
ingest route syncs before it answers (``Ledger.cover``): while a verification runs, no tenant's
publish is acknowledged. The route ran the FULL check every time (every leaf re-derived from
its log record: about 26,000 entries a second here, so a million-record ledger holds the lock
for ~40 s), for any tenant's compliance officer, as often and as many at once as it liked. One
officer looping it stalled every tenant's acknowledgements.

Now the route verifies incrementally from the last verified checkpoint (the signed note ``hub
ledger verify`` keeps; the periodic full check when it falls due), saves the new one, asks a
full check (``?full=true``) only of a reader of every tenant, and runs one verification at a
time (503 ``verify_running`` with ``Retry-After`` to the next).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from tests.adversarial._api import QUOTE, Api, basic, issue_key, quiet_settings, serve_hub


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from serve_hub(bootstrap(quiet_settings(tmp_path / "data")))


def _officer(api: Api) -> dict[str, str]:
    return basic(issue_key(api.hub, "compliance_officer", "co-acme", "acme"))


def _publish(api: Api, n: int) -> None:
    """``n`` quotes of acme's publisher (accepted: ledger entries), then a checkpoint."""
    token = issue_key(api.hub, "publisher", f"pub-{n}", "acme")
    r = api.client.post(
        "/v1/ingest/quotes", json={"events": [{"value": QUOTE}] * n}, headers=basic(token)
    )
    assert r.status_code == 200 and r.json()["accepted"] == n, r.text
    api.hub.ledger.sync(force_checkpoint=True)


def test_a_tenant_officer_verifies_from_the_last_verified_checkpoint(api: Api) -> None:
    officer = _officer(api)
    _publish(api, 20)
    # the first (full) verification is a hub-wide key's (test_s20_lows: a tenant's is refused)
    first = api.client.post("/v1/ledger/verify", headers=api.admin)
    assert first.status_code == 200 and first.json()["ok"], first.text
    _publish(api, 5)
    again = api.client.post("/v1/ledger/verify", headers=officer)
    assert again.status_code == 200 and again.json()["ok"], again.text
    # incremental: from the checkpoint the first run verified, not every leaf again
    assert again.json()["incremental_from"] is not None, again.text
    assert again.json()["leaves"] < first.json()["leaves"], (first.text, again.text)


def test_only_a_reader_of_every_tenant_asks_for_a_full_verification(api: Api) -> None:
    _publish(api, 3)
    r = api.client.post("/v1/ledger/verify?full=true", headers=_officer(api))
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "full_verify_hub_wide", r.text
    full = api.client.post("/v1/ledger/verify?full=true", headers=api.admin)
    assert full.status_code == 200 and full.json()["ok"], full.text
    assert full.json()["incremental_from"] is None, full.text


def test_one_verification_at_a_time(api: Api) -> None:
    _publish(api, 3)
    gate = api.client.app.state.ledger_verify_gate  # type: ignore[attr-defined]
    with gate:  # a verification running (the route's own gate, held here)
        r = api.client.post("/v1/ledger/verify", headers=_officer(api))
    assert r.status_code == 503, r.text
    assert r.json()["reason"] == "verify_running", r.text
    assert r.headers["retry-after"] == "1"
    after = api.client.post("/v1/ledger/verify", headers=api.admin)
    assert after.status_code == 200 and after.json()["ok"], after.text
