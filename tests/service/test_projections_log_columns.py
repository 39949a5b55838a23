"""The projection runner reads the log as columns (``EventLog.read_columns``): its views MUST be
the ones it folds when the log hands over one ``StoredRecord`` per record (the port's default
``read_columns``, built from ``read``: headers per record), which is how it read before. Random
logs with odd records: the hub's envelope (header columns) beside appends with headers per
record (repeated, missing and reordered names, invalid UTF-8 tenants and types), transactions
that leave marker offsets, a poison value, late events; batch sizes that cut stored batches,
offset bounds and a log-time cut (time travel). Since session 13 the SQL path reads the stored
batches themselves (``read_encoded``) and decodes them in place (``decode_stored``); the
reference reads neither way (``RecordPath``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import projections.runner as runner_module
from core.ports.eventlog import EventLog, Headers, Record, RecordColumns
from core.ports.views import Target
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from projections.catalog import by_name
from projections.columnar import decode_stored
from projections.runner import Bound
from tests.service.test_projections_columnar import payments, trades

pytest.importorskip("chdb")

ODD = (b"acme", b"globex", b"\xff\xfe bad \xed\xa0\x80", "h\u00e9llo".encode(), b"")


class RecordPath:
    """The hub's log, read record by record: ``read_columns`` is the port's default."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def read_columns(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> RecordColumns:
        got = EventLog.read_columns(self, topic, partition, offset, max_records)  # type: ignore[arg-type]
        assert got.header_names is None  # headers per record: the reference envelope
        return got

    def read_encoded(self, topic: str, partition: int, offset: int, max_records: int = 1000) -> Any:
        return None  # the port's default: no stored batches (the runner reads columns)


def _odd_headers(rnd: random.Random, h: Headers, shape: int, perm: int) -> Headers:
    """The record's headers reshaped (one ``shape`` per append, so that an append of envelope
    records keeps one header layout and is stored as header columns): names dropped, a caller's
    own header repeated (an envelope header twice is refused by the log), reordered, tenant
    values replaced by odd bytes."""
    pairs = list(h)
    if shape == 0:
        pairs = [p for p in pairs if p[0] != "ce_type"]  # the schema's name is the type
    elif shape == 1:
        pairs += [("x-trace", rnd.choice(ODD)), ("x-trace", b"2")]  # repeated: allowed
    elif shape == 2:
        random.Random(perm).shuffle(pairs)
        pairs = [(k, rnd.choice(ODD)) if k == "ce_tenant" else (k, v) for k, v in pairs]
    elif shape == 3:
        pairs = [p for p in pairs if p[0] != "ce_tenant"]  # the tenant is "default"
    else:  # names vary per record: headers stored per record
        kept = [p for p in pairs[: rnd.randint(0, len(pairs))] if p[0] != "ce_type"]
        pairs = [*kept, ("ce_type", rnd.choice(ODD))]
    return tuple(pairs)


def _fill(h: Any, seed: int) -> None:
    rnd = random.Random(seed)
    h.publisher.publish("trades", trades(400, seed=seed), producer="t", tenant="acme")
    h.publisher.publish("payments", payments(250, seed=seed), producer="t", tenant="globex")
    for topic in ("trades", "payments"):
        parts = sorted(h.log.end_offsets(topic))
        sample = [r for p in parts for r in h.log.read(topic, p, 0, 10_000)]
        for _ in range(8):
            picked = rnd.sample(sample, rnd.randint(30, 200))
            shape, perm = rnd.randrange(5), rnd.randrange(1000)
            odd = [
                Record(r.value, r.key, _odd_headers(rnd, r.headers, shape, perm), r.timestamp_ms)
                for r in picked
            ]
            if rnd.random() < 0.3:  # keyed, spread over partitions: a transaction + markers
                h.log.append(topic, odd)
            else:  # one partition: no marker
                p = rnd.choice(parts)
                h.log.append(
                    topic, [Record(r.value, r.key, r.headers, r.timestamp_ms, p) for r in odd]
                )
            if rnd.random() < 0.3:
                h.log.append(topic, [Record(b"\x00\x00\x00\x00\x63poison", b"A1")])
        h.publisher.publish(
            topic,
            (trades if topic == "trades" else payments)(120, seed=seed + 5),
            producer="t",
            tenant="acme",
        )


def _views(h: Any, name: str, log: Any, batch: int, bound: Bound | None) -> Any:
    ps = h.projections
    proj = by_name(name)
    target = Target(name, f"cols_{batch}")
    store = ps.store(proj.store)
    store.drop(target, proj.tables)
    runner = ps._new_runner(proj, target)
    runner.log = log
    runner.batch_records = batch
    runner.open()
    done = runner.catch_up(bound)
    got = (
        done,
        runner.columnar_batches,
        dict(runner.checkpoint.positions),
        ps.digest(name, target, save=False),
    )
    store.drop(target, proj.tables)
    return got


@pytest.mark.parametrize("seed", [3])
def test_column_read_and_record_read_give_identical_views(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_place = [0]  # batches the SQL path decoded from the stored bodies

    def counted(*args: Any) -> Any:
        got = decode_stored(*args)
        in_place[0] += got is not None
        return got

    monkeypatch.setattr(runner_module, "decode_stored", counted)
    h = bootstrap(
        load_settings(
            environ={},
            data_dir=tmp_path / "d",
            projection_autostart=False,
            projection_allowed_lateness_s=60,
            projection_late_mode="side",
        )
    )
    try:
        _fill(h, seed)
        assert isinstance(h.log.read_columns("trades", 0, 0, 5).header_names, tuple)
        for name, topic in (("market_bars", "trades"), ("payment_aggregates", "payments")):
            ends = h.log.end_offsets(topic)
            cut = {(topic, p): max(1, e // 2) for p, e in ends.items()}
            times = sorted(r.timestamp_ms for r in h.log.read(topic, 0, 0, 10_000))
            for batch, bound in (
                (10_000, None),
                (211, None),
                (113, Bound(cut)),
                (10_000, Bound(time_ms=times[len(times) // 2])),
            ):
                ref = _views(h, name, RecordPath(h.log), batch, bound)
                got = _views(h, name, h.log, batch, bound)
                assert got == ref, (name, batch, bound)
                assert got[1] > 0  # the SQL path ran
                assert any(v["rows"] for v in got[3].values())
        assert in_place[0] > 0  # the stored batches were decoded in place
    finally:
        h.close()
