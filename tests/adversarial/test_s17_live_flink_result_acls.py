"""Only the Flink jobs' principal may write the result topics (``flink.*``).

``projections.flink.results.ResultLoader`` folds the rows of ``flink.<table>`` into the analytics
views as they are: each row names its own ``tenant`` in its JSON value, and upsert-kafka cannot
carry the hub's record MAC (``adapters.kafka_log.auth`` reads ``flink.*`` like a data topic and
drops only a header's tenant claim). So anyone who can produce to ``flink.payment_volumes_1d``
writes rows into any tenant's views: payment volumes, AML near-threshold counts, positions,
bars, all outside the registry, the quality rules and the ledger. The broker's ACLs are the one
control: ``deploy/kafka/hub_acls.py`` did not name ``flink.*`` at all (operators improvised the
Flink grant) and accepted a ``--producer`` prefix covering it (``f``, ``fl``, ``flink.``), so a
Debezium or Confluent-serializer producer could be granted exactly that. Session 17's
live-surface review.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _acls() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_acls", ROOT / "deploy/kafka/hub_acls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _writers(acls: ModuleType, bindings: list[Any], topic: str) -> set[str]:
    """The principals a binding list lets write ``topic`` (a prefixed or literal grant)."""
    AclOperation, ResourceType = acls.AclOperation, acls.ResourceType
    ResourcePatternType = acls.ResourcePatternType

    found = set()
    for b in bindings:
        if b.restype != ResourceType.TOPIC or b.operation not in (
            AclOperation.WRITE,
            AclOperation.ALL,
        ):
            continue
        hit = (
            topic.startswith(b.name)
            if b.resource_pattern_type == ResourcePatternType.PREFIXED
            else topic == b.name
        )
        if hit:
            found.add(b.principal)
    return found


@pytest.mark.parametrize("prefix", ["", "prod."])
@pytest.mark.parametrize("covering", ["f", "fl", "flink.", "flink.payment"])
def test_a_data_producer_cannot_be_granted_the_result_topics(prefix: str, covering: str) -> None:
    acls = _acls()
    with pytest.raises(SystemExit) as info:
        acls.bindings("User:hub", prefix, [("User:cdc", prefix + covering)], ["payments."])
    assert "flink" in str(info.value) and "--flink" in str(info.value)


@pytest.mark.parametrize("prefix", ["", "prod."])
def test_the_flink_principal_alone_writes_the_results_and_the_hub_reads_them(
    prefix: str,
) -> None:
    acls = _acls()
    made = acls.bindings(
        "User:hub",
        prefix,
        [("User:cdc", prefix + "pg."), ("User:feed", prefix + "payments.")],
        ["payments.", "pg."],
        flink="User:flink",
    )
    result = prefix + "flink.payment_volumes_1d"
    assert _writers(acls, made, result) == {"User:hub", "User:flink"}
    # the Flink principal writes nothing else: not the hub's topics, not a data topic
    for other in (prefix + "hub.principals", prefix + "payments.eu", prefix + "_schemas"):
        assert "User:flink" not in _writers(acls, made, other), other


def test_data_producers_keep_their_grants() -> None:
    """The refusal is of prefixes covering ``flink.``, not of names merely starting with f."""
    acls = _acls()
    made = acls.bindings("User:hub", "", [("User:fx", "fx.")], ["fx."])
    assert "User:fx" in _writers(acls, made, "fx.rates")
