"""Evidence packs: export (CLI and HTTP), `hub-verify bundle` offline, and tamper detection."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from audit import bundle
from audit.note import generate_key, sign_note
from core.events import OutgoingEvent
from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.cli_keys import admin_args

REPO = Path(__file__).resolve().parents[2]


def hub_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A data folder with control-plane activity, and a pack exported by the CLI."""
    data = tmp_path_factory.mktemp("evidence") / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, checkpoint_every_leaves=4))
    try:
        h.keys.create(["analyst"], principal="ann")
        h.ledger.sync(force_checkpoint=True)
        h.keys.create(["publisher"], principal="pub")
        h.publisher.publish(
            "hub.config",
            [
                OutgoingEvent(
                    value={
                        "key": "registry.compatibility",
                        "new_value": '"FULL"',
                        "changed_by": "root",
                        "changed_at": "2026-01-01T00:00:00Z",
                    }
                )
            ],
            producer="root",
        )
        h.ledger.record_action("root", "policy.decision", "topics/trades", outcome="deny")
        h.log.create_topic("hub.quarantine", 1)
        from core.ports.eventlog import Record

        h.log.append(
            "hub.quarantine",
            [Record(b"bad bytes", b"ACC-9", (("ce_type", b"hub.Rejected"), ("ce_source", b"x")))],
        )
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    out = data.parent / "pack.zip"
    r = CliRunner().invoke(
        main,
        [
            *admin_args(data),
            "evidence",
            "export",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--controls",
            "CC6,CC7,CC8.1,PI1",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.stderr
    return data, out, data / "keys" / "ledger.pub"


def test_export_verifies_offline(pack: tuple[Path, Path, Path]) -> None:
    data, out, pub = pack
    r = hub_verify("bundle", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr
    assert "integrity and origin" in r.stdout
    r = hub_verify("bundle", str(out))
    assert r.returncode == 0 and "integrity only" in r.stdout
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        report = zf.read("report.html").decode()
        entries = [json.loads(x) for x in zf.read("entries.jsonl").splitlines()]
    assert set(manifest["controls"]) == {"CC6", "CC7", "CC8", "PI1"}
    assert manifest["controls"]["CC6"] and manifest["controls"]["CC8"]
    assert manifest["controls"]["PI1"]
    topics = {e["topic"] for e in entries}
    assert {"hub.principals", "hub.config", "_schemas", "hub.audit", "hub.quarantine"} <= topics
    assert "trades" not in topics
    # Keys of non-control topics are shown as digests only; payloads never appear.
    (q,) = [e for e in entries if e["topic"] == "hub.quarantine"]
    assert q["resource"].startswith("sha256:") and "ACC-9" not in json.dumps(entries)
    # The report: self-contained, one table per control, the key caveat.
    assert "<script" not in report and "http://" not in report and "https://" not in report
    for c in ("CC6", "CC7", "CC8.1", "PI1"):
        assert c in report
    assert "Integrity is not origin" in report
    # The export was itself recorded as an audit action.
    r2 = CliRunner().invoke(
        main, [*admin_args(data), "ledger", "entries", "--action", "evidence.export"]
    )
    assert r2.exit_code == 0 and '"evidence.export"' in r2.stdout


def rewrite(src: Path, dst: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    edit(files)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return dst


def flip(data: bytes, at: int) -> bytes:
    c = data[at : at + 1]
    repl = b"1" if c != b"1" else b"2"
    return data[:at] + repl + data[at + 1 :]


def _lines(files: dict[str, bytes]) -> list[bytes]:
    return files["entries.jsonl"].splitlines(keepends=True)


def t_entry_byte(f: dict[str, bytes]) -> None:
    lines = _lines(f)
    e = json.loads(lines[1])
    e["offset"] += 1
    lines[1] = (json.dumps(e, sort_keys=True) + "\n").encode()
    f["entries.jsonl"] = b"".join(lines)


def t_header_byte(f: dict[str, bytes]) -> None:
    lines = _lines(f)
    i = next(n for n, line in enumerate(lines) if json.loads(line)["headers"])
    e = json.loads(lines[i])
    name, value = e["headers"][0]
    e["headers"][0] = [name, base64.b64encode(base64.b64decode(value) + b"x").decode()]
    lines[i] = (json.dumps(e, sort_keys=True) + "\n").encode()
    f["entries.jsonl"] = b"".join(lines)


def t_proof_byte(f: dict[str, bytes]) -> None:
    data = f["entries.jsonl"]
    f["entries.jsonl"] = flip(data, data.index(b'"proof": ["') + 12)


def t_checkpoint_byte(f: dict[str, bytes]) -> None:
    name = sorted(n for n in f if n.startswith("checkpoints/"))[0]
    note = f[name]
    f[name] = flip(note, note.index(b"\n", note.index(b"\n") + 1) + 3)  # in the root line


def t_manifest_byte(f: dict[str, bytes]) -> None:
    m = f["manifest.json"]
    f["manifest.json"] = m.replace(b'"exported_by": "', b'"exported_by": "X')


def t_report_byte(f: dict[str, bytes]) -> None:
    f["report.html"] = f["report.html"].replace(b"SOC 2", b"SOC 3", 1)


def t_drop_entry(f: dict[str, bytes]) -> None:
    lines = _lines(f)
    del lines[2]
    f["entries.jsonl"] = b"".join(lines)


def t_reorder_entries(f: dict[str, bytes]) -> None:
    lines = _lines(f)
    lines[1], lines[2] = lines[2], lines[1]
    f["entries.jsonl"] = b"".join(lines)


def t_insert_entry(f: dict[str, bytes]) -> None:
    lines = _lines(f)
    e = json.loads(lines[0])
    e["index"] += 1  # a fabricated entry right after the first, in index order
    e["actor"] = "mallory"
    lines.insert(1, (json.dumps(e, sort_keys=True) + "\n").encode())
    f["entries.jsonl"] = b"".join(lines)


def t_drop_checkpoint(f: dict[str, bytes]) -> None:
    name = sorted(n for n in f if n.startswith("checkpoints/"))[1]
    del f[name]


@pytest.mark.parametrize(
    "tamper",
    [
        t_entry_byte,
        t_header_byte,
        t_proof_byte,
        t_checkpoint_byte,
        t_manifest_byte,
        t_report_byte,
        t_drop_entry,
        t_reorder_entries,
        t_insert_entry,
        t_drop_checkpoint,
    ],
)
def test_tampered_pack_is_rejected(
    pack: tuple[Path, Path, Path], tmp_path: Path, tamper: Callable[[dict[str, bytes]], None]
) -> None:
    _, out, pub = pack
    bad = rewrite(out, tmp_path / "bad.zip", tamper)
    for args in ((), ("--public-key", str(pub))):
        r = hub_verify("bundle", str(bad), *args)
        assert r.returncode == 1, (tamper.__name__, r.stdout, r.stderr)
        assert "INVALID" in r.stderr


def test_a_pack_resigned_with_another_key_needs_the_trusted_key(
    pack: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Integrity vs origin: a forger re-signs everything with their own key."""
    _, out, pub = pack
    forger = generate_key("hub.local/ledger")

    def forge(f: dict[str, bytes]) -> None:
        for name in [n for n in f if n.startswith("checkpoints/")]:
            text = f[name][: f[name].rindex(b"\n\n") + 1].decode()
            f[name] = sign_note(text, forger)
        # The prev chain hashes texts only, so it survives re-signing; rebuild the manifest.
        f["public-key.txt"] = (forger.verifier.encode() + "\n").encode()
        m = json.loads(f["manifest.json"])
        m["public_key"] = forger.verifier.encode()
        import hashlib

        m["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in f.items()
            if n not in ("manifest.json", "manifest.sig")
        }
        mb = json.dumps(m, indent=2, sort_keys=True).encode() + b"\n"
        f["manifest.json"] = mb
        f["manifest.sig"] = sign_note(bundle.manifest_note_text(mb), forger)

    forged = rewrite(out, tmp_path / "forged.zip", forge)
    assert hub_verify("bundle", str(forged)).returncode == 0  # self-consistent: integrity only
    r = hub_verify("bundle", str(forged), "--public-key", str(pub))
    assert r.returncode == 1 and "did not come from that hub" in r.stderr


def test_http_export_and_bad_input(pack: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, _, pub = pack
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        token = h.keys.create(["admin"], principal="root").token
        auth = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        with TestClient(create_app(h)) as client:
            r = client.post("/v1/evidence?from=2000-01-01&to=2100-01-01&controls=CC6", headers=auth)
            assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
            (tmp_path / "p.zip").write_bytes(r.content)
            bad = client.post(
                "/v1/evidence?from=2000-01-01&to=2100-01-01&controls=XX9", headers=auth
            )
            assert bad.status_code == 422 and bad.json()["reason"] == "invalid_controls"
            empty = client.post("/v1/evidence?from=2100-01-01&to=2000-01-01", headers=auth)
            assert empty.status_code == 422
    finally:
        h.close()
    r = hub_verify("bundle", str(tmp_path / "p.zip"), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr
