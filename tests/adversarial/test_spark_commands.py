"""The Spark commands refuse before any Spark work: ``hub lake recompute`` needs ``lake.export``
(the admin's alone) and ``projection.rebuild``; ``hub ml train --family`` names the families it
knows; a missing Spark virtualenv is a clear error naming the install command, not a traceback.
No Spark runs here (fast)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from core.roles import ROLE_ACTIONS, ROLES
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("spark-cmds") / "data"
    h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        keys = {role: h.keys.create([role], owner=f"{role}-1").token for role in ROLES}
    finally:
        h.close()
    yield {"data": data, "keys": keys}


def run(site: dict[str, Any], role: str, *args: str) -> Any:
    env = {"HUB_SPARK_PYTHON": str(site["data"] / "no-spark" / "python")}
    return CliRunner().invoke(
        main, ["--data-dir", str(site["data"]), "--key", site["keys"][role], *args], env=env
    )


@pytest.mark.parametrize("role", ROLES)
def test_lake_recompute_by_role(site: dict[str, Any], role: str) -> None:
    r = run(site, role, "lake", "recompute", "payment_aggregates")
    assert r.exit_code == 1 and "Traceback" not in r.output
    allowed = {"lake.export", "projection.rebuild"} <= ROLE_ACTIONS[role]
    if not allowed:
        assert "denied" in r.stderr.lower(), r.output
    else:  # past the policy: the missing virtualenv is named, before any export
        assert "infra/spark.sh install" in r.stderr, r.output
    assert not (site["data"] / "spark").exists()


def test_lake_recompute_names_the_projections_spark_can_do(site: dict[str, Any]) -> None:
    r = run(site, "admin", "lake", "recompute", "market_bars")
    assert r.exit_code == 1 and "Spark recomputes payment_aggregates" in r.stderr, r.output
    r = run(site, "admin", "lake", "recompute", "no_such_view")
    assert r.exit_code == 1 and "no_such_view" in r.stderr, r.output


def test_an_unknown_model_family_is_refused_by_name(site: dict[str, Any]) -> None:
    r = run(site, "admin", "ml", "train", "payment_risk", "--family", "xgb")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "no model family 'xgb'" in r.stderr and "sklearn-lr, spark-lr" in r.stderr, r.output
