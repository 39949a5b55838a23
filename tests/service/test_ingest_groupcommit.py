"""Group commit of ingest batches of one topic (``ingest.groupcommit``): batches that queue while
another holds the topic's dedupe section share one log transaction, each gets the outcome it
would get committed alone in arrival order, and a batch whose commit fails fails alone.

The tests hold the section themselves while the batches queue, so that the group is certain."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from hub.api.ingest_batch import ingest_body
from hub.bootstrap import Hub
from ingest.pipeline import IngestResult
from tests.service.accounts import open_accounts
from tests.service.test_ingest_concurrent import body, stored_ids, trade

BATCHES = 5


def queued_together(hub: Hub, fns: list[Callable[[], Any]]) -> list[Any]:
    """Run each of ``fns`` in its own thread while the test holds the ``trades`` dedupe
    section, starting the next once the previous one queued (so arrival order is list order),
    then release the section: one leader commits them all. Their results, or exceptions."""
    committer = hub.ingest.committer("trades")
    out: list[Any] = [None] * len(fns)

    def run(k: int) -> None:
        try:
            out[k] = fns[k]()
        except BaseException as exc:  # returned to the test
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(fns))]
    with hub.ingest.deduping("trades"):
        for k, t in enumerate(threads):
            t.start()
            deadline = time.monotonic() + 60
            while len(committer._queue) < k + 1:
                assert time.monotonic() < deadline, "a batch did not queue within 60 s"
                time.sleep(0.005)
    for t in threads:
        t.join(120)
    return out


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "per-record"])
def test_queued_batches_share_one_commit_with_arrival_order_outcomes(
    hub: Hub, columnar: bool
) -> None:
    open_accounts(hub, ["ACC-1"])
    committer = hub.ingest.committer("trades")
    commits, batches = committer.commits, committer.batches

    def one(k: int) -> Callable[[], IngestResult]:
        return lambda: ingest_body(
            hub.ingest,
            "trades",
            body(k),
            ndjson=False,
            source="t",
            producer="t",
            tenant="default",
            columnar=columnar,
        )

    answers = queued_together(hub, [one(k) for k in range(BATCHES)])
    assert all(isinstance(a, IngestResult) for a in answers), answers
    # as if committed alone in arrival order: the first stores the 40 shared trades
    assert [(a.accepted, a.duplicates) for a in answers] == [(60, 0)] + [(20, 40)] * (BATCHES - 1)
    assert answers[1].duplicate_indexes == list(range(40))
    assert (committer.commits - commits, committer.batches - batches) == (1, BATCHES)
    ids = stored_ids(hub)
    assert len(ids) == len(set(ids)) == 40 + BATCHES * 20


def test_an_event_id_of_an_earlier_batch_in_the_group_is_a_duplicate(hub: Hub) -> None:
    open_accounts(hub, ["ACC-1"])

    def one(k: int) -> Callable[[], IngestResult]:
        # the same event id on different trades: only the event-id window can tell
        events = [{"value": trade(100 * k + i), "event_id": f"E-{i}"} for i in range(3)]
        raw = json.dumps({"events": events}).encode()
        return lambda: ingest_body(
            hub.ingest,
            "trades",
            raw,
            ndjson=False,
            source="t",
            producer="t",
            tenant="default",
            columnar=False,
        )

    answers = queued_together(hub, [one(k) for k in range(3)])
    assert [(a.accepted, a.duplicates) for a in answers] == [(3, 0), (0, 3), (0, 3)]
    assert len(stored_ids(hub)) == 3


def test_a_batch_whose_commit_fails_fails_alone(hub: Hub) -> None:
    """The group's transaction fails (one batch's replay marks raise inside it): nothing of it
    is stored, then each batch is decided again and committed alone; the failing one gets its
    own error, the others their outcomes as if the failing one had never come."""
    open_accounts(hub, ["ACC-1"])
    committer = hub.ingest.committer("trades")
    commits = committer.commits

    class Boom(Exception):
        pass

    def marks(found: Any) -> Any:
        raise Boom("the replay marks could not be written")

    def one(k: int, failing: bool = False) -> Callable[[], IngestResult]:
        from hub.api.ingest_batch import reference_records

        return lambda: hub.ingest.ingest(
            "trades",
            reference_records(body(k), ndjson=False),
            source="t",
            producer="t",
            marks=marks if failing else None,
        )

    answers = queued_together(hub, [one(0, failing=True), one(1), one(2)])
    assert isinstance(answers[0], Boom), answers[0]
    # batch 0 stored nothing: batch 1 is the first to store the shared trades
    assert [(a.accepted, a.duplicates) for a in answers[1:]] == [(60, 0), (20, 40)]
    assert committer.commits - commits == 2  # the two that succeeded, one by one
    ids = stored_ids(hub)
    assert len(ids) == len(set(ids)) == 40 + 2 * 20
    # and the topic commits in groups again afterwards
    again = queued_together(hub, [one(3), one(4)])
    assert [(a.accepted, a.duplicates) for a in again] == [(20, 40), (20, 40)]
    assert committer.commits - commits == 3
