"""s21 red team of s20 (trust): a policy bundle cannot read the hub's environment.

rego-cpp implements ``opa.runtime()``: its ``env`` member is the whole environment of the
process evaluating the decision, the hub itself on the embedded footprint. The deployment
passes its secrets there (``HUB_VAULT_TOKEN`` in the compose files, ``HUB_MASTER_KEY`` when
set), and a denial's reason is shown to the caller (403 ``Access denied: <reason>``) and
recorded. So a bundle whose reason carried ``opa.runtime().env.HUB_VAULT_TOKEN`` (or hid it
behind ``import opa as o``, ``opa["runtime"]``, comments or line breaks) handed the key
store's token to any caller it denied; its policy cases pass, the s20 timing bound too. Now a
bundle that names ``opa`` as a reference or import is refused, by every path that loads one.
"""

from __future__ import annotations

import pytest

from core.policybundle import PolicyBundle, PolicyError
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial.test_s20_rego_time import HEAD

LEAKS = [
    "opa.runtime().env.HUB_VAULT_TOKEN",
    "opa . runtime ( ).env.HUB_VAULT_TOKEN",
    'opa["runtime"]().env.HUB_VAULT_TOKEN',
    "opa[`runtime`]().env.HUB_VAULT_TOKEN",
    "opa.#\n\truntime().env.HUB_VAULT_TOKEN",
    "o.runtime().env.HUB_VAULT_TOKEN",  # with import opa as o
    "r().env.HUB_VAULT_TOKEN",  # with import opa.runtime as r
]


def _leaking(bundle: PolicyBundle, leak: str) -> dict[str, str]:
    files = dict(bundle.files)
    text = files["hub/authz.rego"]
    assert HEAD in text
    imports = {"o.": "import opa as o\n", "r(": "import opa.runtime as r\n"}
    head = next((i for k, i in imports.items() if leak.startswith(k)), "")
    text = text.replace("import rego.v1\n", "import rego.v1\n" + head, 1)
    files["hub/authz.rego"] = text.replace(
        HEAD,
        'decision := d if {\n\tfast.allow == false\n\td := object.union(fast, {"reason": '
        f"{leak}}})\n}} else := d if {{\n\td := fast\n}}",
    )
    return files


@pytest.mark.parametrize("leak", LEAKS)
def test_a_bundle_reading_the_environment_is_refused(leak: str) -> None:
    files = _leaking(PolicyBundle.from_dir(), leak)
    with pytest.raises(PolicyError, match=r"opa\.runtime") as err:  # before: loaded
        PolicyBundle.from_files(files)
    assert err.value.code == "policy_host_builtin"


def test_a_proposal_reading_the_environment_is_refused(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_VAULT_TOKEN", "s.root-token-of-the-key-store")
    key = hub.keys.create(["admin"], owner="ada")
    admin: Principal = hub.keys.get(key.key_id).principal
    files = _leaking(hub.policy_changes.store.active_bundle(), LEAKS[0])
    before = hub.policy_changes.store.active_bundle().version
    with pytest.raises(PolicyError, match=r"opa\.runtime"):  # before: proposed
        hub.policy_changes.propose(admin, files, "better reasons")
    assert hub.policy_changes.store.active_bundle().version == before


def test_the_shipped_bundle_and_a_reason_naming_opa_pass() -> None:
    bundle = PolicyBundle.from_dir()
    files = dict(bundle.files)
    files["hub/authz.rego"] += '\n# evaluated by opa (or rego-cpp)\nnote := "run by opa"\n'
    PolicyBundle.from_files(files)
