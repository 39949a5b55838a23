"""s21 red team of s20 (trust): adjacent runs that share characters are refused in rule regexes.

The s20 ReDoS check refuses repeats nested in repeats, but said of adjacent runs ("``.*x.*y``,
polynomial") that value sizes bound them. Three or more adjacent unbounded runs that can take
the same characters make a non-matching value cost n^3 (or worse) steps in Python's ``re``,
which holds the interpreter: ``^\\s*[\\w ]+\\s*$`` (a trimmed name, an honest rule) takes 0.8 s
on 1,000 spaces and a "!", 6.6 s on 2,000, about a quarter of an hour on 10,000 (one
publisher's record stalls every request of the hub); the common e-mail shape ``^.+@.+\\..+$``
1.3 s on 2,000 characters. Now a chain of three such runs that no literal separates is refused
when the rule set is set (``invalid_rules``), naming the rule and the fix.
"""

from __future__ import annotations

import pytest

from domain.quality import backtracking_problem
from ingest.rules import shipped_rule_sets
from tests.adversarial._api import Api

HOSTILE = [
    r"^\s*[\w ]+\s*$",
    r"^.+@.+\..+$",
    r"[a-z]*[a-z]*[a-z]*!",
    r"^(\s*)([\w ]+)(\s*)$",
    r"^\d*0?\d+\d*$",
    r"^.*a.*b.*c$",
]
FINE = [
    r"^\d+-\d+-\d+$",
    r"^[^@]+@[^@]+\.[^.]+$",
    r"^\s*\w+\s*$",
    r"^[A-Z]+ [A-Z]+ [A-Z]+$",
    r"^.*x.*y$",
    r"^\+?[0-9 ]{1,20}[0-9]+$",
    r"^[a-z]{1,30}[a-z0-9]{0,30}[0-9]{0,4}$",
    r"^(\d+\.){3}\d+$",
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_three_adjacent_runs_sharing_characters_are_refused(pattern: str) -> None:
    assert backtracking_problem(pattern) == "three or more adjacent runs may take the same text"


@pytest.mark.parametrize("pattern", FINE)
def test_runs_fenced_apart_or_bounded_pass(pattern: str) -> None:
    assert backtracking_problem(pattern) is None


def test_the_shipped_patterns_still_pass() -> None:
    patterns = [
        r.pattern for rs in shipped_rule_sets().values() for r in rs.rules if r.pattern is not None
    ]
    assert patterns and [p for p in patterns if backtracking_problem(p)] == []


def test_the_trimmed_name_rule_is_refused_on_put(api: Api) -> None:
    before = api.client.get("/v1/rules/trades-value", headers=api.admin).json()
    rule = {"id": "trimmed", "kind": "regex", "field": "instrument", "pattern": HOSTILE[0]}
    r = api.client.put("/v1/rules/trades-value", json={"rules": [rule]}, headers=api.admin)
    assert r.status_code == 422, r.text  # before: 200, and a 10,000-space value stalled the hub
    assert r.json()["reason"] == "invalid_rules" and "trimmed" in r.text, r.text
    assert api.client.get("/v1/rules/trades-value", headers=api.admin).json() == before
