"""Concurrent ``Publisher.publish`` calls for one topic are prepared and appended together
(``ingest.coalesce``): each caller gets the metadata of exactly its own records, contiguous and
in order, and a bad record fails only its own call, named by its index in that call.

The test holds the log's write lock while the calls queue, so that the group is certain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.errors import HubError
from core.events import OutgoingEvent
from hub.bootstrap import Hub
from tests.service.accounts import open_accounts
from tests.service.test_ingest_concurrent import trade


def queued_behind_a_commit(hub: Hub, fns: list[Callable[[], Any]]) -> list[Any]:
    """Run ``fns[0]`` while the test holds the log's write lock (its append waits), then the
    others one by one once each queued behind it; release. Their results, or exceptions."""
    co = hub.publisher._coalescer("trades", "t", "default")
    out: list[Any] = [None] * len(fns)

    def run(k: int) -> None:
        try:
            out[k] = fns[k]()
        except BaseException as exc:  # returned to the test
            out[k] = exc

    def until(ok: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not ok():
            assert time.monotonic() < deadline, "a call did not queue within 60 s"
            time.sleep(0.005)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(fns))]
    with hub.log._lock:  # type: ignore[attr-defined]
        threads[0].start()
        until(lambda: co._groups.leading and not co._groups.queued)
        for k, t in enumerate(threads[1:], start=1):
            t.start()
            until(lambda k=k: co._groups.queued == k)  # type: ignore[misc]
    for t in threads:
        t.join(120)
    return out


def values(hub: Hub, metas: list[Any]) -> list[str]:
    out = []
    for m in metas:
        (rec,) = hub.log.read(m.topic, m.partition, m.offset, 1)
        out.append(hub.reader.decode(rec)["value"]["trade_id"])
    return out


def test_queued_publishes_share_one_append_and_each_gets_its_own_records(hub: Hub) -> None:
    open_accounts(hub, ["ACC-1"])
    co = hub.publisher._coalescer("trades", "t", "default")
    calls, appends = co.calls, co.appends
    sizes = [3, 50, 1, 7, 20]

    def one(k: int) -> Callable[[], Any]:
        events = [OutgoingEvent(value=trade(1000 * k + i)) for i in range(sizes[k])]
        return lambda: hub.publisher.publish("trades", events, "t")

    answers = queued_behind_a_commit(hub, [one(k) for k in range(len(sizes))])
    for k, metas in enumerate(answers):
        assert not isinstance(metas, BaseException), metas
        assert values(hub, metas) == [f"T-{1000 * k + i}" for i in range(sizes[k])]
    # the first alone (it led while the others queued), the other four in one append
    assert (co.calls - calls, co.appends - appends) == (5, 2)


def test_a_bad_record_fails_only_its_own_call(hub: Hub) -> None:
    open_accounts(hub, ["ACC-1"])
    bad = trade(2001) | {"quantity": "not a number"}

    def one(k: int, events: list[OutgoingEvent] | None = None) -> Callable[[], Any]:
        evs = events or [OutgoingEvent(value=trade(1000 * k + i)) for i in range(4)]
        return lambda: hub.publisher.publish("trades", evs, "t")

    failing = [OutgoingEvent(value=trade(2000)), OutgoingEvent(value=bad)]
    answers = queued_behind_a_commit(hub, [one(0), one(1), one(2, failing), one(3)])
    assert isinstance(answers[2], HubError), answers[2]
    assert answers[2].message.startswith("Record 1:"), answers[2].message
    for k in (0, 1, 3):
        assert values(hub, answers[k]) == [f"T-{1000 * k + i}" for i in range(4)]
    ids = [r.offset for p in hub.log.end_offsets("trades") for r in hub.log.scan("trades", p)]
    assert len(ids) == 12  # nothing of the failed call was stored
