"""``hub connector run`` (kind ``debezium``, action ``ingest.connector``) refuses before any Kafka
client or Kafka Connect: a key without the action is denied and the denial recorded on
``hub.decisions``; a config naming an internal topic (``hub.*``, ``_*``, ``flink.*``, any case) as
the target is refused by name, whatever the caller's role. No Kafka runs here (the bootstrap
servers point at a closed port): a refusal that came too late would show as a Kafka error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from core.roles import ROLE_ACTIONS, ROLES
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings

ENV = {"HUB_PROJECTION_AUTOSTART": "false"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("connector-cmds")
    data = root / "data"
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        keys = {role: h.keys.create([role], principal=f"cdc-{role}").token for role in ROLES}
    finally:
        h.close()
    yield {"data": data, "keys": keys, "root": root}


def config(site: dict[str, Any], topic: str) -> Path:
    path: Path = site["root"] / f"cdc-{abs(hash(topic))}.yaml"
    text: str = yaml.safe_dump(
        {
            "kind": "debezium",
            "source_topic": "cdc.public.accounts",
            "topic": topic,
            "bootstrap_servers": "127.0.0.1:1",  # nothing listens: no Kafka is reached
            "timeout_s": 1,
        }
    )
    path.write_text(text)
    return path


def run(site: dict[str, Any], role: str, topic: str) -> Any:
    args = ["--data-dir", str(site["data"]), "--key", site["keys"][role]]
    return CliRunner().invoke(
        main, [*args, "connector", "run", "cdc1", "--config", str(config(site, topic))], env=ENV
    )


def refusals(site: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The recorded decisions (``hub.PolicyDecisionRecorded`` values) of the role's key on
    ``ingest.connector``, each found through the ledger (so covered by it)."""
    h = bootstrap(load_settings(environ=ENV, data_dir=site["data"]))
    try:
        h.ledger.sync(force_checkpoint=True)
        entries = h.ledger.entries(topic="hub.decisions", actor=f"cdc-{role}", with_fields=True)
        out = []
        for e in entries:
            if e["action"] == "ingest.connector":
                (rec,) = h.reader.read("hub.decisions", e["partition"], e["offset"], 1)
                out.append(rec["value"])
        return out
    finally:
        h.close()


DENIED = [r for r in ROLES if "ingest.connector" not in ROLE_ACTIONS[r]]


@pytest.mark.parametrize("role", DENIED)
def test_a_key_without_the_action_is_refused_and_the_refusal_recorded(
    site: dict[str, Any], role: str
) -> None:
    r = run(site, role, "accounts")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "access denied" in r.stderr.lower(), r.output
    assert "127.0.0.1:1" not in r.output  # refused before any Kafka client
    recorded = refusals(site, role)
    assert recorded, f"no ingest.connector decision recorded for {role}"
    assert [(d["allow"], d["resource"]) for d in recorded] == [(False, "connectors/cdc1")]
    assert recorded[0]["principal"] == f"cdc-{role}" and recorded[0]["reason"]


@pytest.mark.parametrize(
    "topic", ["hub.decisions", "hub.alerts", "_schemas", "flink.market_bars_1m", "FLINK.positions"]
)
def test_an_internal_target_topic_is_refused_by_name(site: dict[str, Any], topic: str) -> None:
    allowed = next(r for r in ROLES if "ingest.connector" in ROLE_ACTIONS[r])
    r = run(site, allowed, topic)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"Topic {topic!r} is internal" in r.stderr, r.output
    assert "127.0.0.1:1" not in r.output  # refused before any Kafka client


def test_the_roles_table_grants_the_action_to_someone() -> None:
    """The refusal tests above are not vacuous: some role may run connectors, some may not."""
    assert DENIED and len(DENIED) < len(ROLES)
