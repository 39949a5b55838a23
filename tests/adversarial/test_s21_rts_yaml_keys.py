"""s21 red team of s20 (inputs): a YAML file with a repeated key is refused, as JSON is.

s20 refuses a repeated JSON member everywhere a request or record is read ("parsers disagree
on which value a repeated member has"). The YAML files of governed changes were missed: PyYAML
keeps the last value silently, so ``hub rules set`` applied a rule file whose ``pattern`` was
given twice (a reviewer of the file reads the first, the hub applied the second), and so did
``hub config propose --file`` and the settings file. Now such a file is refused naming the key
and its line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.yamlkeys import load_unique
from tests.service.test_policy_cli import run

RULES = """\
subject: trades-value
rules:
  - id: inst
    kind: regex
    field: instrument
    pattern: "^[A-Z0-9.]{1,12}$"
    pattern: "^.{0,40}$"
"""


def test_hub_rules_set_refuses_a_repeated_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = run(data, "rules", "show", "trades-value")
    (tmp_path / "rules.yaml").write_text(RULES)
    code, out, err = run(data, "rules", "set", "trades-value", str(tmp_path / "rules.yaml"))
    assert code != 0, out  # before: "trades-value: 1 rules", the second pattern applied
    assert "'pattern'" in err and "line 7" in err, err
    assert run(data, "rules", "show", "trades-value") == before


@pytest.mark.parametrize(
    "text",
    ["a: 1\na: 2\n", "{a: 1, a: 2}", "x:\n  - {b: 1, b: 1}\n", "? a\n: 1\na: 2\n"],
)
def test_a_repeated_key_is_refused_at_any_depth(text: str) -> None:
    with pytest.raises(InvalidInput, match="appears twice"):
        load_unique(text, "the file")


def test_ordinary_yaml_loads_as_before() -> None:
    assert load_unique("a: 1\nb: [1, {c: 2}]\nd: {e: f}\n", "x") == {
        "a": 1,
        "b": [1, {"c": 2}],
        "d": {"e": "f"},
    }
    assert load_unique("", "x") is None
    assert load_unique("<<: {a: 1}\nb: 2\n", "x") == {"a": 1, "b": 2}  # a merge key
