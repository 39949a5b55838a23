"""The incremental result loader (``projections.flink.results.ResultLoader``) without Flink: the
partial rows a Flink job would upsert into ``flink.aml_daily`` (running totals per view key and
source partition, newest value per key wins) are appended to the hub's log by hand, and loaded
into the hub's chDB analytics store. A second load reads only the records appended since the
first (counted), a restarted loader too, and the views always equal a full reload's and the
running totals the records say."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.ports.eventlog import Record
from hub.bootstrap import Hub
from projections.catalog import PAYMENT_AGGREGATES
from projections.flink.compile import partial_columns, result_topic
from projections.flink.results import ResultLoader
from projections.flink.rowmac import COLUMN, row_mac

TABLE = PAYMENT_AGGREGATES.table("aml_daily")
DAY = 1_772_409_600 * 1_000_000  # 2026-03-02, µs
ROW_KEY = bytes(range(32))  # the result rows' MAC key, as the hub's Flink job holds it


def partial(account: str, src_partition: int, events: int, amount: str, last: int) -> Record:
    """One upsert of a running partial row, as Flink's upsert-kafka sink writes it (JSON)."""
    key = {"tenant": "acme", "account_id": account, "day": DAY, "currency": "EUR"}
    value = key | {
        "events": events,
        "amount": Decimal(amount),
        "near_threshold": events,
        "near_threshold_amount": Decimal(amount),
        "src_topic": "payments",
        "src_partition": src_partition,
        "src_first": 0,
        "src_last": last,
    }
    value[COLUMN] = row_mac(ROW_KEY, TABLE.name, [value[n] for n, _ in partial_columns(TABLE)])
    key_bytes = json.dumps(
        key | {"src_topic": "payments", "src_partition": src_partition}, sort_keys=True
    ).encode()
    return Record(value=json.dumps(value, default=str).encode(), key=key_bytes)


def merged(loader: ResultLoader) -> dict[str, tuple[int, Decimal]]:
    return {
        r["account_id"]: (r["events"], r["amount"]) for r in loader.rows(PAYMENT_AGGREGATES, TABLE)
    }


def full_reload_digest(hub: Hub) -> dict[str, Any]:
    """The digest a full reload of the topic gives (the loader's first-load path)."""
    fresh = ResultLoader(hub.log, hub.projections.store("analytics"), row_key=ROW_KEY)
    fresh._full(PAYMENT_AGGREGATES, [TABLE])
    return fresh.digest(PAYMENT_AGGREGATES, TABLE)


def test_a_second_load_reads_only_the_new_records_and_the_views_stay_exact(
    hub: Hub, tmp_path: Path
) -> None:
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(
        topic,
        [
            partial("A1", 0, 1, "9100.00", 3),
            partial("A1", 0, 2, "18200.50", 7),  # A1's running total replaces its first value
            partial("A1", 1, 1, "9000.00", 2),  # A1 from another source partition: summed
            partial("A2", 0, 1, "9500.00", 4),
        ],
    )
    memory = tmp_path / "loader"
    loader = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 3}
    assert loader.read_records == 4
    assert merged(loader) == {
        "A1": (3, Decimal("27200.50")),
        "A2": (1, Decimal("9500.00")),
    }

    # new results: A1 partition 0 moves on, A3 appears
    hub.log.append(topic, [partial("A1", 0, 3, "27700.50", 9), partial("A3", 0, 1, "9999.99", 11)])
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 2}
    assert loader.read_records == 2  # only what is new
    assert merged(loader) == {
        "A1": (4, Decimal("36700.50")),
        "A2": (1, Decimal("9500.00")),
        "A3": (1, Decimal("9999.99")),
    }
    live = loader.digest(PAYMENT_AGGREGATES, TABLE)

    # nothing new: nothing read, nothing written
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 0}
    assert loader.read_records == 0
    assert loader.digest(PAYMENT_AGGREGATES, TABLE) == live

    # a restarted loader resumes from the committed positions, stored with the rows, and its
    # memory file: it reads only the new record, not the topic's prefix
    restarted = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    assert restarted.positions(PAYMENT_AGGREGATES) == {f"{topic}/0": 6}
    saved = (memory / "payment_aggregates.json").read_text()
    hub.log.append(topic, [partial("A2", 0, 2, "19000.00", 12)])
    assert restarted.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
    assert (restarted.read_records, restarted.prefix_records) == (1, 0)
    assert merged(restarted)["A2"] == (2, Decimal("19000.00"))
    incremental = restarted.digest(PAYMENT_AGGREGATES, TABLE)
    assert incremental == full_reload_digest(hub)
    assert incremental["rows"] == 3

    # a memory file behind the store's positions (a crash after the store write, before the
    # file) is not trusted: the prefix is read once, and the views stay exact
    (memory / "payment_aggregates.json").write_text(saved)
    again = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    hub.log.append(topic, [partial("A3", 0, 2, "19999.98", 13)])
    assert again.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
    assert (again.read_records, again.prefix_records) == (1, 7)
    assert merged(again)["A3"] == (2, Decimal("19999.98"))
    assert again.digest(PAYMENT_AGGREGATES, TABLE) == full_reload_digest(hub)


