"""The tenant MAC a Flink job checks before it trusts a record's ``ce_tenant``
(``core.tenant_mac``): what the hub's writer computes in batch (native and reference) verifies
in the job's function; any change a broker producer could make reads as tenant ``default``."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.kafka_log import auth
from core import tenant_mac
from core.tenant_mac import COVERED, TMAC_HEADER, tenant_of

KEY = bytes(range(32))
TS = 1_764_000_000_123
HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_type", b"hub.accounts.AccountOpened"),
    ("ce_time", b"2026-11-25T10:00:00.000Z"),
    ("ce_tenant", b"globex"),
    ("content-type", b"application/avro"),
]


def sealed(headers: list[tuple[str, bytes]], *, key: bytes = KEY) -> dict[str, bytes | None]:
    """The job's header map of a record the hub wrote (topic t, partition 2, key k, value v)."""
    (tmac,) = auth.tenant_macs_rows(key, [("t", 2, b"k", b"v", tuple(headers), TS)])
    return {**dict(headers), TMAC_HEADER: tmac}


def test_a_genuine_record_reads_as_its_tenant_and_every_change_as_default() -> None:
    h = sealed(HEADERS)
    assert tenant_of(KEY, "t", 2, b"k", b"v", h, TS) == "globex"
    changed = {
        "no tmac": ("t", 2, b"k", b"v", {k: v for k, v in h.items() if k != TMAC_HEADER}, TS),
        "wrong tmac": ("t", 2, b"k", b"v", {**h, TMAC_HEADER: b"\0" * 32}, TS),
        "empty tmac": ("t", 2, b"k", b"v", {**h, TMAC_HEADER: b""}, TS),
        "ce_tenant changed": ("t", 2, b"k", b"v", {**h, "ce_tenant": b"acme"}, TS),
        "ce_type changed": ("t", 2, b"k", b"v", {**h, "ce_type": b"x"}, TS),
        "ce_time changed": ("t", 2, b"k", b"v", {**h, "ce_time": b"2030-01-01"}, TS),
        "other topic": ("u", 2, b"k", b"v", h, TS),
        "other partition": ("t", 3, b"k", b"v", h, TS),
        "other key": ("t", 2, b"K", b"v", h, TS),
        "no key": ("t", 2, None, b"v", h, TS),
        "other value": ("t", 2, b"k", b"w", h, TS),
        "other timestamp": ("t", 2, b"k", b"v", h, TS + 1),
    }
    for why, (topic, p, k, v, hs, ts) in changed.items():
        assert tenant_of(KEY, topic, p, k, v, hs, ts) == "default", why
    assert tenant_of(bytes(32), "t", 2, b"k", b"v", h, TS) == "default"  # another key
    assert tenant_of(KEY, "t", 2, b"k", b"v", None, TS) == "default"


def test_a_tenant_added_after_the_mac_reads_as_default() -> None:
    """A hub record without ``ce_tenant`` (the default tenant): adding one afterwards claims
    nothing; its other headers may change freely (not covered), the covered ones may not."""
    plain = [h for h in HEADERS if h[0] != "ce_tenant"]
    h = sealed(plain)
    assert tenant_of(KEY, "t", 2, b"k", b"v", h, TS) == "default"
    assert tenant_of(KEY, "t", 2, b"k", b"v", {**h, "ce_tenant": b"globex"}, TS) == "default"
    # an uncovered header the job never reads: not bound (the record MAC binds it for the hub)
    assert tenant_of(KEY, "t", 2, b"k", b"v", {**sealed(HEADERS), "x": b"1"}, TS) == "globex"
    # a None value (a Kafka header without one) is bound as such
    h = sealed([("ce_tenant", b"acme"), ("ce_type", None)])  # type: ignore[list-item]
    assert tenant_of(KEY, "t", 2, b"k", b"v", h, TS) == "acme"
    assert tenant_of(KEY, "t", 2, b"k", b"v", {**h, "ce_type": b""}, TS) == "default"
    assert tenant_of(
        KEY, "t", 2, b"k", b"v", {k: v for k, v in h.items() if k != "ce_type"}, TS
    ) == ("default")


