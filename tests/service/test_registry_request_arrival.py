"""One registration over HTTP reads ``_schemas``'s ends three times, not four (issue 13: on
Kafka each read is a ListOffsets round trip and its share of the server's CPU).

``RegistryScope.claim`` asks the subject's owner (a catch-up), then ``register``'s step 1
caught up again although nothing told it to: within one request both now share a read begun
after the request arrived (``SchemaRegistry.arrival``). Steps 7-8 (the mode check before the
append, the fold back after it) still read afresh. What a registration must still see: what
another instance stored before the request arrived (same id, one record), and its own record
at once.

Over real HTTP against the hub app on the embedded log, through the fast path and through the
full stack alone (the app without ``RegistryFastPath`` and its lean routes, as
``test_registry_fast`` builds it); ``end_offsets`` is wrapped only to count the reads of
``_schemas``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.ports.policy import HUB_TENANT
from hub.bootstrap import Hub
from registry.service import SCHEMAS_TOPIC, SchemaRegistry

from .conftest import _serve

TYPE = "application/vnd.schemaregistry.v1+json"


def _schema(name: str) -> bytes:
    text = json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "int"}]})
    return json.dumps({"schema": text}).encode()


class _Served:
    def __init__(self, hub: Hub, urls: dict[str, str], token: str) -> None:
        self.hub = hub
        self.clients = {
            name: httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
            )
            for name, url in urls.items()
        }
        self.http = self.clients["fast"]
        self.reads: list[str] = []  # threads that read _schemas's ends
        log = hub.registry._log
        inner = log.end_offsets

        def end_offsets(topic: str) -> Any:
            if topic == SCHEMAS_TOPIC:
                self.reads.append(threading.current_thread().name)
            return inner(topic)

        log.end_offsets = end_offsets  # type: ignore[method-assign]  # a spy: the real read runs

    def register(self, subject: str, body: bytes) -> httpx.Response:
        return self.http.post(
            f"/subjects/{subject}/versions", content=body, headers={"Content-Type": TYPE}
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    """One hub served twice: with its fast path, and by the full stack alone."""
    from hub.api.app import create_app
    from hub.api.registry_fast import RegistryFastPath
    from hub.api.routers.registry import LEAN_ROUTES
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path_factory.mktemp("arrival") / "data"
    hub = bootstrap(load_settings(environ={}, data_dir=data))
    token = hub.keys.create(["admin"], principal="test-admin").token
    full = create_app(hub)
    full.user_middleware = [m for m in full.user_middleware if m.cls is not RegistryFastPath]
    full.router.routes = [r for r in full.router.routes if r not in LEAN_ROUTES]
    fast_url, stop_fast = _serve(create_app(hub))
    full_url, stop_full = _serve(full)
    s = _Served(hub, {"fast": fast_url, "full": full_url}, token)
    s.http.get("/subjects")
    try:
        yield s
    finally:
        for client in s.clients.values():
            client.close()
        stop_fast()
        stop_full()
        hub.close()


@pytest.fixture(params=["fast", "full"])
def path(request: pytest.FixtureRequest, served: _Served) -> Iterator[str]:
    served.http = served.clients[request.param]
    yield str(request.param)
    served.http = served.clients["fast"]


def test_a_registration_reads_the_schemas_ends_three_times(served: _Served, path: str) -> None:
    for k in range(3):
        served.reads.clear()
        answer = served.register(f"arr-{path}-{k}-value", _schema(f"A{path}{k}"))
        assert answer.status_code == 200, answer.text
        # the claim's (shared by step 1), the mode check's and the fold back's; was four
        assert len(served.reads) == 3, served.reads


def test_a_registration_sees_what_another_instance_stored_before_it_arrived(
    served: _Served, path: str
) -> None:
    """The claim's read began after the request arrived: another instance's registration of
    the same schema is answered (its id), never stored again as a second version."""
    log = served.hub.registry._log
    subject = f"theirs-{path}-value"
    text = json.loads(_schema(f"T{path}"))["schema"]
    theirs = SchemaRegistry(log).register(subject, text, tenant=HUB_TENANT)
    answer = served.register(subject, _schema(f"T{path}"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": theirs.id}
    end = log.end_offsets(SCHEMAS_TOPIC)[0]
    stored = [r for r in log.read(SCHEMAS_TOPIC, 0, 0, end) if subject.encode() in (r.key or b"")]
    assert len(stored) == 1


def test_a_new_version_is_answered_and_readable_at_once(served: _Served, path: str) -> None:
    subject = f"mine-{path}-value"
    first = served.register(subject, _schema(f"M{path}"))
    assert first.status_code == 200, first.text
    latest = served.http.get(f"/subjects/{subject}/versions/latest")
    assert latest.json()["id"] == first.json()["id"]
