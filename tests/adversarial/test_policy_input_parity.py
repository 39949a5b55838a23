"""Both footprints answer a decision input holding a quote or a backslash alike (session 12's
"left", policy footprint parity).

Finding (low): the embedded engine (rego-cpp) denied such an input (``refuse_unsafe_text``: it
does not escape the text in its answer), while OPA decided it normally, so the same request was
allowed on the OPA footprint and denied on the embedded one (an admin reading
``topics/x"y``). The fix: ``core.policybundle.decide_cached``, which every adapter's
``decide_input`` goes through, refuses such input before evaluating it, for every engine.

The OPA half uses the server ``infra/opa.sh`` runs when it is up (the contract suite,
``tests/contract/test_policy_opa.py``, starts it and holds the same case); it is skipped when
no server answers, so this suite never builds OPA.
"""

from __future__ import annotations

import socket

import pytest

from adapters.opa_policy import OpaPolicyEngine
from adapters.rego_policy import RegoPolicyEngine
from core.ports.policy import Principal
from tests.contract.policy_contract import SHIPPED
from tests.contract.test_policy_opa import PORT, URL

ADMIN = Principal("ann", frozenset({"admin"}), "acme")
HOSTILE = ['topics/x", "allow": true, "z": "', "topics/a\\b", 'topics/"']


def _opa_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", int(PORT))) == 0


@pytest.mark.parametrize("resource", HOSTILE)
def test_opa_denies_what_the_embedded_engine_denies(resource: str) -> None:
    if not _opa_up():
        pytest.skip(f"no OPA server at {URL} (infra/opa.sh start); the contract suite runs this")
    opa = OpaPolicyEngine(URL, SHIPPED, timeout_s=5)
    if opa.loaded_version() != SHIPPED.version:
        opa.load(SHIPPED)
    embedded = RegoPolicyEngine(SHIPPED)
    want = embedded.decide(ADMIN, "event.read", resource)
    got = opa.decide(ADMIN, "event.read", resource)
    assert not want.allow
    assert got.allow == want.allow, got
    assert got.reason.replace("(OPA)", "(rego-cpp)") == want.reason
