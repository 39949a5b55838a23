"""The registry's fast path (``hub.api.registry_fast``) answers and decides as the full stack.

The same hub serves two apps: the real one (the fast path outermost) and the reference, with
the fast path and the lean routes removed (FastAPI's routes, its middleware, its error
handling). Every request goes to both; status, body, content type, the echoed request id and
each request's recorded decision must be the same. Then what no cache may hide: a revoked key,
a changed policy and a schema registered after a 404 change the very next answer. Last, a
Hypothesis test sends both apps the usual request with one or two parts made odd (the id, the
path's tail, the query, the method, the key, ``Accept``, ``Content-Type``, the request id and
context headers, the header order): ``HUB_FUZZ_EXAMPLES`` of them (60 by default, a few seconds).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from core.policybundle import PolicyBundle
from governance.decisions import DECISIONS_TOPIC, RecordingPolicyEngine
from hub.api.app import create_app
from hub.api.registry_fast import RegistryFastPath
from hub.api.routers.registry import LEAN_ROUTES
from hub.bootstrap import Hub
from hub.observability import request_id_of
from registry.service import Reference
from tests.service.registry_twins import Refusing, decisions

BASE = json.dumps({"type": "record", "name": "Base", "fields": [{"name": "a", "type": "int"}]})
TOP = json.dumps({"type": "record", "name": "Top", "fields": [{"name": "b", "type": "Base"}]})


@pytest.fixture
def apps(hub: Hub) -> Iterator[tuple[TestClient, TestClient]]:
    fast = create_app(hub)
    reference = create_app(hub)
    reference.user_middleware = [
        m for m in reference.user_middleware if m.cls is not RegistryFastPath
    ]
    reference.router.routes = [r for r in reference.router.routes if r not in LEAN_ROUTES]
    with TestClient(fast) as a, TestClient(reference) as b:
        yield a, b


def test_the_fast_path_answers_and_decides_as_the_full_stack(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference = apps
    policy = hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    monkeypatch.setattr(policy, "inner", Refusing(policy.inner))
    base = hub.registry.register("fast-base-value", BASE)
    top = hub.registry.register(
        "fast-ref-value", TOP, references=(Reference("Base", "fast-base-value", base.version),)
    )
    keys = {r: hub.keys.create([r], principal=f"p-{r}").token for r in ("admin", "publisher")}
    keys["analyst"] = hub.keys.create(["analyst"], principal="p-analyst").token
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    auths: list[dict[str, str]] = [{"Authorization": f"Bearer {t}"} for t in keys.values()]
    auths += [
        {},
        {"Authorization": "Bearer nope:wrong"},
        {**admin, "Accept": "text/html"},
        {**admin, "Accept": "application/json", "X-Hub-Purpose": "fraud-review"},
        {**admin, "X-Request-Id": "req-42", "X-Hub-Case": "c-1"},
    ]
    ids = [str(base.id), str(top.id), "999999", "0", "2147483648", "-1", "abc", "007"]
    paths = [f"/schemas/ids/{i}" for i in ids]
    paths += [f"/schemas/ids/{i}/schema" for i in (base.id, top.id, 999999)]
    paths += [f"/schemas/ids/{base.id}?subject=x&format=resolved", "/schemas/ids/1/"]
    before = len(decisions(hub))
    for path in paths:
        for headers in auths:
            a, b = fast.get(path, headers=headers), reference.get(path, headers=headers)
            assert (a.status_code, a.content, a.headers.get("content-type")) == (
                b.status_code,
                b.content,
                b.headers.get("content-type"),
            ), (path, headers)
            if "X-Request-Id" in headers:
                assert a.headers["x-request-id"] == b.headers["x-request-id"] == "req-42"
            else:
                assert len(a.headers["x-request-id"]) == len(b.headers["x-request-id"]) == 32
    recorded = decisions(hub)[before:]
    fields = ("principal", "action", "resource", "allow", "purpose", "case_id", "reason")
    firsts, seconds = recorded[0::2], recorded[1::2]  # sent alternately: pairs decide alike
    assert [tuple(d[f] for f in fields) for d in firsts] == [
        tuple(d[f] for f in fields) for d in seconds
    ]
    assert {d["purpose"] for d in recorded} >= {"fraud-review"}
    assert {d["case_id"] for d in recorded} >= {"c-1"}
    assert any("engine exploded" in d["reason"] for d in recorded)
    assert fast.get(f"/schemas/ids/{top.id}", headers=admin).json()["references"]
    assert fast.head(f"/schemas/ids/{base.id}", headers=admin).status_code == 405


V2 = json.dumps(
    {
        "type": "record",
        "name": "Base",
        "fields": [{"name": "a", "type": "int"}, {"name": "c", "type": "long", "default": 0}],
    }
)
NO_DEFAULT = json.dumps(
    {
        "type": "record",
        "name": "Base",
        "fields": [{"name": "a", "type": "int"}, {"name": "d", "type": "long"}],
    }
)


def test_subject_versions_compatibility_and_register_answer_as_the_full_stack(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path's other routes: ``versions/{version}`` and compatibility, each request
    sent to both apps in turn; and register, served here too (each pair's second answer is the
    idempotent one: the same id)."""
    fast, reference = apps
    policy = hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    monkeypatch.setattr(policy, "inner", Refusing(policy.inner))
    logging.getLogger("hub").setLevel(logging.CRITICAL)  # refused requests log on purpose
    base = hub.registry.register("fast-base-value", BASE)
    hub.registry.register(
        "fast-ref-value", TOP, references=(Reference("Base", "fast-base-value", base.version),)
    )
    hub.registry.register("fast-base-value", V2)
    keys = {r: hub.keys.create([r], principal=f"p-{r}").token for r in ("admin", "publisher")}
    keys["analyst"] = hub.keys.create(["analyst"], principal="p-analyst").token
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    auths: list[dict[str, str]] = [{"Authorization": f"Bearer {t}"} for t in keys.values()]
    auths += [{}, {**admin, "Accept": "text/html"}, {**admin, "X-Request-Id": "req-42"}]
    gets = [
        f"/subjects/{s}/versions/{v}{tail}"
        for s in ("fast-base-value", "fast-ref-value", "nope", "fast%2Dbase-value")
        for v in ("latest", "1", "2", "3", "0", "-1", "LATEST", "2147483648")
        for tail in ("", "/schema")
    ]
    gets += ["/subjects/fast-base-value/versions/latest?deleted=true", "/subjects/x/versions/1/"]
    bodies: list[tuple[bytes, dict[str, str]]] = [
        (json.dumps({"schema": V2}).encode(), {}),
        (json.dumps({"schema": NO_DEFAULT}).encode(), {"Content-Type": "application/json"}),
        (json.dumps({"schema": TOP, "references": [{"name": "Base", "subject":
         "fast-base-value", "version": 1}]}).encode(), {}),
        (b'{"schema": ', {}),
        (b"", {}),
        (b"[1]", {}),
        (json.dumps({"schema": V2}).encode(), {"Content-Type": "text/plain"}),
    ]  # fmt: skip
    posts = [
        f"/compatibility/subjects/{s}/versions{v}{q}"
        for s in ("fast-base-value", "nope")
        for v in ("", "/latest", "/1", "/9", "/x")
        for q in ("", "?normalize=true", "?verbose=true")
    ]
    posts += [
        f"/subjects/{s}/versions{q}"
        for s in ("fast-new-value", "fast-base-value", "_schemas", "fast-ref-value")
        for q in ("", "?normalize=false")
    ]
    before = len(decisions(hub))
    # every key and header variant on a few requests; the admin's on the rest
    requests = [("GET", p, None, h) for p in gets for h in (auths if "/latest" in p else [admin])]
    requests += [("POST", p, bodies[0][0], h) for p in posts[::5] for h in auths]
    requests += [("POST", p, b, {**admin, **x}) for p in posts for b, x in bodies]
    for method, path, body, headers in requests:
        a = fast.request(method, path, content=body, headers=headers)
        b = reference.request(method, path, content=body, headers=headers)
        assert (a.status_code, a.content, a.headers.get("content-type")) == (
            b.status_code,
            b.content,
            b.headers.get("content-type"),
        ), (method, path, body, headers)
        if "X-Request-Id" in headers:
            assert a.headers["x-request-id"] == b.headers["x-request-id"] == "req-42"
    recorded = decisions(hub)[before:]
    fields = ("principal", "action", "resource", "allow", "purpose", "case_id", "reason")
    own = [tuple(d[f] for f in fields) for d in recorded if d["principal"].startswith("p-")]
    assert own[0::2] == own[1::2]  # sent alternately: pairs decide alike
    assert {d["action"] for d in recorded} >= {"schema.read", "schema.write"}
    assert all(d["allow"] for d in recorded if d["principal"] == "p-admin")
    assert hub.registry.versions("fast-new-value")[0] == 1


