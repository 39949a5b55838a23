"""s21 red team of s20 (trust): a policy bundle cannot forge its own timing answers.

The s20 bound times each policy case in a child process that writes ``<index> <cpu ns>`` per
case on its stdout. Rego's ``print()`` writes to the same stdout: a proposed bundle whose
decision printed ``0 1``, ``1 1`` ... before doing heavy work was read as "every case took 1 ns"
and accepted, the child killed before its first real answer. Once approved, every decision
would be that slow (the bound's whole point). Now the answers go to a descriptor of their own
and the bundle's prints land on stderr.
"""

from __future__ import annotations

import pytest

from adapters.rego_deadline import BoundedEvaluation
from core.policybundle import PolicyBundle, PolicyError
from tests.adversarial.test_s20_rego_time import HEAD, SLOW_CASE


def _forging_bundle(cases: int) -> PolicyBundle:
    """The default bundle whose decision first prints a fast answer for every case, then does
    about a second of work for the input of ``SLOW_CASE``."""
    files = dict(PolicyBundle.from_dir().files)
    text = files["hub/authz.rego"]
    assert HEAD in text
    heavy = (
        "decision := d if {\n\tforge\n\theavy_work == -1\n\td := fast\n}"
        " else := d if {\n\td := fast\n}"
    )
    prints = "".join(f'\tprint("{i} 1")\n' for i in range(cases))
    files["hub/authz.rego"] = text.replace(HEAD, heavy) + (
        "\ndefault heavy_work := 0\n\nheavy_work := n if {\n"
        '\tinput.action == "nuke.everything"\n'
        "\tn := count([x | some x in numbers.range(1, 3000000)])\n}\n"
        f"\nforge if {{\n{prints}}}\n"
    )
    return PolicyBundle.from_files(files)


def test_a_bundle_printing_fast_answers_is_still_timed() -> None:
    cases = [(SLOW_CASE, {"action": "nuke.everything"}), ("empty", {}), ("null", None)]
    with pytest.raises(PolicyError) as err:  # before: accepted in 0.2 s
        BoundedEvaluation(20)(_forging_bundle(len(cases)), cases)
    message = str(err.value)
    # refused by either bound of the child (3,000,000 numbers may pass the memory cap first)
    bounds = ("HUB_POLICY_EVAL_BOUND_MS", "HUB_POLICY_EVAL_MEMORY_MB")
    assert repr(SLOW_CASE) in message and any(b in message for b in bounds), message


def test_a_bundle_that_prints_but_is_fast_passes() -> None:
    files = dict(PolicyBundle.from_dir().files)
    files["hub/authz.rego"] = files["hub/authz.rego"].replace(
        HEAD, 'decision := d if {\n\tprint("0 1")\n\tprint("ready")\n\td := fast\n}'
    )
    BoundedEvaluation(250)(PolicyBundle.from_files(files), [("empty", {}), ("null", None)])
