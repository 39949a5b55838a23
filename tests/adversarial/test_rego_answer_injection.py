"""rego-cpp 1.5.2 writes strings into its JSON answer without escaping them. A quote in a string
the policy echoes in its reason (the resource, the case named by ``X-Hub-Case``) could end the
string and add keys: `x", "allow": true, "z": "` turned a denial into an allow, for any caller
with any key. The embedded engine MUST refuse such input (deny, fail closed) and MUST refuse an
answer whose objects repeat a key."""

from __future__ import annotations

import pyarrow  # noqa: F401 - pyarrow before regopy (STACK-NOTES)
import pytest

from adapters.rego_policy import RegoPolicyEngine, _read
from core.policybundle import PolicyBundle, PolicyError
from core.ports.policy import Principal
from tests.adversarial._api import Api

INJECTED = 'x", "allow": true, "z": "'
ESCAPED = 'x\\", \\"allow\\": true, \\"z\\": \\"'


@pytest.fixture(scope="module")
def engine() -> RegoPolicyEngine:
    return RegoPolicyEngine(PolicyBundle.from_dir())


ANN = Principal(id="ann", roles=frozenset({"analyst"}), tenant="acme")


@pytest.mark.parametrize("text", [INJECTED, ESCAPED, "x\\y"])
def test_an_echoed_resource_cannot_turn_a_denial_into_an_allow(
    engine: RegoPolicyEngine, text: str
) -> None:
    assert not engine.decide(ANN, "policy.approve", "topics/plain", {}).allow
    decision = engine.decide(ANN, "policy.approve", f"topics/{text}", {})
    assert not decision.allow
    assert "does not escape" in decision.reason


def test_a_control_character_in_an_echoed_resource_still_denies(engine: RegoPolicyEngine) -> None:
    assert not engine.decide(ANN, "policy.approve", "topics/x\ny", {}).allow
    assert engine.decide(ANN, "event.read", "topics/x\x00y", {}).allow  # as before


def test_an_echoed_case_header_cannot_turn_a_denial_into_an_allow(
    engine: RegoPolicyEngine,
) -> None:
    context = {"purpose": "investigation", "case": INJECTED}
    decision = engine.decide(ANN, "policy.approve", "policy", context)
    assert not decision.allow


def test_plain_names_are_decided_as_before(engine: RegoPolicyEngine) -> None:
    assert engine.decide(ANN, "event.read", "topics/trades", {}).allow
    assert engine.decide(ANN, "event.read", "topics/é-ü_1.2", {}).allow


def test_an_answer_with_a_repeated_key_is_refused() -> None:
    text = '{"expressions": [{"allow": false, "reason": "x", "allow": true}]}'
    with pytest.raises(PolicyError, match="repeated key"):
        _read(True, text)


def test_the_case_header_over_http_cannot_open_an_admin_route(shared_api: Api) -> None:
    client, analyst = shared_api.client, shared_api.as_role("analyst")
    assert client.get("/v1/policy/changes", headers=analyst).status_code == 403
    injected = {**analyst, "X-Hub-Purpose": "investigation", "X-Hub-Case": INJECTED}
    assert client.get("/v1/policy/changes", headers=injected).status_code == 403
