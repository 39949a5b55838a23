"""s21 red team of s20 (trust): a policy's regex cannot be made to backtrack by a caller.

s20 refused backtracking patterns in quality rules (Python's ``re``). Policies have regexes too,
and rego-cpp's engine backtracks as well: ``regex.match("^(a+)+$", x)`` on 25 ``a`` and a
``!`` takes 1.4 s, 28 take 5.5 s, and every function with a pattern does the same
(``regex.find_n``, ``regex.split``, ``regex.replace``, ``regex.template_match``, an import
alias ``import regex as r``). A bundle matching the caller's resource name (``input.resource``:
a topic or subject the caller names) against such a pattern lets any caller stall a decision
thread for as long as it likes, and the s20 timing bound cannot see it (its cases are not
hostile). Now a policy module's regex functions take a literal pattern that passes the rules'
backtracking check, and the other ways to reach them are refused.
"""

from __future__ import annotations

import pytest

from core.policybundle import PolicyBundle, PolicyError

BAD = [
    'regex.match("^(topics/[a-z]+/?)+$", input.resource)',
    'regex.find_n("(a+)+$", input.resource, -1)',
    'regex.split("(x+x+)+y", input.resource)',
    'regex.replace(input.resource, "^(a|ab)*c$", "")',
    "regex.match(data.hub.pattern, input.resource)",
    'regex.match(concat("", ["(a+)", "+$"]), input.resource)',
    'regex.template_match("{(a+)+}", input.resource, "{", "}")',
    'regex . match ( "^\\\\s*[\\\\w ]+\\\\s*$", input.resource)',
    'r.match("^(a+)+$", input.resource)',  # with import regex as r
    'regex["match"]("^(a+)+$", input.resource)',
    're_match("^(a+)+$", input.resource)',
    'regex.match("^(?<x>a+)+$", input.resource)',  # a pattern Python cannot check: refused
]
GOOD = [
    'regex.match("^topics/[a-z0-9._-]{1,200}$", input.resource)',
    'regex.replace(concat("/", ["a", input.resource]), "[^a-z]", "")',
    'regex.is_valid("(a+)+")',
    'glob.match("topics/*", ["/"], input.resource)',
]


def _with(rule: str) -> dict[str, str]:
    files = dict(PolicyBundle.from_dir().files)
    text = files["hub/authz.rego"]
    if rule.startswith("r."):
        text = text.replace("import rego.v1\n", "import rego.v1\nimport regex as r\n", 1)
    files["hub/authz.rego"] = text + f"\nprobe if {{\n\t{rule}\n}}\n"
    return files


@pytest.mark.parametrize("rule", BAD)
def test_a_pattern_a_caller_can_make_backtrack_is_refused(rule: str) -> None:
    with pytest.raises(PolicyError) as err:  # before: loaded
        PolicyBundle.from_files(_with(rule))
    assert err.value.code == "policy_unsafe_regex", str(err.value)


@pytest.mark.parametrize("rule", GOOD)
def test_bounded_literal_patterns_pass(rule: str) -> None:
    PolicyBundle.from_files(_with(rule))
