"""``GET /health`` tells an anonymous caller only that the process lives (session 19).

It answered anyone the process's id in the leader lease (``hostname:pid``), its epoch and the
technology behind each component (``vault``, ``kafka``, ``postgresql``...): which host runs
what, for whoever can reach the port. Liveness stays public (a probe has no key); the detail is
``GET /health/details``, decided as ``/ready/details`` and ``/metrics`` (``metrics.read`` as the
hub's own tenant's). ``/metrics`` needed a key already and names no host.
"""

from __future__ import annotations

import json
import socket

from tests.adversarial._api import Api, basic, issue_key


def test_health_answers_anyone_the_liveness_alone(api: Api) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "leader": {"role": "single"}}
    text = r.text.lower()
    for word in ("sqlite", "rego", "local", "chdb", "tiles", "holder", socket.gethostname()):
        assert word.lower() not in text, word


def test_health_details_need_the_hubs_metrics_read(api: Api) -> None:
    assert api.client.get("/health/details").status_code == 401
    acme = basic(issue_key(api.hub, "security_admin", "sam", "acme"))  # metrics.read, acme
    assert api.client.get("/health/details", headers=acme).status_code == 403
    analyst = api.as_role("analyst")  # the hub's own tenant, no metrics.read
    assert api.client.get("/health/details", headers=analyst).status_code == 403
    r = api.client.get("/health/details", headers=api.as_role("security_admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["adapters"]["event_log"] == "sqlite" and body["leader"]["role"] == "single"


def test_metrics_name_no_host_and_need_a_key(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401
    r = api.client.get("/metrics", headers=api.admin)
    assert r.status_code == 200
    assert socket.gethostname() not in r.text
    assert json.dumps(socket.gethostname()) not in r.text
