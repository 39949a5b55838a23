"""A quality rule whose regex backtracks without bound is refused when it is set (s20).

Attack: with the right to change a subject's rules (an admin, or two people who do not read
regexes closely), set ``{kind: regex, pattern: "^(a+)+$"}``. Python's ``re`` backtracks: each
``a`` added doubles the match time of a value that does not match (22: 0.1 s, 30: ~30 s,
40: hours), and it holds the interpreter the whole time, so one publisher's record of 40
characters stalls every request of the hub (the per-record validation path uses ``re``; only
the columnar path switches to RE2). Now ``RulesStore.parse`` (every change path: PUT
/v1/rules, config proposals) refuses such patterns (``invalid_rules``) naming the rule, the
pattern and the fix; the shipped rule sets pass.
"""

from __future__ import annotations

import pytest

from domain.quality import backtracking_problem
from ingest.rules import shipped_rule_sets
from tests.adversarial._api import Api

HOSTILE = [r"^(a+)+$", r"(x+x+)+y", r"^(a|ab)*c$", r"(.*a){12}", r"^((ab)*)+$", r"(\w+)\1+$"]
FINE = [
    r"^[A-Z]{2}$",
    r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
    r"^([a-z]+\.)+[a-z]{2,}$",
    r"^(\d{1,3}\.){3}\d{1,3}$",
    r"^(ab|cd|x\d)*$",
    r"^([A-Z]{2}\d{2}){1,3}$",
    r"^(a|b)+$",
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_a_backtracking_pattern_is_refused_on_put(api: Api, pattern: str) -> None:
    before = api.client.get("/v1/rules/trades-value", headers=api.admin).json()
    body = {"rules": [{"id": "redos", "kind": "regex", "field": "instrument", "pattern": pattern}]}
    r = api.client.put("/v1/rules/trades-value", json=body, headers=api.admin)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_rules" and "redos" in r.text, r.text
    assert api.client.get("/v1/rules/trades-value", headers=api.admin).json() == before


@pytest.mark.parametrize("pattern", FINE)
def test_ordinary_patterns_pass(pattern: str) -> None:
    assert backtracking_problem(pattern) is None


def test_the_shipped_patterns_pass() -> None:
    patterns = [
        r.pattern for rs in shipped_rule_sets().values() for r in rs.rules if r.pattern is not None
    ]
    assert patterns and [p for p in patterns if backtracking_problem(p)] == []
