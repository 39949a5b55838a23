"""A genuine state record copied into its partition again must not roll the folded state back.

Red team (session 15), Kafka footprint: every record the hub writes carries a MAC, so a record
written by someone with produce access to the broker is refused on ``hub.*`` topics; but the MAC
cannot bind the offset (the broker gives it after), so a correctly sealed record can be copied
into the same partition again. A replayed "config changed" or "policy activated" event would
put an old value back in force, with nothing on the ledger saying anyone changed it. State
topics now fold each event id once (``TopicFold(once_by=ce_id)``). The embedded log stands in
for Kafka here: the copy is appended with the same key, value and headers, as a broker replay
would deliver it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from adapters.sqlite_log import SqliteEventLog
from core.fold import TopicFold
from core.ports.eventlog import Record
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings

ALICE = Principal("alice", frozenset({"security_admin"}))
RULES = "rules:trades-value"


def test_a_fold_applies_each_event_id_once_and_retries_a_failed_apply(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite", mac_key=b"k" * 32)
    log.create_topic("state", 1)
    rows = [(b"a", b"1"), (b"b", b"2"), (b"a", b"1"), (None, b"3"), (None, b"4")]
    log.append(
        "state",
        [Record(v, None, (("ce_id", i),) if i else (), None, 0) for i, v in rows],
    )
    seen: list[bytes] = []
    fail = [True]

    def apply(rec: Any) -> None:
        if rec.value == b"2" and fail[0]:
            fail[0] = False
            raise RuntimeError("transient")
        seen.append(rec.value)

    fold = TopicFold(log, "state", apply, once_by="ce_id")
    with contextlib.suppress(RuntimeError):
        fold.catch_up()
    fold.catch_up()
    # b"1" once (its copy skipped), b"2" applied on the retry, records without an id as before
    assert seen == [b"1", b"2", b"3", b"4"]
    log.close()


def _rules_count(data: Path) -> int:
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        return len(h.ingest.rules.get("trades-value").rules)
    finally:
        h.close()


def test_a_replayed_config_change_does_not_put_the_old_rules_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        full = h.ingest.rules.get("trades-value").as_dict()
        fewer = {**full, "rules": full["rules"][:2]}
        before = h.log.end_offsets("hub.config")
        assert h.config_changes.propose(ALICE, RULES, fewer, "fewer").status == "applied"
        after = h.log.end_offsets("hub.config")
        assert h.config_changes.propose(ALICE, RULES, full, "all again").status == "applied"
        assert len(h.ingest.rules.get("trades-value").rules) == len(full["rules"]) > 2
        # every record the first change added to hub.config, copied into its partition again
        for part, end in after.items():
            start = before.get(part, 0)
            for old in h.log.read("hub.config", part, start, end - start):
                if old.offset >= end:  # a read counts records, not offsets: the second change
                    break
                h.log.append("hub.config", [Record(old.value, old.key, old.headers, None, part)])
    finally:
        h.close()
    assert _rules_count(data) == len(full["rules"])  # a fresh fold: the copy changes nothing
