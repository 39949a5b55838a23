"""The metrics an anonymous client can grow: a request with an invented HTTP method (any token
is a valid method on the wire) MUST NOT add a time series of its own to
``hub_http_requests_total`` / ``hub_http_request_seconds``; it counts as method "other"."""

from __future__ import annotations

from tests.adversarial._api import Api


def test_invented_methods_do_not_add_metric_series(shared_api: Api) -> None:
    client = shared_api.client
    for i in range(5):
        client.request(f"X{i}METHOD", "/health")  # anonymous
        client.request(f"X{i}METHOD", "/v1/topics", headers=shared_api.as_role("publisher"))
    text = shared_api.hub.metrics.render().decode()
    assert "X0METHOD" not in text and "X4METHOD" not in text
    assert 'method="other"' in text
