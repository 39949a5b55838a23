"""An investigation case ends (session 16 review, attacker view).

A case unmasks PII for the investigators it names, who need not hold ``pii.read`` (an analyst,
say). ``expires_in`` had no bound: acme's compliance officer opened a case for ``9999w`` naming
an analyst, who read unmasked personal data until 2218 with no second decision; ``15250w`` got
a serialization error about ``expires_at_ns`` instead of a word about the duration."""

from __future__ import annotations

import pytest

from tests.adversarial._api import Api, basic


@pytest.mark.parametrize("expires_in", ["9999w", "15250w", "91d", "2161h"])
def test_a_case_longer_than_90_days_is_refused_with_the_bound(
    shared_api: Api, expires_in: str
) -> None:
    ann = basic(
        shared_api.hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    )
    r = shared_api.client.post(
        "/v1/cases",
        json={"reason": "SAR", "investigators": ["aya"], "expires_in": expires_in},
        headers=ann,
    )
    assert r.status_code == 422 and r.json()["reason"] == "invalid_duration", r.text
    assert "90d" in r.json()["message"]


@pytest.mark.parametrize("expires_in", ["90d", "12w", "1s"])
def test_a_case_within_the_bound_opens(shared_api: Api, expires_in: str) -> None:
    ann = basic(
        shared_api.hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    )
    r = shared_api.client.post(
        "/v1/cases",
        json={"reason": "SAR", "investigators": ["aya"], "expires_in": expires_in},
        headers=ann,
    )
    assert r.status_code == 201, r.text
