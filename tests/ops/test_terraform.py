"""terraform/: formatting and HCL syntax with OpenTofu, and what `tofu validate` would check
without provider schemas (infra/tools/tf_check.py; the README says what cannot be checked here)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.ops.conftest import ROOT, run, tool

TERRAFORM = ROOT / "terraform"
CHECK = ROOT / "infra" / "tools" / "tf_check.py"


def test_tofu_fmt_check() -> None:
    done = run(tool("tofu"), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM))
    assert done.returncode == 0, done.stdout + done.stderr


def test_tofu_fmt_catches_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "x" {\ntype=string\n}\n')
    done = run(tool("tofu"), "fmt", "-check", str(tmp_path))
    assert done.returncode != 0


def test_variables_outputs_module_wiring_and_docs() -> None:
    done = run(tool("python-hcl2"), str(CHECK), str(TERRAFORM))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problem(s)" in done.stdout


def test_the_check_finds_broken_wiring(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy)
    main = copy / "environments" / "production" / "main.tf"
    main.write_text(
        main.read_text()
        .replace('module.kms.key_arns["kafka"]', 'module.kms.key_arn["kafka"]')
        .replace('  kms_key_arn = module.kms.key_arns["object-storage"]\n', "")
    )
    variables = copy / "modules" / "kafka" / "variables.tf"
    variables.write_text(variables.read_text().replace('  description = "Cluster name."\n', ""))
    done = run(tool("python-hcl2"), str(CHECK), str(copy))
    assert done.returncode == 1
    assert "module.kms.key_arn: ../../modules/kms has no output 'key_arn'" in done.stdout
    assert "does not pass required variable 'kms_key_arn'" in done.stdout
    assert "variable 'name' has no description" in done.stdout