def test_a_memory_file_edited_without_the_key_is_not_trusted(hub: Hub, tmp_path: Path) -> None:
    """The memory file carries a MAC under the hub's derived key: an edited value with the
    positions kept would otherwise become the base of the next load's sums."""
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(topic, [partial("A1", 0, 1, "9100.00", 3), partial("A2", 0, 1, "9500.00", 4)])
    memory, key = tmp_path / "loader", b"k" * 32
    store = hub.projections.store("analytics")
    assert ResultLoader(hub.log, store, memory=memory, memory_key=key, row_key=ROW_KEY).load(
        PAYMENT_AGGREGATES, [TABLE]
    ) == {"aml_daily": 2}
    path = memory / "payment_aggregates.json"
    sealed = json.loads(path.read_text())
    assert set(sealed) == {"mac", "state"} and "9100.00" in sealed["state"]

    def load_after(text: str, with_key: bytes | None) -> ResultLoader:
        path.write_text(text)
        loader = ResultLoader(hub.log, store, memory=memory, memory_key=with_key, row_key=ROW_KEY)
        hub.log.append(topic, [partial("A1", 0, 2, "18200.00", 5)])
        assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
        return loader

    # the state edited (A1's loaded total lowered), the MAC left as it was: refused, the prefix
    # is read from the topic and the sums stay right
    forged = json.dumps({**sealed, "state": sealed["state"].replace("9100.00", "100.00")})
    loader = load_after(forged, key)
    assert loader.prefix_records == 2
    assert merged(loader)["A1"] == (2, Decimal("18200.00"))
    assert loader.digest(PAYMENT_AGGREGATES, TABLE) == full_reload_digest(hub)
    # the same edit with no MAC at all: refused
    assert load_after(json.loads(forged)["state"], key).prefix_records > 0
    # a valid file read under another key: refused (the loader then saves it under its own key)
    assert load_after(path.read_text(), b"x" * 32).prefix_records > 0
    # an untouched file under the reader's key is used as before: no prefix read
    assert load_after(path.read_text(), b"x" * 32).prefix_records == 0