def test_header_order_on_the_wire_does_not_matter_and_the_last_repeat_counts() -> None:
    """The job's map has no order: the MAC binds ``COVERED`` in its own order."""
    forward = sealed(HEADERS)
    backward = sealed(list(reversed(HEADERS)))
    assert forward[TMAC_HEADER] == backward[TMAC_HEADER]
    repeated = sealed([("ce_tenant", b"acme"), *HEADERS])  # the map keeps the last: globex
    assert repeated[TMAC_HEADER] == forward[TMAC_HEADER]


def test_batch_macs_native_and_reference_agree_with_the_record_function() -> None:
    """The writer's column path (``auth.tenant_macs``: one native call per batch) and its rows
    path give the MACs of ``core.tenant_mac.tenant_mac`` exactly, shared and per-record columns,
    an absent ``ce_time``, None keys and values; the pure-Python reference too."""
    keys = [b"a", None, b"c"]
    values = [b"1", b"2", None]
    names = ("ce_specversion", "ce_tenant", "ce_type", "x")
    columns = (b"1.0", [b"acme", b"globex", b"acme"], b"T", [b"p", b"q", b"r"])
    got = auth.tenant_macs(KEY, "t", 0, TS, keys, values, names, columns)
    want = [
        tenant_mac.tenant_mac(KEY, "t", 0, k, v, [("ce_tenant", tn), ("ce_type", b"T")], TS)
        for k, v, tn in zip(keys, values, columns[1], strict=True)
    ]
    assert got == want
    ref = auth.record_macs_py(
        KEY,
        "t",
        0,
        TS,
        keys,
        values,
        ["ce_tenant", "ce_type"],
        [columns[1], b"T"],
        tenant_mac.LABEL,
    )
    assert ref == want
    rows = [
        ("t", 0, k, v, tuple(zip(names, (b"1.0", tn, b"T", x), strict=True)), TS)
        for k, v, tn, x in zip(keys, values, columns[1], columns[3], strict=True)
    ]
    assert auth.tenant_macs_rows(KEY, rows) == want
    assert (
        auth.record_macs_rows_py(
            KEY,
            [(t, p, k, v, tenant_mac.covered(h), ts) for t, p, k, v, h, ts in rows],
            tenant_mac.LABEL,
        )
        == want
    )
    # not the record MAC: a MAC under the record key and label never passes as a tenant MAC
    assert (
        auth.record_mac(KEY, "t", 0, b"a", b"1", [("ce_tenant", b"acme"), ("ce_type", b"T")], TS)
        != want[0]
    )


def test_the_key_reaches_a_job_from_its_environment_only() -> None:
    one = os.urandom(32)
    assert tenant_mac.parse_keys(tenant_mac.env_value(one), ["a.", "b."]) == {"a.": one, "b.": one}
    two = {"a.": os.urandom(32), "b.": os.urandom(40)}
    assert tenant_mac.parse_keys(tenant_mac.env_value(two), ["a."]) == two
    for bad in ("", "zz", "00" * 31, "{", "[1]", json.dumps({"a.": "00" * 8})):
        assert tenant_mac.parse_keys(bad, ["a."]) == {}, bad


def test_the_job_reads_kafka_timestamps_as_utc_wall_clock_whatever_its_zone() -> None:
    """``epoch_ms`` of what PyFlink hands over for ``TIMESTAMP_LTZ(3)``: the UTC wall clock
    labelled with the session zone (measured with PyFlink 2.x in three zones)."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "projections" / "flink"))
    try:
        from job import epoch_ms
    finally:
        sys.path.pop(0)
    wall = datetime(2023, 11, 14, 22, 13, 20, 123000)
    for zone in (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-5))):
        assert epoch_ms(wall.replace(tzinfo=zone)) == 1_700_000_000_123


def test_the_flink_sources_read_tenants_only_through_the_tenant_mac() -> None:
    """No compiled job reads ``ce_tenant`` from the header map; each names its namespace so the
    job can refuse to start without that hub's key."""
    import dataclasses

    from domain.features import VIEWS
    from hub.pattern_alerts import PATTERNS
    from ml.flink_features import compile_features
    from projections.catalog import PROJECTIONS
    from projections.flink.cep import compile_pattern
    from projections.flink.compile import COMPILERS, combine, compile_projection
    from tests.unit.test_flink_compile import AT

    at = dataclasses.replace(AT, group="g", result_topics=True)
    specs = [compile_projection(p, at) for p in PROJECTIONS if p.name in COMPILERS]
    specs += [compile_pattern(p, at) for p in PATTERNS]
    specs += [compile_features(v, at, "g") for v in VIEWS.values()]
    job = combine("all", specs)
    text = "\n".join([*job.statements, *job.inserts])
    assert "'ce_tenant'" not in text
    assert text.count(f"`{tenant_mac.FUNCTION}`(") >= len(specs)
    assert json.loads(job.to_json())["tenant_prefixes"] == [AT.topic_prefix]
    assert all(spec.tenant_prefixes == (AT.topic_prefix,) for spec in specs)
    sources = [s for s in job.statements if "'connector' = 'kafka'" in s]
    assert sources and all("`record_key` BYTES" in s and "FROM 'timestamp'" in s for s in sources)
    assert all(COVERED[0] == "ce_tenant" for _ in sources)


