"""Round 3a of the adversarial review: hostile inputs, files and outputs (session 11).

Each test is one attack that worked on the tree before its fix (docs/benchmarks/s11-redteam-a.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from audit import signed
from audit.note import format_checkpoint, generate_key, sign_note
from audit.printable import printable
from audit.verify import main as hub_verify
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.logs import PlainFormatter
from hub.settings import load_settings
from ingest.files import FileUnreadable, publish_file
from projections.types import render

from ._api import basic

LIMIT = 4096  # HUB_MAX_REQUEST_BYTES and HUB_MAX_RECORD_BYTES of the small hub below


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Hub, TestClient, dict[str, str]]]:
    """A hub whose request and record limits are 4 KiB, its app, and an admin's header."""
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_MAX_REQUEST_BYTES": str(LIMIT),
        "HUB_MAX_RECORD_BYTES": str(LIMIT),
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    admin = basic(hub.keys.create(["admin"], principal="p-admin").token)
    try:
        yield hub, client, admin
    finally:
        client.close()
        hub.close()


# -- request bodies -----------------------------------------------------------------------------
def test_a_body_fastapi_parses_is_held_to_the_request_limit(small: tuple) -> None:
    """``POST /v1/query`` (a pydantic body) had no size limit at all: a chunked 40 KB body
    against a 4 KB limit was read whole and run. Now 413 ``payload_too_large``."""
    _, client, admin = small
    sql = "SELECT 1 -- " + "x" * 40_000
    body = json.dumps({"sql": sql}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is known only by reading
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = client.post(
        "/v1/query", content=chunks(), headers={**admin, "content-type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert r.json()["reason"] == "payload_too_large", r.text


def _serve(app: object, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread


def test_a_declared_giant_body_is_refused_before_it_is_sent(small: tuple) -> None:
    """Over real HTTP: ``Content-Length: 10**12`` and no body. Before, the route waited to read
    the terabyte (then held it in memory); now 413 comes at once, nothing read."""
    _, client, admin = small
    port = 42081
    server, thread = _serve(client.app, port)
    head = (
        b"POST /v1/topics/trades/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b"\r\nAuthorization: " + admin["Authorization"].encode() + b"\r\n"
        b"Content-Length: 1000000000000\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(head + b'{"events": [')
            answer = s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b"payload_too_large" in answer and b"HUB_MAX_REQUEST_BYTES" in answer, answer
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=15)


# -- files ----------------------------------------------------------------------------------------
def test_a_csv_quote_never_closed_is_refused_not_read_into_one_row(
    small: tuple, tmp_path: Path
) -> None:
    """One ``"`` that is never closed made the CSV reader join the rest of the file into one
    row, recounting its quotes at every line: quadratic (160 KB: 3 s, 1.6 MB: minutes) and the
    whole file in memory. Now the row is refused once it passes the record limit."""
    hub, _, _ = small
    f = tmp_path / "t.csv"
    f.write_bytes(b"trade_id,account_id\n" + b'"T-1,ACC-1\n' + b"T-2,ACC-2\n" * 2000)
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "trades", batch_size=100)
    assert "CSV line 2" in err.value.message and "quoted field" in err.value.message


def test_an_avro_deflate_bomb_is_refused_with_memory_bounded(small: tuple, tmp_path: Path) -> None:
    """fastavro inflated a whole block at once: 70 KB of deflate held a 70 MB trade id (and
    2 MB of file about 2 GB). Blocks now inflate with a bound (``ingest.avroblocks``) and the
    file is refused, naming the codec."""
    import fastavro

    from core.avro.serde import from_json
    from domain.catalog import schema_text
    from ingest.avroblocks import MAX_BLOCK_BYTES

    hub, _, _ = small
    parsed = fastavro.parse_schema(json.loads(schema_text("hub.trading.TradeExecuted")))
    trade = {
        "trade_id": "A" * (MAX_BLOCK_BYTES + 1_000_000),
        "account_id": "ACC-1",
        "instrument": "AAPL",
        "side": "BUY",
        "quantity": "100",
        "price": "189.12345678",
        "currency": "USD",
        "executed_at": "2026-11-25T14:30:00.123456Z",
    }
    f = tmp_path / "bomb.avro"
    with f.open("wb") as out:
        fastavro.writer(out, parsed, [from_json(trade, parsed)], codec="deflate")
    assert f.stat().st_size < 200_000
    with pytest.raises(FileUnreadable) as err:
        publish_file(hub.ingest, f, "trades")
    assert "deflate block inflates to more than" in err.value.message


def test_a_symlink_dropped_into_a_watched_folder_is_not_followed(
    small: tuple, tmp_path: Path
) -> None:
    """A publisher who may drop files into ``hub ingest watch``'s folder dropped a symbolic link
    to a file only the hub can read (its keyring, another tenant's export): the hub read it into
    the topic, and lines that failed validation kept their bytes in the quarantine. Now the
    link is moved to ``failed/`` unread."""
    from ingest.files import watch_once
    from ingest.quarantine import entries

    hub, _, _ = small
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"password": "hunter2"}\n')
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "link.jsonl").symlink_to(secret)
    out = watch_once(hub.ingest, drop, "trades")
    assert [name for name, _ in out] == ["link.jsonl"]
    assert out[0][1].startswith("failed: it is a symbolic link"), out
    assert (drop / "failed" / "link.jsonl").is_symlink() and secret.exists()
    assert list(entries(hub.ingest)) == []


# -- outputs --------------------------------------------------------------------------------------
def test_csv_exports_neutralise_spreadsheet_formulas() -> None:
    """A publisher's ``=HYPERLINK(...)`` or DDE ``=cmd|...`` counterparty ran as a formula when a
    compliance officer opened a CSV export (``/v1/query``, signed exports, the console, ``hub
    projection query``: all render here). Text cells are prefixed with ``'``; numbers are not."""
    table = pa.table(
        {
            "name": ['=HYPERLINK("http://x")', "@SUM(A1)", "+1+cmd|' /C calc'!A0", "-2+3", "ok"],
            "amount": ["-12.50", "+3", "1e5", "-", None],
        }
    )
    data, _ = render(table, "csv")
    rows = data.decode().splitlines()
    assert rows[1:] == [
        '"\'=HYPERLINK(""http://x"")","-12.50"',
        '"\'@SUM(A1)","+3"',
        '"\'+1+cmd|\' /C calc\'!A0","1e5"',
        '"\'-2+3","\'-"',
        '"ok",',
    ]
    assert render(table, "json")[0].count(b"=HYPERLINK") == 1  # JSON keeps the value as sent


def _self_signed_pack(kind: str) -> bytes:
    """A report pack that verifies against the key inside it (a forger's own key), whose
    ``kind`` is ``kind``."""
    key = generate_key("forger.example/ledger")
    root = hashlib.sha256(b"").digest()
    checkpoint = sign_note(format_checkpoint("forger.example/ledger", 0, root), key)
    rows = [{"a": 1}]
    data = json.dumps({"q": {"columns": ["a"], "rows": rows}}).encode()
    files = {signed.CHECKPOINT: checkpoint, signed.DATA: data, signed.PUBLIC_KEY: b""}
    files[signed.PUBLIC_KEY] = key.verifier.encode().encode()
    manifest = {
        "format": signed.REPORT_FORMAT,
        "kind": kind,
        "origin": "forger.example/ledger",
        "public_key": key.verifier.encode(),
        "checkpoint": {"size": 0, "root": root.hex()},
        "queries": [{"name": "q", "rows": 1, "digest": signed.rows_digest(rows)}],
        "files": {name: hashlib.sha256(b).hexdigest() for name, b in files.items()},
    }
    manifest_bytes = json.dumps(manifest).encode()
    note = sign_note(signed.note_text(signed.REPORT_FORMAT, manifest_bytes), key)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, b in {**files, signed.MANIFEST: manifest_bytes, signed.SIGNATURE: note}.items():
            zf.writestr(name, b)
    return out.getvalue()


def test_hub_verify_shows_a_packs_own_text_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pack signed by its sender's own key printed its ``kind`` raw in the OK line: ANSI
    ``ESC [8m`` hid "checked with the key inside the pack" and a newline forged a line, so an
    auditor read "checked with the trusted key". Controls are shown escaped now."""
    forged = "soc2\nOK: signed by the trusted key\x1b[8m"
    pack = tmp_path / "pack.zip"
    pack.write_bytes(_self_signed_pack(forged))
    assert hub_verify(["bundle", str(pack)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and out.count("\n") == 1, out
    assert "soc2\\x0aOK: signed by the trusted key\\x1b[8m" in out
    assert "the key inside the pack" in out


def test_a_plain_log_line_cannot_be_forged_through_a_request_path() -> None:
    """With ``HUB_LOG_JSON=false`` the access log wrote ``scope["path"]`` (percent-decoded) raw:
    ``GET /x%0aINFO hub.auth: admin login ok`` printed a second, false line. JSON lines
    escape controls already; the plain format now does too (tracebacks keep their lines)."""
    record = logging.LogRecord(
        "hub.access",
        logging.INFO,
        "",
        0,
        "%s %s %d",
        ("GET", "/x\nINFO hub.auth: ok\x1b[2K", 404),
        None,
    )
    line = PlainFormatter().format(record)
    assert line == "INFO hub.access: GET /x\\x0aINFO hub.auth: ok\\x1b[2K 404"


def test_printable_escapes_controls_separators_and_bidi_overrides() -> None:
    text = "a\tb\r\n\x00\x7f\x9b\u2028\u202e\u2066é€"
    assert printable(text) == "a\\x09b\\x0d\\x0a\\x00\\x7f\\x9b\\u2028\\u202e\\u2066é€"
