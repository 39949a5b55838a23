"""Attacks that held (session 15 red team), kept so a regression shows: tlog-tiles paths that
try to leave the tile namespace or reach past the tree answer a 4xx naming the problem, and the
offline verifier fails closed (exit 1 or 2 with the reason, never ``OK``) on malformed proofs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit.merkle import EMPTY_ROOT, leaf_hash
from audit.verify import main as hub_verify
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic
from tests.service.test_ledger import make_hub, publish


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, TestClient, str]]:
    h = make_hub(tmp_path_factory.mktemp("tlog") / "data", ledger_store="tiles")
    publish(h, 300)
    h.ledger.sync(force_checkpoint=True)
    with TestClient(create_app(h), raise_server_exceptions=False) as client:
        yield h, client, h.keys.create(["compliance_officer"], principal="t").token
    h.close()


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/..%2f..%2fledger-tiles.sqlite",
        "tile/%2e%2e/000",
        "tile//etc/passwd",
        "tile/0/000%00",
        "tile/0/x000/001",
        "tile/0/-1",
        "tile/0/000.p/01",
        "tile/0/001.p/256",
        "tile/0/\uff10\uff10\uff10",  # fullwidth digits
        "tile/64/000",
        "tile/entries/000/..",
    ],
)
def test_a_path_outside_the_tile_layout_is_refused(
    served: tuple[Hub, TestClient, str], path: str
) -> None:
    _, client, token = served
    r = client.get(f"/v1/ledger/tlog/{path}", headers=basic(token))
    assert r.status_code == 422, (path, r.status_code)
    assert r.json()["reason"] == "invalid_tile_path" and r.json()["message"]


def test_a_partial_tile_wider_than_the_tree_is_not_found(
    served: tuple[Hub, TestClient, str],
) -> None:
    hub, client, token = served
    size = hub.ledger.store.tree_size()
    w = size % 256
    ok = client.get(f"/v1/ledger/tlog/tile/0/{size // 256:03d}.p/{w}", headers=basic(token))
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-cache"
    for kind in ("0", "entries"):
        r = client.get(
            f"/v1/ledger/tlog/tile/{kind}/{size // 256:03d}.p/{w + 1}", headers=basic(token)
        )
        assert r.status_code == 404 and r.json()["reason"] == "tile_not_found"
    cp = client.get("/v1/ledger/tlog/checkpoint", headers=basic(token))
    assert cp.headers["cache-control"] == "no-cache"  # a cache never holds an old root


L = leaf_hash(b"x").hex()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--index", "1", "--size", "1", "--root", L, "--proof", ""], "outside"),
        (["--index", "0", "--size", "0", "--root", L, "--proof", ""], "outside"),
        (["--index", "0", "--size", "1", "--root", L, "--proof", L], "more than"),
        (["--index", "0", "--size", "2", "--root", L, "--proof", ""], "inclusion proof"),
    ],
    ids=["index-at-size", "size-0", "extra-hash", "truncated"],
)
def test_malformed_inclusion_proofs_are_invalid(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hub_verify(["inclusion", "--leaf-hash", L, *args]) == 1
    out = capsys.readouterr()
    assert out.out == "" and said in out.err, out.err


def test_short_hashes_and_huge_sizes_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    short = ["--index", "0", "--size", "2", "--root", L, "--proof", L[:62]]
    assert hub_verify(["inclusion", "--leaf-hash", L, *short]) == 2
    assert "64 hex digits" in capsys.readouterr().err
    huge = ["--index", "0", "--size", "9" * 5000, "--root", L, "--proof", ""]
    with pytest.raises(SystemExit) as exc:  # argparse: the size is no integer it takes
        hub_verify(["inclusion", "--leaf-hash", L, *huge])
    assert exc.value.code == 2 and capsys.readouterr().out == ""


def test_a_consistency_proof_from_a_larger_tree_fails(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--root1", L, "--root2", L, "--proof", ""]
    assert hub_verify(["consistency", "--size1", "21", "--size2", "7", *args]) == 1
    assert "MUST NOT shrink" in capsys.readouterr().err
    assert hub_verify(["consistency", "--size1", "0", "--size2", "7", *args]) == 1
    assert EMPTY_ROOT.hex() in capsys.readouterr().err  # only the empty root is size 0's


def test_hub_verify_checkpoint_by_another_key_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.note import format_checkpoint, generate_key, sign_note

    pinned, other = generate_key("hub.example/log"), generate_key("hub.example/log")
    note = tmp_path / "cp.note"
    note.write_bytes(sign_note(format_checkpoint("hub.example/log", 1, bytes(32)), other))
    key = tmp_path / "pinned.pub"
    key.write_text(pinned.verifier.encode() + "\n")
    assert hub_verify(["checkpoint", str(note), "--public-key", str(key)]) == 1
    assert "no signature by a trusted key" in capsys.readouterr().err