def test_flink_status_and_metrics_show_committed_offsets_loader_position_and_lag(
    hub: Hub,
) -> None:
    """``flink_lags`` (what ``hub projection status --engine flink`` and ``/metrics`` read):
    Flink's committed offsets of the projection's consumer group, the records past them, the
    result loader's committed position in ``flink.<table>`` and the result records past it."""
    from core.ports.eventlog import TopicPartition
    from hub.flink_metrics import flink_gauges
    from projections.flink.compile import group_id
    from projections.flink.service import flink_lags
    from tests.differential.test_flink_projections import batches

    for tenant, events in batches():
        hub.publisher.publish("payments", events, producer="test", tenant=tenant)
    ends = hub.log.end_offsets("payments")
    # Flink's checkpoint committed every partition but the first, which it read 2 records of
    first = min(ends)
    at = {TopicPartition("payments", p): (2 if p == first else e) for p, e in ends.items()}
    hub.log.commit_offsets(group_id(PAYMENT_AGGREGATES), at)
    behind = ends[first] - 2  # offsets past the position (transaction markers included)
    # the loader folded two result records; one more is waiting
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(topic, [partial("A1", 0, 1, "9100.00", 3), partial("A2", 0, 1, "9500", 4)])
    store = hub.projections.store("analytics")
    ResultLoader(hub.log, store, row_key=ROW_KEY).load(PAYMENT_AGGREGATES, [TABLE])
    hub.log.append(topic, [partial("A1", 0, 2, "18200.00", 5)])

    (got,) = flink_lags(hub.log, [PAYMENT_AGGREGATES], store)
    assert got["positions"] == {f"payments/{tp.partition}": o for tp, o in at.items()}
    assert got["lag"] == behind > 0
    assert got["loader"] == {"positions": {f"{topic}/0": 2}, "lag": 1}

    samples = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in flink_gauges(hub)
        for s in m.samples
    }
    label = (("projection", "payment_aggregates"),)
    assert samples[("hub_flink_lag_records", label)] == behind
    assert samples[("hub_flink_loader_lag_records", label)] == 1
    where = (("partition", "0"), ("projection", "payment_aggregates"), ("topic", topic))
    assert samples[("hub_flink_loader_offset", where)] == 2
    for tp, offset in at.items():
        where = (
            ("partition", str(tp.partition)),
            ("projection", "payment_aggregates"),
            ("topic", "payments"),
        )
        assert samples[("hub_flink_committed_offset", where)] == offset
    # ... and /metrics' collector carries them when the engine is Flink (and not otherwise)
    from hub.observability import HubCollector, ReadinessCache

    def scraped() -> set[str]:
        return {m.name for m in HubCollector(hub, ReadinessCache(hub)).collect()}

    assert not any(n.startswith("hub_flink_") for n in scraped())
    hub.settings = hub.settings.model_copy(update={"projection_engine": "flink"})
    assert {
        "hub_flink_committed_offset",
        "hub_flink_lag_records",
        "hub_flink_loader_offset",
        "hub_flink_loader_lag_records",
    } <= scraped()


# -- deletes and versions (``projections.flink.results``: signed deletes, src_last per key) -------
KEY_COLUMNS = (*TABLE.key, "src_topic", "src_partition")


def tombstone(account: str, src_partition: int, signed_as_of: int | None = None) -> Record:
    """A null value under the partial row's key; with ``signed_as_of`` the hub's delete header
    over the key and that version (what only the row key's holder can make)."""
    from projections.flink.rowmac import DELETE_HEADER, delete_header

    key = json.loads(partial(account, src_partition, 1, "1", 0).key or b"")
    headers: tuple[tuple[str, bytes], ...] = ()
    if signed_as_of is not None:
        values = [key[n] for n in KEY_COLUMNS]
        headers = ((DELETE_HEADER, delete_header(ROW_KEY, TABLE.name, values, signed_as_of)),)
    return Record(value=None, key=json.dumps(key, sort_keys=True).encode(), headers=headers)


def loaded_with(hub: Hub, records: list[Record], memory: Path | None = None) -> ResultLoader:
    topic = result_topic(TABLE)
    hub.log.create_topic(topic, 1)
    hub.log.append(topic, records)
    loader = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=memory, row_key=ROW_KEY
    )
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    return loader