def test_versions_and_compatibility_are_served_without_the_app_behind_it(hub: Hub) -> None:
    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} reached the app behind the fast path")

    hub.registry.register("fast-base-value", BASE)
    token = hub.keys.create(["admin"], principal="ops").token
    headers = {"Authorization": f"Bearer {token}"}
    fast = RegistryFastPath(behind, hub)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(hub=hub))  # as Starlette's app
        await fast(scope, receive, send)

    client = TestClient(app)
    body = {"schema": V2}
    check = client.post("/compatibility/subjects/fast-base-value/versions/latest", json=body,
                        headers=headers)  # fmt: skip
    assert check.status_code == 200 and check.json() == {"is_compatible": True}
    bad = client.post("/compatibility/subjects/fast-base-value/versions", json={"schema":
                      NO_DEFAULT}, headers=headers)  # fmt: skip
    assert bad.json() == {"is_compatible": False}
    hub.registry.register("fast-base-value", V2)
    latest = client.get("/subjects/fast-base-value/versions/latest", headers=headers).json()
    assert (latest["version"], latest["schema"]) == (2, V2)
    text = hub.metrics.render().decode()
    route = "/compatibility/subjects/{subject}/versions/{version}"
    assert f'method="POST",route="{route}",status="200"' in text
    assert f'action="schema.read",result="allow",route="{route}"' in text


