"""Session 25, red team (docs/benchmarks/s25-redteam-attacker25.md): the ingest rate, raced.

``IngestRateLimiter`` checked a batch against the tenant's bucket when it was decided and took
the tokens only once it was stored (``check``, then ``charge`` after the commit). A publisher
key that sends its batches at once (one group commit takes every batch queued behind the
topic's dedupe section; ``POST /v1/topics/{topic}/events`` publishes between the two) had
every batch pass the same full bucket: N concurrent batches stored N times the burst, however
small the rate. Now the tokens are taken in the same step as the check (within the process),
and given back when the batch is not written, so batches decided side by side never pass the
bucket together, and a failed commit costs the tenant nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.errors import HubError
from core.events import tenant_of
from core.tenant_quota import TenantRateLimited
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import QUOTE, basic, issue_key
from tests.adversarial.test_s24_quota_concurrent import _failing, _ingest, _stored_bytes, _together

# One batch of the s24 helper (20 records) fills the bucket, refilled at 0.001 a second: the
# test runs long before a single record comes back.
RATE = {
    "HUB_PROJECTION_AUTOSTART": "false",
    "HUB_INGEST_RECORDS_PER_S_PER_TENANT": "0.001",
    "HUB_INGEST_RECORDS_BURST_PER_TENANT": "20",
}


@contextmanager
def limited(data_dir: Path) -> Iterator[Hub]:
    hub = bootstrap(load_settings(environ=RATE, data_dir=data_dir))
    try:
        yield hub
    finally:
        hub.close()


def _records(hub: Hub, tenant: str = "globex") -> int:
    n = 0
    for p, start in hub.log.beginning_offsets("quotes").items():
        n += sum(1 for r in hub.log.scan("quotes", p, start) if tenant_of(r) == tenant)
    return n


def test_batches_decided_in_one_group_commit_share_one_bucket(tmp_path: Path) -> None:
    with limited(tmp_path / "d") as hub:
        out = _together(hub, [lambda k=k: _ingest(hub, f"G{k:02d}-") for k in range(6)])
        refused = [r for r in out if isinstance(r, TenantRateLimited)]
        ok = [r for r in out if not isinstance(r, BaseException)]
        assert len(ok) == 1 and len(refused) == 5, out
        assert all("HUB_INGEST_RECORDS_PER_S_PER_TENANT" in str(e) for e in refused)
        assert _records(hub) == 20  # the burst, not six times it


def test_a_batch_whose_commit_fails_gives_its_tokens_back(tmp_path: Path) -> None:
    with limited(tmp_path / "d") as hub:
        failed = _failing(hub, lambda: HubError("disk said no"))
        with pytest.raises(HubError):
            _ingest(hub, "X00-")
        assert failed == [1] and _records(hub) == 0
        _ingest(hub, "X01-")  # the bucket is full again: nothing was stored
        assert _records(hub) == 20
        with pytest.raises(TenantRateLimited):
            _ingest(hub, "X02-")


def test_a_batch_refused_by_the_storage_quota_costs_no_tokens(tmp_path: Path) -> None:
    env = {**RATE, "HUB_STORED_MAX_BYTES_PER_TENANT": "100"}  # under one batch of 20
    hub = bootstrap(load_settings(environ=env, data_dir=tmp_path / "d"))
    try:
        with pytest.raises(HubError) as e:
            _ingest(hub, "Q00-")
        assert e.value.code == "tenant_storage_full", e.value
        with pytest.raises(HubError) as e:  # the storage quota again, not the rate
            _ingest(hub, "Q01-")
        assert e.value.code == "tenant_storage_full", e.value
        assert _stored_bytes(hub, "globex") == 0
    finally:
        hub.close()


def test_concurrent_http_ingests_share_one_bucket(tmp_path: Path) -> None:
    """The same over HTTP: ``POST /v1/ingest/{topic}`` runs its batch in the thread pool, so a
    publisher's requests sent at once are decided side by side."""
    n = 5
    with limited(tmp_path / "d") as hub:
        key = basic(issue_key(hub, "publisher", "gus", "globex"))
        body = {"events": [{**QUOTE, "instrument": f"H{i:03d}"} for i in range(20)]}
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            post = partial(c.post, "/v1/ingest/quotes", json=body, headers=key)
            out = _together(hub, [post] * n)
        codes = sorted(r.status_code for r in out)
        assert codes == [200] + [429] * (n - 1), [r.text for r in out]
        assert _records(hub) == 20