def test_an_unsigned_tombstone_deletes_nothing_and_forces_no_reload(hub: Hub) -> None:
    """Before, any producer to ``flink.*`` deleted a loaded row with a null value (and the full
    reload it forced dropped the key). Now a tombstone without the hub's delete signature, or
    with one forged, for another key, or of another table, is ignored and counted."""
    from projections.flink.rowmac import DELETE_HEADER, delete_header

    loader = loaded_with(
        hub, [partial("A1", 0, 2, "18200.00", 7), partial("A2", 0, 1, "9500.00", 4)]
    )
    plain = tombstone("A1", 0)
    a2 = json.loads(tombstone("A2", 0).key or b"")
    signed_a2 = delete_header(ROW_KEY, TABLE.name, [a2[n] for n in KEY_COLUMNS], 99)
    guessed = delete_header(b"\0" * 32, TABLE.name, [a2[n] for n in KEY_COLUMNS], 99)
    other_table = delete_header(ROW_KEY, "aml_other", [a2[n] for n in KEY_COLUMNS], 99)
    hub.log.append(
        result_topic(TABLE),
        [
            plain,
            Record(value=None, key=plain.key, headers=((DELETE_HEADER, guessed),)),
            Record(value=None, key=plain.key, headers=((DELETE_HEADER, signed_a2),)),  # A2's
            Record(value=None, key=plain.key, headers=((DELETE_HEADER, other_table),)),
            Record(value=None, key=plain.key, headers=((DELETE_HEADER, b"not json"),)),
        ],
    )
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 0}
    assert loader.read_records == 5  # only the new records: no full reload
    assert loader.ignored_tombstones == 5
    assert merged(loader) == {"A1": (2, Decimal("18200.00")), "A2": (1, Decimal("9500.00"))}
    # a full reload (a fresh store's first load) ignores them too
    assert full_reload_digest(hub) == loader.digest(PAYMENT_AGGREGATES, TABLE)


