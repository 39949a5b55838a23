"""The broker ACLs a Kafka deployment of the hub needs (docs/operations/kafka-seal.md).

Only the hub's principal may write, delete or reconfigure the hub's own topics (``hub.*`` and
``_*`` under its topic prefix): the record MAC makes a forged record unreadable, but a principal
that can produce there can still stall the hub's readers, and one that can delete and re-create
a topic can replace records at old offsets (the seals refuse those, loudly). Kafka ACLs have no
"deny everyone except": a DENY wins over every ALLOW, the hub's included. So the broker MUST
run with ``allow.everyone.if.no.acl.found=false`` (the KRaft ``StandardAuthorizer``'s default)
and grant by name; this script prints (default) or creates those grants:

- the hub's principal: every operation on topics with the hub's prefix (the whole namespace:
  its own topics and the data topics it writes; without a prefix ``hub.``, ``_`` and each
  ``--hub-data`` prefix), its transactional ids and consumer groups, and ``IdempotentWrite``
  on the cluster;
- each ``--producer PRINCIPAL=TOPIC_PREFIX`` (Debezium, Confluent serializers, ...): ``Write``
  and ``Describe`` on that data topic prefix only. A prefix that would cover ``hub.`` or ``_``
  is refused, and so is one that would cover the Flink jobs' result topics (``flink.*``);
- ``--flink PRINCIPAL``, the Flink jobs' principal: ``Write`` and ``Describe`` on ``flink.*``,
  ``Read`` and ``Describe`` on the data topics, ``Read`` of its consumer groups
  (``projection.flink.*``, ``pattern.flink.*``). It alone writes ``flink.*``: the hub loads a
  result topic's rows into the analytics views as they are, each naming its own ``tenant``
  (upsert-kafka cannot carry the hub's record MAC), so a producer there writes any tenant's
  view rows. This grant is the only thing keeping others out.

    python deploy/kafka/hub_acls.py --hub-principal User:hub --prefix '' \\
        --producer User:debezium=pg.
    python deploy/kafka/hub_acls.py ... --apply --bootstrap broker:9093 \\
        --command-config admin.properties
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

PREFIXED = ResourcePatternType.PREFIXED
LITERAL = ResourcePatternType.LITERAL
ALLOW = AclPermissionType.ALLOW


RESULTS = "flink."  # projections.flink.compile.RESULT_PREFIX (no import: a standalone script)
FLINK_GROUPS = ("projection.flink.", "pattern.flink.")  # compile.group_id, cep.group_id


def _overlaps(a: str, b: str) -> bool:
    """Whether prefixed grants on ``a`` and on ``b`` share any topic name."""
    return a.startswith(b) or b.startswith(a)


def bindings(
    hub: str,
    prefix: str,
    producers: list[tuple[str, str]],
    hub_data: Sequence[str] = (),
    flink: str | None = None,
) -> list[AclBinding]:
    out: list[AclBinding] = []

    def grant(
        rtype: ResourceType, name: str, pattern: ResourcePatternType, op: AclOperation, who: str
    ) -> None:
        out.append(AclBinding(rtype, name, pattern, who, "*", op, ALLOW))

    # the namespace: with no prefix, the hub's own topics and (by convention) every data topic
    # it creates; name them by prefix, never ``*``, so other tenants of the cluster stay apart
    # (not ``_`` as a whole: that would cover Kafka's own ``__consumer_offsets``)
    topic_prefixes = [prefix] if prefix else ["hub.", "_hub_", *hub_data]
    for p in topic_prefixes:
        grant(ResourceType.TOPIC, p, PREFIXED, AclOperation.ALL, hub)
    if not prefix:
        grant(ResourceType.TOPIC, "_schemas", LITERAL, AclOperation.ALL, hub)
        grant(ResourceType.TOPIC, RESULTS, PREFIXED, AclOperation.ALL, hub)  # it loads them
    if prefix:
        grant(ResourceType.TRANSACTIONAL_ID, prefix, PREFIXED, AclOperation.ALL, hub)
    else:  # transactional ids are not prefixed then: the hub's principal owns them all
        grant(ResourceType.TRANSACTIONAL_ID, "*", LITERAL, AclOperation.ALL, hub)
    grant(ResourceType.GROUP, "*", LITERAL, AclOperation.ALL, hub)
    grant(ResourceType.BROKER, "kafka-cluster", LITERAL, AclOperation.IDEMPOTENT_WRITE, hub)
    grant(ResourceType.BROKER, "kafka-cluster", LITERAL, AclOperation.DESCRIBE, hub)
    results = prefix + RESULTS
    for who, topics in producers:
        own = (prefix + "hub.", prefix + "_")
        if topics.startswith(own) or any(o.startswith(topics) for o in own):
            raise SystemExit(
                f"--producer {who}={topics}: that prefix covers the hub's own topics (hub.*, _*); "
                "give the data topic's own prefix, e.g. 'payments.'."
            )
        if _overlaps(topics, results):
            raise SystemExit(
                f"--producer {who}={topics}: that prefix covers the Flink jobs' result topics "
                f"({results}*), whose rows the hub loads into the views as they are, each naming "
                "its tenant: only the Flink jobs' principal (--flink) may write there."
            )
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
            grant(ResourceType.TOPIC, topics, PREFIXED, op, who)
        grant(ResourceType.BROKER, "kafka-cluster", LITERAL, AclOperation.IDEMPOTENT_WRITE, who)
    if flink:
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
            grant(ResourceType.TOPIC, results, PREFIXED, op, flink)
        for p in [prefix] if prefix else list(hub_data):  # the data topics its jobs read
            if not _overlaps(p, results):
                for op in (AclOperation.READ, AclOperation.DESCRIBE):
                    grant(ResourceType.TOPIC, p, PREFIXED, op, flink)
        for g in FLINK_GROUPS:
            grant(ResourceType.GROUP, g, PREFIXED, AclOperation.READ, flink)  # not prefixed
        grant(ResourceType.BROKER, "kafka-cluster", LITERAL, AclOperation.IDEMPOTENT_WRITE, flink)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub-principal", required=True, help="e.g. User:hub")
    ap.add_argument("--prefix", default="", help="HUB_KAFKA_TOPIC_PREFIX ('' by default)")
    ap.add_argument("--producer", action="append", default=[], metavar="PRINCIPAL=TOPIC_PREFIX")
    ap.add_argument(
        "--hub-data",
        action="append",
        default=[],
        metavar="TOPIC_PREFIX",
        help="without --prefix: a data topic prefix the hub writes (repeat per prefix)",
    )
    ap.add_argument(
        "--flink", metavar="PRINCIPAL", help="the Flink jobs' principal: the only writer of flink.*"
    )
    ap.add_argument("--apply", action="store_true", help="create the ACLs (else print them)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--command-config", help="client properties (security settings), key=value")
    args = ap.parse_args()
    producers = []
    for spec in args.producer:
        who, sep, topics = spec.partition("=")
        if not sep or not who or not topics:
            raise SystemExit(
                f"--producer {spec!r}: write PRINCIPAL=TOPIC_PREFIX, e.g. User:cdc=pg."
            )
        producers.append((who, topics))
    acls = bindings(args.hub_principal, args.prefix, producers, args.hub_data, args.flink)
    for b in acls:
        print(b)  # AclBinding's own text: type, name, pattern, principal, operation, permission
    if not args.apply:
        return
    config = {"bootstrap.servers": args.bootstrap}
    if args.command_config:
        with open(args.command_config, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    config[key.strip()] = value.strip()
    failed = 0
    for b, future in AdminClient(config).create_acls(acls).items():
        try:
            future.result(30)
        except Exception as exc:  # report every binding, then fail
            failed += 1
            print(f"FAILED {b}: {exc}", file=sys.stderr)
    if failed:
        raise SystemExit(f"{failed} of {len(acls)} ACLs were not created (see above).")


if __name__ == "__main__":
    main()