def test_the_launcher_puts_the_key_in_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the row key (``test_flink_compile``): in the job's environment, never its spec
    file, and a key the hub process inherited is not passed on."""
    from projections.flink import launch
    from projections.flink.compile import JobSpec

    spec = JobSpec("x", {}, [], [], [], (), tenant_prefixes=("a.",))
    monkeypatch.setattr(launch, "JOB_SCRIPT", tmp_path / "env.py")
    env = tenant_mac.KEY_ENV
    (tmp_path / "env.py").write_text(f"import os; print(os.environ.get({env!r}, '-'))")
    keys = {"a.": os.urandom(32), "b.": os.urandom(32)}
    launcher = launch.FlinkLauncher(Path(sys.executable), tmp_path / "jobs", tenant_key=keys)
    job = launcher.submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert tenant_mac.parse_keys(job.stdout.read_text().strip(), ["a."]) == keys
    assert all(k.hex() not in (job.folder / "spec.json").read_text() for k in keys.values())
    monkeypatch.setenv(env, "ab" * 32)
    job = launch.FlinkLauncher(Path(sys.executable), tmp_path / "other").submit(spec)
    assert job.process.wait(timeout=60) == 0
    assert job.stdout.read_text().split() == ["-"]


def test_a_log_refuses_a_tenant_key_it_cannot_use_apart() -> None:
    from adapters.kafka_log.log import KafkaEventLog
    from core.errors import InvalidInput

    for mac, tenant in ((None, KEY), (KEY, KEY), (KEY, b"short")):
        with pytest.raises(InvalidInput, match="tenant_key"):
            KafkaEventLog("127.0.0.1:1", mac_key=mac, tenant_key=tenant)


def test_an_old_v1_value_opens_in_flink_views_only_for_an_authenticated_tenant(
    tmp_path: Path,
) -> None:
    """A v1 value (sealed before tenants were bound) in a row of tenant ``default``: the job
    names ``default`` for every record it cannot authenticate (a broker producer's copy of an
    old acme value, or an acme record written before tenant MACs), so it does not open there;
    under a tenant the job authenticated (acme's record re-appended by an import) it opens."""
    from adapters.local_keystore import open_keyring
    from core.pii import encrypted_schema
    from core.ports.keystore import DecryptionFailed, make_aad_v1
    from projections.flink.job import seal
    from projections.flink.sealed import opener
    from tests.unit.test_flink_compile import ROOT

    text = encrypted_schema(json.loads((ROOT / "domain/schemas/AccountOpened.avsc").read_text()))

    class Registry:
        def parsed(self, schema_id: int) -> object:
            return type("P", (), {"text": text})()

    keys = open_keyring(tmp_path / "keys.db", tmp_path / "master.key")
    old = keys.encrypt("A:1", b"\x08Zo\xc3\xab", make_aad_v1("accounts", "customer_name", "A:1"))
    unseal = opener(Registry(), keys)
    assert unseal(seal("accounts", 7, "customer_name", old, "A:1", "acme"), "acme") == "Zoë"
    with pytest.raises(DecryptionFailed):
        unseal(seal("accounts", 7, "customer_name", old, "A:1", "default"), "default")
