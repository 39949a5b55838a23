"""`hub-verify bundle` on a signed report or export (``hub-report/v1``, ``hub-export/v1``) whose
manifest was altered in its ``queries``: two queries in an export, a query that is no object, a
query name that is a list. The query step runs before the signature check (step 5), and each of
these crashed the verifier with a Python traceback (ValueError, AttributeError, TypeError)
instead of INVALID naming the field. Found by a field-type fuzz of crafted packs (a key of our
own: the pack's key is used when no --public-key is given; with --public-key the same manifest
edit of a genuine pack reaches the same step)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from audit import signed
from audit.note import format_checkpoint, generate_key, sign_note
from audit.verify import main

KEY = generate_key("hub.local/ledger")
PUB = KEY.verifier.encode()
CSV = b"a\n1\n"
ROWS = [{"a": 1}]


def pack(fmt: str, queries: Any) -> bytes:
    note = format_checkpoint("hub.local/ledger", 1, b"\x01" * 32, prev=b"\0" * 32, time_micros=1)
    files = {"public-key.txt": (PUB + "\n").encode(), "checkpoint.note": sign_note(note, KEY)}
    if fmt == signed.EXPORT_FORMAT:
        files["query.csv"] = CSV
    else:
        files["data.json"] = json.dumps({"q": {"columns": ["a"], "rows": ROWS}}).encode()
    manifest = {
        "format": fmt,
        "kind": "compliance-daily",
        "origin": "hub.local/ledger",
        "public_key": PUB,
        "checkpoint": {"size": 1, "root": "01" * 32},
        "queries": queries,
        "tenant_scope": None,
        "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()},
    }
    body = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", body)
        zf.writestr("manifest.sig", sign_note(signed.note_text(fmt, body), KEY))
        for n, d in files.items():
            zf.writestr(n, d)
    return buf.getvalue()


EXPORT_Q = {"name": "q", "file": "query.csv", "digest": hashlib.sha256(CSV).hexdigest(), "rows": 1}
REPORT_Q = {"name": "q", "rows": 1, "digest": signed.rows_digest(ROWS)}


def run(tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "pack.zip"
    path.write_bytes(data)
    code = main(["bundle", str(path)])
    return code, capsys.readouterr().err


def test_the_crafted_packs_verify_unaltered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, pack(signed.EXPORT_FORMAT, [EXPORT_Q]), capsys)[0] == 0
    assert run(tmp_path, pack(signed.REPORT_FORMAT, [REPORT_Q]), capsys)[0] == 0


@pytest.mark.parametrize(
    ("fmt", "queries", "words"),
    [
        (signed.EXPORT_FORMAT, [EXPORT_Q, EXPORT_Q], "an export holds one query"),
        (signed.EXPORT_FORMAT, ["query.csv"], "query 0 is not an object"),
        (signed.EXPORT_FORMAT, [[EXPORT_Q]], "query 0 is not an object"),
        (signed.REPORT_FORMAT, [REPORT_Q, 1], "query 1 is not an object"),
        (signed.REPORT_FORMAT, [{**REPORT_Q, "name": ["q"]}], "query 0 is not an object"),
        (signed.REPORT_FORMAT, [{**REPORT_Q, "name": {"q": 1}}], "with a text name"),
    ],
)
def test_altered_queries_are_invalid_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, queries: Any, words: str
) -> None:
    code, err = run(tmp_path, pack(fmt, queries), capsys)  # before: an uncaught exception
    assert code == 1, err
    assert err.startswith("hub-verify: INVALID: ") and words in err, err
