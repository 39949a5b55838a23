"""Batches of one topic ingested in several threads at once must not store a natural key twice.

Finding (medium, session 12): ``IngestPipeline`` read a topic's dedupe windows, committed, and
only then added the batch's keys, with nothing holding other threads out between. Six threads
ingesting the same 40 trade ids at once (``ingest_body``, as the HTTP route, a file watcher or a
connector does) stored each of them up to six times (320 records accepted instead of 160). The
fix: ``IngestPipeline.deduping(topic)`` holds the section from the window read through the commit
to the window update, per topic, on the per-record and the columnar path alike.
"""

from __future__ import annotations

import gc

import pytest

from hub.api.ingest_batch import ingest_body
from hub.bootstrap import Hub
from tests.service.accounts import open_accounts
from tests.service.test_ingest_concurrent import THREADS, at_once, body, stored_ids


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "per-record"])
def test_batches_of_one_topic_in_threads_store_a_shared_key_once(hub: Hub, columnar: bool) -> None:
    open_accounts(hub, ["ACC-1"])
    gc_was = gc.isenabled()

    def one(k: int) -> tuple[int, int]:
        r = ingest_body(
            hub.ingest,
            "trades",
            body(k),
            ndjson=False,
            source="t",
            producer="t",
            tenant="default",
            columnar=columnar,
        )
        return r.accepted, r.duplicates

    answers = at_once(THREADS, one)
    assert sum(a for a, _ in answers) == 40 + THREADS * 20
    assert sum(d for _, d in answers) == (THREADS - 1) * 40
    ids = stored_ids(hub)
    assert len(ids) == len(set(ids)) == 40 + THREADS * 20
    assert gc.isenabled() == gc_was  # the batches' shared pause ended with the last of them
