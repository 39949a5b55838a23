"""terraform/: formatting and HCL syntax with OpenTofu, `tofu validate` of what validates without
provider plugins, and what `tofu validate` would check beyond that (infra/tools/tf_check.py).

`tofu init` cannot download the AWS and TLS providers here (no provider registry is reachable),
and `tofu validate` of a configuration with resources needs their schemas. What `tofu validate`
does check, offline, with no provider:
- every module's variables (types, defaults against their types, validation rules): each
  module's real variables.tf alone is a provider-less module;
- the production environment's module wiring: its real main.tf, variables.tf and outputs.tf
  against modules made of their real variables.tf and their outputs' names (values unknown):
  unknown or missing module arguments, references to undeclared variables or module outputs.
What is not validated: resource and data-source arguments against the providers' schemas, and
the output values' expressions inside the modules."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

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


OUTPUT = re.compile(r'(?m)^output "([^"]+)"')


def _validate(folder: Path) -> str:
    tofu = tool("tofu")
    init = run(tofu, "init", "-backend=false", "-input=false", "-no-color", cwd=folder)
    if init.returncode != 0:  # init reads the configuration too (and needs no provider here)
        return "failed\n" + init.stdout + init.stderr
    done = run(tofu, "validate", "-no-color", cwd=folder)
    return ("ok\n" if done.returncode == 0 else "failed\n") + done.stdout + done.stderr


@pytest.mark.parametrize(
    "module", sorted(p.name for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
)
def test_tofu_validates_each_modules_variables(module: str, tmp_path: Path) -> None:
    shutil.copy(TERRAFORM / "modules" / module / "variables.tf", tmp_path)
    out = _validate(tmp_path)
    assert out.startswith("ok") and "The configuration is valid" in out, out


def _shells(tmp: Path) -> Path:
    """terraform/ with every module reduced to its variables and its outputs' names."""
    for module in (TERRAFORM / "modules").iterdir():
        shell = tmp / "modules" / module.name
        shell.mkdir(parents=True)
        shutil.copy(module / "variables.tf", shell)
        names = OUTPUT.findall((module / "outputs.tf").read_text())
        assert names, f"{module.name} declares no output"
        (shell / "outputs.tf").write_text(
            "".join(f'output "{n}" {{\n  value = null\n}}\n' for n in names)
        )
    root = tmp / "environments" / "production"
    root.mkdir(parents=True)
    for name in ("main.tf", "variables.tf", "outputs.tf"):  # not versions.tf: the providers
        shutil.copy(TERRAFORM / "environments" / "production" / name, root)
    return root


def test_tofu_validates_the_production_module_wiring(tmp_path: Path) -> None:
    out = _validate(_shells(tmp_path))
    assert out.startswith("ok") and "The configuration is valid" in out, out


def test_tofu_validate_catches_broken_wiring_and_bad_defaults(tmp_path: Path) -> None:
    root = _shells(tmp_path / "wiring")
    main = root / "main.tf"
    main.write_text(
        main.read_text().replace("module.kubernetes.oidc_issuer_url", "module.kubernetes.nope")
    )
    out = _validate(root)
    assert out.startswith("failed") and "nope" in out, out
    bad = tmp_path / "defaults"
    bad.mkdir()
    (bad / "variables.tf").write_text(
        'variable "replicas" {\n  type    = number\n  default = "three"\n}\n'
    )
    out = _validate(bad)
    assert out.startswith("failed") and "default" in out.lower(), out