def test_a_signed_delete_removes_the_row_and_no_replay_brings_it_back(
    hub: Hub, tmp_path: Path
) -> None:
    memory = tmp_path / "loader"
    loader = loaded_with(
        hub, [partial("A1", 0, 2, "18200.00", 7), partial("A2", 0, 1, "9500.00", 4)], memory
    )
    topic = result_topic(TABLE)
    # a delete as of a version older than the row held does not remove it
    hub.log.append(topic, [tombstone("A1", 0, signed_as_of=6)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert "A1" in merged(loader) and loader.stale == 1
    # as of the held version: removed (a full reload: a delta row cannot retract)
    hub.log.append(topic, [tombstone("A1", 0, signed_as_of=7)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert merged(loader) == {"A2": (1, Decimal("9500.00"))}
    # the deleted row replayed (genuine, MAC valid): refused, by this loader, by one restarted
    # with its memory file, and by one restarted without it (the topic's prefix re-read)
    replay = partial("A1", 0, 2, "18200.00", 7)
    hub.log.append(topic, [replay])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert "A1" not in merged(loader) and loader.stale == 2
    for kept in (memory, None):
        hub.log.append(topic, [replay])
        again = ResultLoader(
            hub.log, hub.projections.store("analytics"), memory=kept, row_key=ROW_KEY
        )
        again.load(PAYMENT_AGGREGATES, [TABLE])
        assert "A1" not in merged(again) and again.stale == 1
        assert again.prefix_records == (0 if kept else len(hub.log.read(topic, 0, 0, 100)) - 1)
    assert full_reload_digest(hub) == loader.digest(PAYMENT_AGGREGATES, TABLE)
    # the job folding A1 further writes a newer row: loaded again; the old delete replayed
    # afterwards (signed, but as of an older version) removes nothing
    hub.log.append(topic, [partial("A1", 0, 3, "27300.00", 9), tombstone("A1", 0, 7)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert merged(loader)["A1"] == (3, Decimal("27300.00"))
    assert full_reload_digest(hub) == loader.digest(PAYMENT_AGGREGATES, TABLE)


def test_an_older_genuine_row_is_refused_and_a_newer_one_applied(hub: Hub) -> None:
    """Before, re-sending A1's first genuine row (events 1) after its running total (events
    2) rolled the total back until the job wrote A1 again."""
    loader = loaded_with(hub, [partial("A1", 0, 1, "9100.00", 3), partial("A1", 0, 2, "18200", 7)])
    topic = result_topic(TABLE)
    hub.log.append(topic, [partial("A1", 0, 1, "9100.00", 3)])
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 0}
    assert merged(loader) == {"A1": (2, Decimal("18200.00"))}
    assert loader.stale == 1 and "older than its key's" in loader.refusals[-1][3]
    assert loader.refused == 0  # genuine, so not counted as a forgery
    # the old row and the newer one in one batch, in either order: the newer wins
    hub.log.append(
        topic,
        [
            partial("A1", 0, 3, "27300.00", 9),
            partial("A1", 0, 1, "9100.00", 3),
            partial("A2", 0, 1, "5.00", 4),
        ],
    )
    assert loader.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 2}
    assert merged(loader) == {"A1": (3, Decimal("27300.00")), "A2": (1, Decimal("5.00"))}
    assert loader.stale == 2
    # an equal version is the same fold (a restart from a checkpoint re-emits it): accepted
    hub.log.append(topic, [partial("A1", 0, 3, "27300.00", 9)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert loader.stale == 2 and merged(loader)["A1"] == (3, Decimal("27300.00"))
    assert full_reload_digest(hub) == loader.digest(PAYMENT_AGGREGATES, TABLE)


def test_a_job_rerun_from_the_start_never_shows_a_partial_total_and_converges(
    hub: Hub, tmp_path: Path
) -> None:
    """A job re-run without state (earliest offsets) re-emits every key from its first event:
    the loader keeps the newest total it holds until the re-run passes it, then follows; at the
    re-run's end the views equal the first run's, and a full reload's."""
    first_run = [
        partial("A1", 0, 1, "9100.00", 3),
        partial("A1", 0, 2, "18200.00", 7),
        partial("A2", 0, 1, "9500.00", 4),
    ]
    loader = loaded_with(hub, first_run, tmp_path / "loader")
    before = loader.digest(PAYMENT_AGGREGATES, TABLE)
    topic = result_topic(TABLE)
    # the re-run stopped (or the loader ran) mid-way: A1 only at its first event so far
    hub.log.append(topic, [first_run[0]])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert merged(loader)["A1"] == (2, Decimal("18200.00"))  # not rolled back to 9100
    # the re-run goes on past where the first run ended (new events since)
    hub.log.append(topic, [*first_run[1:], partial("A1", 0, 3, "27300.00", 9)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert merged(loader) == {"A1": (3, Decimal("27300.00")), "A2": (1, Decimal("9500.00"))}
    assert loader.stale == 1  # A1's first row; the equal versions were accepted
    assert full_reload_digest(hub) == loader.digest(PAYMENT_AGGREGATES, TABLE) != before
    restarted = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=tmp_path / "loader", row_key=ROW_KEY
    )
    assert restarted.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 0}
    # a memory file of a loader that named keys by their record bytes (no "keys") is not
    # used: the loaded rows are read once from the topic, and a new row is a delta of its key
    path = tmp_path / "loader" / "payment_aggregates.json"
    state = json.loads(path.read_text())
    assert state.pop("keys") == "canonical-columns/v2"
    path.write_text(json.dumps(state))
    hub.log.append(topic, [partial("A2", 0, 2, "19000.00", 12)])
    older = ResultLoader(
        hub.log, hub.projections.store("analytics"), memory=tmp_path / "loader", row_key=ROW_KEY
    )
    assert older.load(PAYMENT_AGGREGATES, [TABLE]) == {"aml_daily": 1}
    assert older.prefix_records > 0
    assert merged(older)["A2"] == (2, Decimal("19000.00"))
    assert full_reload_digest(hub) == older.digest(PAYMENT_AGGREGATES, TABLE)


def test_a_version_respelled_gains_nothing(hub: Hub) -> None:
    """A genuine row's ``src_last`` respelled (3 as 3.0: the same number, so its MAC still
    holds) is no version at all: older than the row held, never newer. (Two ``hub_row_delete``
    headers on one tombstone: the hub's own log refuses the append; from Kafka the loader
    reads no copy and ignores the tombstone.)"""
    loader = loaded_with(hub, [partial("A1", 0, 2, "18200.00", 7)])
    old = partial("A1", 0, 1, "9100.00", 3)
    respelled = (old.value or b"").replace(b'"src_last": 3', b'"src_last": 3.0')
    assert respelled != old.value
    hub.log.append(result_topic(TABLE), [Record(respelled, key=old.key)])
    loader.load(PAYMENT_AGGREGATES, [TABLE])
    assert merged(loader) == {"A1": (2, Decimal("18200.00"))}
    assert (loader.stale, loader.refused) == (1, 0)
