"""The cold tier: closed segments offloaded to the object store, the hot log cut behind them,
and a consumer, ``hub tail`` and a projection rebuild reading past the hot log transparently;
the ledger still verifies; a changed byte in a segment fails the read naming the object;
retention cuts the cold tier too."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.consumer import Consumer
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.publish import OutgoingEvent
from storage.tiering import ColdTierCorrupt
from tests.cli_keys import admin_args

ACCOUNTS = 240
SEGMENT = 20


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_COLD_TIER", "true")
    monkeypatch.setenv("HUB_TIER_SEGMENT_RECORDS", str(SEGMENT))
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "objects"))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    d = tmp_path / "hub"
    h = open_hub(d)
    try:
        events = [
            OutgoingEvent(
                event_type="hub.accounts.AccountOpened",
                value={
                    "account_id": f"ACC-{i:05d}",
                    "customer_name": f"Name {i}",
                    "email": f"a{i}@example.org",
                    "date_of_birth": "1980-02-03",
                    "country": "GB",
                    "kyc_level": "STANDARD",
                    "risk_rating": "LOW",
                    "base_currency": "EUR",
                    "opened_at": "2026-11-25T10:00:00Z",
                },
            )
            for i in range(ACCOUNTS)
        ]
        for start in range(0, ACCOUNTS, 40):
            h.publisher.publish("accounts", events[start : start + 40], producer="test")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    return d


def open_hub(d: Path) -> Hub:
    return bootstrap(load_settings(data_dir=d))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def offload(data: Path) -> list[dict[str, object]]:
    r = run(*admin_args(data), "tier", "offload", "--topic", "accounts", "--trim-hot")
    assert r.exit_code == 0, r.output
    out: list[dict[str, object]] = json.loads(r.stdout)
    return out


def test_reads_past_the_hot_log_come_from_the_cold_tier(data: Path) -> None:
    h = open_hub(data)
    try:
        h.projections.run(["accounts"])
        before = h.projections.digest("accounts", save=False)
    finally:
        h.close()
    rows = offload(data)
    assert sum(int(str(r["records_offloaded"])) for r in rows) > 0
    h = open_hub(data)
    try:
        hot = h.ledger.log
        starts = hot.beginning_offsets("accounts")
        assert any(s > 0 for s in starts.values())  # the hot log was cut
        part = max(starts, key=lambda p: starts[p])
        assert all(r.offset >= starts[part] for r in hot.read("accounts", part, 0, 5))
        cold_first = h.log.read("accounts", part, 0, 1)[0]
        assert cold_first.offset < starts[part]  # an offset that only the cold tier holds
        assert h.log.beginning_offsets("accounts")[part] == 0

        consumer = Consumer(h.log, "cold-reader", ["accounts"])
        seen = []
        while batch := consumer.poll(1000):
            seen.extend(batch)
        assert len({(r.partition, r.offset) for r in seen}) == ACCOUNTS

        h.projections.rebuild("accounts")
        assert h.projections.digest("accounts", save=False) == before
    finally:
        h.close()

    r = run(*admin_args(data), "tail", "accounts", "--offset", "0", "-n", str(ACCOUNTS))
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == ACCOUNTS
    r = run(*admin_args(data), "ledger", "verify")
    assert r.exit_code == 0, r.output


def test_a_changed_segment_byte_fails_naming_the_object(data: Path, tmp_path: Path) -> None:
    offload(data)
    seg = sorted((tmp_path / "objects" / "tier" / "accounts").rglob("*.seg"))[0]
    raw = bytearray(seg.read_bytes())
    raw[-1] ^= 0x01
    seg.chmod(0o644)
    seg.write_bytes(bytes(raw))
    h = open_hub(data)
    try:
        part = int(seg.parent.name)
        with pytest.raises(ColdTierCorrupt) as err:
            h.log.read("accounts", part, int(seg.stem), 5)
        assert seg.relative_to(tmp_path / "objects").as_posix() in err.value.message
    finally:
        h.close()


def test_retention_cuts_the_cold_tier_too(data: Path) -> None:
    offload(data)
    h = open_hub(data)
    try:
        part = 0
        cold_end = h.ledger.log.beginning_offsets("accounts")[part]
        assert cold_end >= SEGMENT
        new_start = h.log.delete_records_before("accounts", part, SEGMENT)
        assert new_start == SEGMENT
        assert h.log.read("accounts", part, 0, 1)[0].offset >= SEGMENT
    finally:
        h.close()


def test_the_retention_job_cuts_both_tiers_and_the_ledger_verifies(data: Path) -> None:

    offload(data)
    h = open_hub(data)
    try:
        keep = 10
        h.governance.set_policy("topic:accounts", max_records=keep, actor="alice")
        ends = h.log.end_offsets("accounts")
        h.retention.run()
        starts = h.log.beginning_offsets("accounts")
        for part, end in ends.items():
            assert starts[part] == max(0, end - keep)
            got = h.log.read("accounts", part, 0, 1000)
            assert all(r.offset >= starts[part] for r in got)
        again = h.retention.run()
        assert not again.deleted  # nothing left to cut: no second entry
    finally:
        h.close()
    r = run(*admin_args(data), "ledger", "verify")
    assert r.exit_code == 0, r.output


def test_an_append_through_the_tiered_log_wakes_a_waiter_at_once(data: Path) -> None:
    """The projection runner and the console's stream wait on the log for appends: through the
    tiered log they must be woken by the append, not by the end of their timeout."""
    h = open_hub(data)
    try:
        log = h.log
        seen = log.append_generation(["accounts"])
        woke: list[float] = []

        def wait() -> None:
            t0 = time.monotonic()
            log.wait_for_append(seen, 30.0, ["accounts"])
            woke.append(time.monotonic() - t0)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        h.publisher.publish(
            "accounts",
            [
                OutgoingEvent(
                    event_type="hub.accounts.AccountOpened",
                    value={
                        "account_id": "ACC-99999",
                        "customer_name": "Late",
                        "email": "late@example.org",
                        "date_of_birth": "1980-02-03",
                        "country": "GB",
                        "kyc_level": "STANDARD",
                        "risk_rating": "LOW",
                        "base_currency": "EUR",
                        "opened_at": "2026-11-25T10:00:00Z",
                    },
                )
            ],
            producer="test",
        )
        waiter.join(35)
        assert woke and woke[0] < 10.0, woke
        assert log.append_generation(["accounts"]) != seen
    finally:
        h.close()
