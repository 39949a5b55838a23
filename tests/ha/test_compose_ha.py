"""deploy/compose/compose.ha.yaml runs what tests/ha runs (no Docker engine here, so the file is
never started: README "High availability" says what was run and what was not).

Compared, not retyped: the hub processes' settings and command come from ``tests/ha/hubprocs``
(the ones the HA tests start), the brokers' settings from ``infra/kafka-cluster.sh`` (the
cluster the failover test runs on), the ports from the compose file's own command, health check
and load balancer. A setting changed on one side only fails here. Pure file reading: < 1 s.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.ha import hubprocs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_HA = ROOT / "deploy" / "compose" / "compose.ha.yaml"
HAPROXY = ROOT / "deploy" / "compose" / "haproxy.cfg"
CLUSTER_SH = ROOT / "infra" / "kafka-cluster.sh"

# Broker settings of infra/kafka-cluster.sh that tune a two-core test machine, not the
# cluster's behaviour: compose keeps Kafka's defaults for them.
MACHINE_TUNING = {
    "num.network.threads",
    "num.io.threads",
    "background.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "log.segment.bytes",
    "offsets.topic.num.partitions",
    "transaction.state.log.num.partitions",
    "group.initial.rebalance.delay.ms",
}


def _services() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_HA.read_text())
    return dict(doc["services"])


def _cluster_settings() -> dict[str, str]:
    """The fixed ``key=value`` lines of the server.properties kafka-cluster.sh writes (those
    naming a node, a port or a folder vary per node and machine: left out)."""
    text = CLUSTER_SH.read_text()
    body = text.split('cat >"$PROPS" <<EOF', 1)[1].split("\nEOF", 1)[0]
    out = {}
    for line in body.splitlines():
        key, eq, value = line.partition("=")
        if eq and not line.startswith("#") and "$" not in value:
            out[key.strip()] = value.strip()
    return out


def _compose_name(key: str) -> str:
    """The apache/kafka image's environment variable for a broker setting."""
    return "KAFKA_" + key.upper().replace(".", "_")


def test_the_brokers_run_with_the_settings_of_the_tested_cluster() -> None:
    settings = _cluster_settings()
    assert settings["min.insync.replicas"] == "2"  # the parse found the durability settings
    assert settings["unclean.leader.election.enable"] == "false"
    nodes = {n: s["environment"] for n, s in _services().items() if n.startswith("kafka-")}
    ids = re.search(r"^NODES=\(([0-9 ]+)\)", CLUSTER_SH.read_text(), re.MULTILINE)
    assert ids is not None
    assert sorted(e["KAFKA_NODE_ID"] for e in nodes.values()) == ids.group(1).split()
    for name, env in nodes.items():
        differ = {
            key: (value, env.get(_compose_name(key)))
            for key, value in settings.items()
            if key not in MACHINE_TUNING and env.get(_compose_name(key)) != value
        }
        assert differ == {}, f"{name}: (infra/kafka-cluster.sh, compose.ha.yaml) {differ}"
        # compose sets nothing of these that the tested cluster does not also set
        extra = {
            k
            for k in env
            if k.startswith("KAFKA_")
            and k not in {_compose_name(s) for s in settings}
            and k not in {"KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS"}
            and k not in {"KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_HEAP_OPTS"}
        }
        assert extra == set(), f"{name} sets {extra}, which the tested cluster does not"


def test_the_hub_processes_run_with_the_settings_and_command_of_the_ha_tests() -> None:
    services = _services()
    hubs = {n: s for n, s in services.items() if n.startswith("hub-")}
    assert len(hubs) == 2  # as the HA tests: two processes on one footprint
    expected = {**hubprocs.HA_SETTINGS, **hubprocs.CLUSTER_SETTINGS}
    brokers = [n for n in services if n.startswith("kafka-")]
    leader_ids = set()
    for name, svc in hubs.items():
        env = svc["environment"]
        assert {k: env.get(k) for k in expected} == expected, name
        assert env["HUB_LEADER_NAME"]  # one lease for both
        leader_ids.add(env["HUB_LEADER_ID"])
        servers = env["HUB_KAFKA_BOOTSTRAP_SERVERS"].split(",")
        assert sorted(s.split(":")[0] for s in servers) == sorted(brokers)
        command = svc["command"]
        port = command[command.index("--port") + 1]
        # the command the tests run, with compose's port
        tested = hubprocs.serve_command(int(port))
        assert command[: len(tested)] == tested or (
            command[0] == tested[0] and set(tested[1:]) <= set(command[1:])
        ), (name, command, tested)
        # ... and that port is the one its health check, its published port and the load
        # balancer use
        assert f"127.0.0.1:{port}/ready" in " ".join(svc["healthcheck"]["test"]), name
        assert all(p.endswith(f":{port}") for p in svc["ports"]), (name, svc["ports"])
        assert f"server {name} {name}:{port} check" in HAPROXY.read_text(), name
    assert len(leader_ids) == 2  # distinct holders (and chDB folders), as hubprocs.start gives
    assert len({s["environment"]["HUB_LEADER_NAME"] for s in hubs.values()}) == 1