def test_register_is_served_without_the_app_behind_it_in_one_transaction(hub: Hub) -> None:
    """Register answered by the fast path itself: the held ``schema.write`` allow and the
    ``_schemas`` record stored together, counted under the twin's route template; a refused
    body still records its (allowed) decision, and an internal subject is refused."""

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} reached the app behind the fast path")

    token = hub.keys.create(["admin"], principal="ops").token
    headers = {"Authorization": f"Bearer {token}"}
    fast = RegistryFastPath(behind, hub)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(hub=hub))  # as Starlette's app
        await fast(scope, receive, send)

    client = TestClient(app)
    start = len(decisions(hub))
    answer = client.post("/subjects/fast-new-value/versions", json={"schema": BASE},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 200
    assert answer.json() == {"id": hub.registry.get_version("fast-new-value", 1).id}
    assert answer.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    again = client.post("/subjects/fast-new-value/versions?normalize=true", json={"schema": BASE},
                        headers=headers)  # fmt: skip
    assert again.json() == answer.json() and hub.registry.versions("fast-new-value") == [1]
    bad = client.post("/subjects/fast-new-value/versions", content=b'{"schema": ',
                      headers=headers)  # fmt: skip
    assert (bad.status_code, bad.json()["error_code"]) == (422, 422)
    internal = client.post("/subjects/_schemas/versions", json={"schema": BASE}, headers=headers)
    assert internal.status_code == 403
    recorded = [d for d in decisions(hub)[start:] if d["principal"] == "ops"]
    assert [(d["action"], d["allow"]) for d in recorded] == [("schema.write", True)] * 4
    assert [d["resource"] for d in recorded][-1] == "/subjects/_schemas/versions"
    text = hub.metrics.render().decode()
    assert 'method="POST",route="/subjects/{subject}/versions",status="200"' in text
    assert 'action="schema.write",result="allow",route="/subjects/{subject}/versions"' in text


def test_served_without_the_app_behind_it_counted_and_logged(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid read never reaches the app behind the fast path; it is counted with its route
    template and logged as one access line, as the full stack does."""

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} reached the app behind the fast path")

    sid = hub.registry.register("fast-base-value", BASE).id
    token = hub.keys.create(["analyst"], principal="ann").token
    client = TestClient(RegistryFastPath(behind, hub))
    with caplog.at_level(logging.INFO, logger="hub.access"):
        answer = client.get(f"/schemas/ids/{sid}", headers={"Authorization": f"Bearer {token}"})
        raw = client.get(f"/schemas/ids/{sid}/schema", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json() == {"schema": BASE}
    assert raw.content == BASE.encode() and raw.headers["content-length"] == str(len(BASE))
    lines = [r for r in caplog.records if r.name == "hub.access"]
    assert [(r.__dict__["hub.route"], r.__dict__["user.id"]) for r in lines] == [
        ("/schemas/ids/{schema_id}", "ann"),
        ("/schemas/ids/{schema_id}/schema", "ann"),
    ]
    text = hub.metrics.render().decode()
    assert 'route="/schemas/ids/{schema_id}",status="200"' in text
    assert 'action="schema.read",result="allow",route="/schemas/ids/{schema_id}"' in text


def test_a_revoked_key_is_refused_on_the_next_request(
    hub: Hub, apps: tuple[TestClient, TestClient]
) -> None:
    fast, _ = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    issued = hub.keys.create(["analyst"], principal="ann")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert fast.get(f"/schemas/ids/{sid}", headers=headers).status_code == 200
    hub.keys.revoke(issued.key_id, revoked_by="test", reason="left the company")
    refused = fast.get(f"/schemas/ids/{sid}", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_a_policy_change_refuses_the_next_request(
    hub: Hub, apps: tuple[TestClient, TestClient]
) -> None:
    """The allow the decision cache holds for this very input goes with the old bundle."""
    fast, _ = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    headers = {"Authorization": f"Bearer {hub.keys.create(['analyst'], principal='ann').token}"}
    for _ in range(2):  # the second answer comes from the decision cache
        assert fast.get(f"/schemas/ids/{sid}", headers=headers).status_code == 200
    closed = 'decision := {"allow": false, "reason": "closed for the test", "mask": [], '
    closed += '"row_filter": {}}'
    bundle = PolicyBundle.from_files({"hub/authz.rego": f"package hub.authz\n\n{closed}\n"})
    hub.policy.load(bundle)  # type: ignore[attr-defined]
    refused = fast.get(f"/schemas/ids/{sid}", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error_code"] == 40301 and "closed for the test" in refused.text
    last = decisions(hub)[-1]
    assert (last["allow"], last["policy_version"]) == (False, bundle.version)


def test_an_unknown_id_is_not_remembered(hub: Hub, apps: tuple[TestClient, TestClient]) -> None:
    fast, _ = apps
    headers = {"Authorization": f"Bearer {hub.keys.create(['admin'], principal='ops').token}"}
    nxt = max(hub.registry.schema_ids(), default=0) + 1
    missing = fast.get(f"/schemas/ids/{nxt}", headers=headers)
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert hub.registry.register("fast-new-value", BASE).id == nxt
    assert fast.get(f"/schemas/ids/{nxt}", headers=headers).json() == {"schema": BASE}


def test_the_fast_path_fails_closed_when_its_decision_cannot_be_stored(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    headers = {"Authorization": f"Bearer {hub.keys.create(['admin'], principal='ops').token}"}
    committer = hub.policy.committer  # type: ignore[attr-defined]

    def broken(prepared: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(committer._sink, "store", broken)
    a = fast.get(f"/schemas/ids/{sid}", headers=headers)
    b = reference.get(f"/schemas/ids/{sid}", headers=headers)
    assert a.status_code == b.status_code == 500
    assert "schema" not in a.json() and a.json()["error_code"] == b.json()["error_code"]
    assert "disk full" in a.json()["message"]


# -- fuzzing the hand-off rules ---------------------------------------------------------------
_DIGITS = ("0123456789", "٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "०१२३४५६७८९")  # ASCII first


def _percent(text: str, lower: bool) -> str:
    """Every character of ``text`` percent-encoded (its UTF-8 bytes)."""
    coded = "".join(f"%{b:02X}" for b in text.encode())
    return coded.lower() if lower else coded


# Each part of a request: (usual values, odd values). A fuzzed request takes the usual value of
# every part but at most two, which take odd ones.
_PARTS: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "method": (("GET",), ("HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")),
    "suffix": (("", "/schema"), ("/", "/schema/", "%2Fschema", "/schema%2F", "/subjects")),
    "query": (("", "?subject=x&format=resolved"), ("?", "?subject=%FF", "?a=1&a=2", "?format=")),
    "accept": (
        (None, "*/*", "application/json", "application/vnd.schemaregistry.v1+json"),
        (
            "",
            " , ",
            "APPLICATION/VND.SCHEMAREGISTRY.V1+JSON; q=0",
            "text/html",
            "text/html, application/*;q=0.1",
            "application/octet-stream",
        ),
    ),
    "content-type": ((None,), ("application/json", "text/plain", "")),
    "x-request-id": (((), ("req-42",)), (("req 42",), ("x" * 129,), ("Bearer k:s",), ("", "r-1"))),
    "x-hub-purpose": (((), ("fraud-review",)), (("",), ("ä",), ("audit", "fraud-review"))),
    "x-hub-case": (((), ("c-1",)), (("c-1", "c-2"), ("",))),
    "id": ((), ("zeros", "plus", "minus", "digits", "percent", "huge", "junk")),
}


def _id(draw: st.DrawFn, known: list[int], odd: bool) -> str:
    """A schema id as a client may spell it: plain, or with one oddity (padded, signed, in
    other digits, percent-encoded, beyond int32, not a number)."""
    text = str(draw(st.one_of(st.sampled_from(known), st.integers(0, 2**31 - 1))))
    kind = draw(st.sampled_from(_PARTS["id"][1])) if odd else ""
    if kind == "zeros":
        text = "0" * draw(st.integers(1, 3)) + text
    elif kind in ("plus", "minus"):
        text = ("+" if kind == "plus" else "-") + text
    elif kind == "digits":
        text = text.translate(str.maketrans("0123456789", draw(st.sampled_from(_DIGITS[1:]))))
    elif kind == "percent":
        text = _percent(text, draw(st.booleans()))
    elif kind == "huge":
        text = str(draw(st.integers(2**31, 10**30)))
    elif kind == "junk":
        text += draw(st.sampled_from((" ", "_0", ".0", "e1", "x", "%00", "%2e0")))
    return text


@st.composite
def _requests(
    draw: st.DrawFn, known: list[int], auths: tuple[list[Any], list[Any]]
) -> tuple[str, str, list[tuple[bytes, bytes]]]:
    """(method, URL, raw headers): the usual request with at most two parts made odd."""
    parts = {**_PARTS, "authorization": auths}
    odd = draw(st.sets(st.sampled_from(sorted(parts)), max_size=2))

    def part(name: str) -> Any:
        usual, unusual = parts[name]
        return draw(st.sampled_from(unusual if name in odd else usual))

    method, suffix, query = part("method"), part("suffix"), part("query")
    url = f"/schemas/ids/{_id(draw, known, 'id' in odd)}{suffix}{query}"
    headers = list(part("authorization"))
    for name in ("accept", "content-type"):
        value = part(name)
        headers += [] if value is None else [(name, value)]
    for name in ("x-request-id", "x-hub-purpose", "x-hub-case"):
        headers += [(name, value) for value in part(name)]
    headers = draw(st.permutations(headers))
    return method, url, [(k.encode(), v.encode("latin-1")) for k, v in headers]


def test_fuzzed_requests_get_the_same_answers_and_decisions(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd ids, paths, queries, methods and header variants, sent to both apps in turn: the
    same status, body and headers (the request id: the same when one is kept, else a new one
    each), and the same recorded decision, or none on either. The fast path must have served
    some of them itself."""
    fast, reference = apps
    policy = hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    monkeypatch.setattr(policy, "inner", Refusing(policy.inner))
    logging.getLogger("hub").setLevel(logging.CRITICAL)  # refused requests log on purpose
    base = hub.registry.register("fast-base-value", BASE)
    top = hub.registry.register(
        "fast-ref-value", TOP, references=(Reference("Base", "fast-base-value", base.version),)
    )
    tokens = {r: hub.keys.create([r], principal=f"p-{r}").token for r in ("admin", "publisher")}
    tokens["analyst"] = hub.keys.create(["analyst"], principal="p-analyst").token
    revoked = hub.keys.create(["admin"], principal="p-gone")
    hub.keys.revoke(revoked.key_id, revoked_by="test", reason="left the company")
    admin = tokens["admin"]
    basic = base64.b64encode(admin.encode()).decode()
    usual = [[("authorization", f"Bearer {t}")] for t in tokens.values()]  # allowed, denied, failed
    usual.append([("authorization", f"Basic {basic}")])
    unusual = [
        [("authorization", f"Bearer {revoked.token}")],
        [],
        [("authorization", "")],
        [("authorization", f"bearer   {admin}  ")],
        [("authorization", f"Basic {basic[:-2]}")],
        [("authorization", "Bearer nope:wrong")],
        [("authorization", f"Token {admin}")],
        [("authorization", f"Bearer {admin}"), ("authorization", "Bearer nope:wrong")],
        [("authorization", "Bearer nope:wrong"), ("authorization", f"Bearer {admin}")],
    ]
    served: list[int] = []
    serve = RegistryFastPath._serve

    async def counted(self: RegistryFastPath, *args: Any) -> None:
        served.append(1)
        await serve(self, *args)

    monkeypatch.setattr(RegistryFastPath, "_serve", counted)
    fields = ("principal", "action", "resource", "allow", "purpose", "case_id", "reason")

    @settings(
        max_examples=int(os.environ.get("HUB_FUZZ_EXAMPLES", "60")),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=_requests([base.id, top.id, 999999], (usual, unusual)))
    def check(request: tuple[str, str, list[tuple[bytes, bytes]]]) -> None:
        method, url, headers = request
        answers, decided = [], []
        for client in (fast, reference):
            hub.policy.committer.flush()  # type: ignore[attr-defined]
            start = hub.log.end_offsets(DECISIONS_TOPIC)[0]
            answers.append(client.request(method, url, headers=headers))
            mine = [d for d in decisions(hub, start) if d["principal"].startswith("p-")]
            decided.append([tuple(d[f] for f in fields) for d in mine])  # not the alert rules'
        a, b = answers
        assert (a.status_code, a.content) == (b.status_code, b.content), request
        ids = a.headers.get("x-request-id"), b.headers.get("x-request-id")
        incoming = dict(headers).get(b"x-request-id", b"").decode("latin-1")
        if request_id_of(dict(headers)) == incoming:  # a sane one (the last, as both read it)
            assert ids == (incoming, incoming), request
        else:  # a new one each
            assert ids[0] != ids[1] and len(ids[0] or "") == len(ids[1] or "") == 32, request
        same = [(k, v) for k, v in a.headers.multi_items() if k != "x-request-id"]
        assert same == [(k, v) for k, v in b.headers.multi_items() if k != "x-request-id"]
        assert decided[0] == decided[1], request

    check()
    assert len(served) >= 10  # the fast path did answer some itself
